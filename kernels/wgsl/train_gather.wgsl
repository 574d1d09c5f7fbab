// fuseflow: rows of an n x d column-major matrix by an i32 index vector, into
// an m x d matrix (see src/backend/train.rs, TrainKernel::GatherRows).
// Indices outside 0..n read as zero, as on every backend.

struct Params {
    n: u32,
    m: u32,
    total: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let o = (group_id.y * params.groups_x + group_id.x) * 256u + local.x;
    if (o >= params.total) { return; }
    let i = o % params.m;
    let c = o / params.m;
    let r = rows[i];
    var v = 0.0;
    if (r >= 0 && u32(r) < params.n) { v = x[c * params.n + u32(r)]; }
    out[o] = v;
}
