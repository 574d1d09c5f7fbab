// fuseflow: a dense layer's forward elementwise part, act(z + bias[column])
// over an n x h column-major matrix (see src/backend/train.rs,
// TrainKernel::BiasActivation). act: 0 = none, 1 = ReLU, 2 = tanh.

struct Params {
    n: u32,
    total: u32,
    act: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let i = (group_id.y * params.groups_x + group_id.x) * 256u + local.x;
    if (i >= params.total) { return; }
    let s = z[i] + bias[i / params.n];
    var v = s;
    if (params.act == 1u) {
        v = max(s, 0.0);
    } else if (params.act == 2u) {
        // tanh(±15) is ±1 in f32; clamping keeps drivers that compute tanh
        // from exponentials away from inf / inf.
        v = tanh(clamp(s, -15.0, 15.0));
    }
    out[i] = v;
}
