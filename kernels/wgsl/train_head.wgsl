// fuseflow: the loss head of training (see src/backend/train.rs,
// TrainKernel::Head). One thread per row of the n x k logits: the residual
// ∂loss/∂logits, the row's loss in stable form, and the Hessian weights.
// loss: 0 = half squared error (f32 target), 1 = logistic (i32 0/1),
// 2 = softmax (i32 class; weights p_a (δ_ab - p_b) at column a(a+1)/2 + b).
// Targets (`labels`) are bound as raw 32-bit words and reinterpreted.

struct Params {
    n: u32,
    k: u32,
    loss: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> weights: array<f32>;

fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) { return 1.0 / (1.0 + exp(-z)); }
    let e = exp(z);
    return e / (1.0 + e);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let r = (group_id.y * params.groups_x + group_id.x) * 256u + local.x;
    let n = params.n;
    if (r >= n) { return; }
    if (params.loss == 0u) {
        let d = logits[r] - bitcast<f32>(labels[r]);
        residual[r] = d;
        losses[r] = 0.5 * d * d;
        return;
    }
    if (params.loss == 1u) {
        let z = logits[r];
        let t = f32(bitcast<i32>(labels[r]));
        let p = sigmoid(z);
        residual[r] = p - t;
        losses[r] = max(z, 0.0) - t * z + log(1.0 + exp(-abs(z)));
        weights[r] = p * (1.0 - p);
        return;
    }
    let k = params.k;
    let c = u32(clamp(bitcast<i32>(labels[r]), 0, i32(k) - 1));
    var zmax = logits[r];
    for (var a = 1u; a < k; a++) { zmax = max(zmax, logits[a * n + r]); }
    var sum = 0.0;
    for (var a = 0u; a < k; a++) { sum += exp(logits[a * n + r] - zmax); }
    losses[r] = zmax + log(sum) - logits[c * n + r];
    for (var a = 0u; a < k; a++) {
        let pa = exp(logits[a * n + r] - zmax) / sum;
        var onehot = 0.0;
        if (a == c) { onehot = 1.0; }
        residual[a * n + r] = pa - onehot;
        for (var b = 0u; b <= a; b++) {
            let pb = exp(logits[b * n + r] - zmax) / sum;
            var wab = -pa * pb;
            if (a == b) { wab = pa * (1.0 - pa); }
            weights[(a * (a + 1u) / 2u + b) * n + r] = wab;
        }
    }
}
