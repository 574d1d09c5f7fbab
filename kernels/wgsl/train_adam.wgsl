// fuseflow: one Adam step over a parameter array (see src/backend/train.rs,
// TrainKernel::Adam): g = grad_scale·grad + l2·p, then the moments and the
// bias-corrected update, written to new arrays.

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

struct Params {
    len: u32,
    groups_x: u32,
    learning_rate: f32,
    c1: f32,
    c2: f32,
    grad_scale: f32,
    l2: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> p_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> m_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> v_out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let i = (group_id.y * params.groups_x + group_id.x) * 256u + local.x;
    if (i >= params.len) { return; }
    let g = params.grad_scale * grad[i] + params.l2 * p[i];
    let mi = BETA1 * m[i] + (1.0 - BETA1) * g;
    let vi = BETA2 * v[i] + (1.0 - BETA2) * g * g;
    p_out[i] = p[i] - params.learning_rate * (mi / params.c1) / (sqrt(vi / params.c2) + EPS);
    m_out[i] = mi;
    v_out[i] = vi;
}
