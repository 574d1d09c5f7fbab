// fuseflow: the training kernels (see src/backend/train.rs, TrainKernel) that
// cuBLAS does not cover: the loss head, a layer's elementwise forward and
// backward parts, row gathers and Adam. The block products Aᵀ·diag(w)·B are
// cublasSdgmm + cublasSgemmStridedBatched (src/backend/cuda/train.rs).
//
// Every kernel is a grid-stride loop over its items with 256-thread blocks;
// matrices are column-major f32, class labels and row indices i32.

#define FF_THREADS 256

#define FF_FOR_EACH(i, count) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (count); \
         i += (long long)gridDim.x * blockDim.x)

__device__ __forceinline__ float ff_sigmoid_stable(float z) {
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    const float e = expf(z);
    return e / (1.0f + e);
}

// loss: 0 = half squared error (target: f32 bits), 1 = logistic (i32 0/1),
// 2 = softmax (i32 class; Hessian weights p_a (δ_ab - p_b) at column a(a+1)/2 + b).
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_train_head(const float* __restrict__ logits, const unsigned int* __restrict__ target,
              long long n, int k, int loss, float* __restrict__ residual,
              float* __restrict__ losses, float* __restrict__ weights) {
    FF_FOR_EACH(r, n) {
        if (loss == 0) {
            const float d = logits[r] - __uint_as_float(target[r]);
            residual[r] = d;
            losses[r] = 0.5f * d * d;
            continue;
        }
        if (loss == 1) {
            const float z = logits[r];
            const float t = (float)(int)target[r];
            const float p = ff_sigmoid_stable(z);
            residual[r] = p - t;
            losses[r] = fmaxf(z, 0.0f) - t * z + log1pf(expf(-fabsf(z)));
            weights[r] = p * (1.0f - p);
            continue;
        }
        int c = (int)target[r];
        c = c < 0 ? 0 : (c >= k ? k - 1 : c);
        float zmax = logits[r];
        for (int a = 1; a < k; ++a) zmax = fmaxf(zmax, logits[a * n + r]);
        float sum = 0.0f;
        for (int a = 0; a < k; ++a) sum += expf(logits[a * n + r] - zmax);
        losses[r] = zmax + logf(sum) - logits[c * n + r];
        for (int a = 0; a < k; ++a) {
            const float pa = expf(logits[a * n + r] - zmax) / sum;
            residual[a * n + r] = pa - (a == c ? 1.0f : 0.0f);
            for (int b = 0; b <= a; ++b) {
                const float pb = expf(logits[b * n + r] - zmax) / sum;
                weights[(long long)(a * (a + 1) / 2 + b) * n + r] =
                    a == b ? pa * (1.0f - pa) : -pa * pb;
            }
        }
    }
}

// act: 0 = none, 1 = ReLU, 2 = tanh; bias per column of the n-row matrix z.
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_bias_activation(const float* __restrict__ z, const float* __restrict__ bias, long long n,
                   long long total, int act, float* __restrict__ out) {
    FF_FOR_EACH(i, total) {
        const float s = z[i] + bias[i / n];
        out[i] = act == 1 ? fmaxf(s, 0.0f) : (act == 2 ? tanhf(s) : s);
    }
}

// delta ⊙ act'(a), the derivative in terms of the output a: 1 = ReLU, 2 = tanh.
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_activation_backward(const float* __restrict__ delta, const float* __restrict__ output,
                       long long total, int act, float* __restrict__ out) {
    FF_FOR_EACH(i, total) {
        const float a = output[i];
        out[i] = act == 2 ? delta[i] * (1.0f - a * a) : (a > 0.0f ? delta[i] : 0.0f);
    }
}

// Rows `rows[i]` of the n x d matrix x into the m x d matrix out; indices
// outside 0..n read as zero.
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_gather_rows(const float* __restrict__ x, const int* __restrict__ rows, long long n,
               long long m, long long total, float* __restrict__ out) {
    FF_FOR_EACH(o, total) {
        const long long i = o % m;
        const long long c = o / m;
        const int r = rows[i];
        out[o] = (r >= 0 && r < n) ? x[c * n + r] : 0.0f;
    }
}

// One Adam step: g = grad_scale·grad + l2·p; moments; bias-corrected update.
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_adam(const float* __restrict__ p, const float* __restrict__ grad,
        const float* __restrict__ m, const float* __restrict__ v, long long len,
        float learning_rate, float c1, float c2, float grad_scale, float l2,
        float* __restrict__ p_out, float* __restrict__ m_out, float* __restrict__ v_out) {
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    FF_FOR_EACH(i, len) {
        const float g = grad_scale * grad[i] + l2 * p[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        p_out[i] = p[i] - learning_rate * (mi / c1) / (sqrtf(vi / c2) + eps);
        m_out[i] = mi;
        v_out[i] = vi;
    }
}
