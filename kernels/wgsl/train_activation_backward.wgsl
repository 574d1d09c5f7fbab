// fuseflow: a hidden layer's backward elementwise part, delta ⊙ act'(a) with
// the derivative written in terms of the activation's output a (see
// src/backend/train.rs, TrainKernel::ActivationBackward). act: 1 = ReLU
// (1[a > 0]), 2 = tanh (1 - a²).

struct Params {
    total: u32,
    act: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> delta: array<f32>;
@group(0) @binding(2) var<storage, read> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let i = (group_id.y * params.groups_x + group_id.x) * 256u + local.x;
    if (i >= params.total) { return; }
    let a = output[i];
    var d = 0.0;
    if (params.act == 2u) {
        d = delta[i] * (1.0 - a * a);
    } else if (a > 0.0) {
        d = delta[i];
    }
    out[i] = d;
}
