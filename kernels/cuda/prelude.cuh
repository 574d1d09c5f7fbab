// fuseflow: helpers that generated fused kernels call (see src/ir/ops.rs for
// each op's spelling). Integer arithmetic wraps, as on the CPU (signed
// overflow is undefined in C++, so it goes through unsigned); float functions
// are the CUDA math library's, with C99 semantics for NaN and infinities.
#pragma once

__device__ __forceinline__ bool ff_bit(const unsigned int* words, long long row) {
    return (words[row >> 5] >> (row & 31)) & 1u;
}

__device__ __forceinline__ float ff_add(float a, float b) { return a + b; }
__device__ __forceinline__ double ff_add(double a, double b) { return a + b; }
__device__ __forceinline__ int ff_add(int a, int b) { return (int)((unsigned)a + (unsigned)b); }
__device__ __forceinline__ long long ff_add(long long a, long long b) {
    return (long long)((unsigned long long)a + (unsigned long long)b);
}

__device__ __forceinline__ float ff_sub(float a, float b) { return a - b; }
__device__ __forceinline__ double ff_sub(double a, double b) { return a - b; }
__device__ __forceinline__ int ff_sub(int a, int b) { return (int)((unsigned)a - (unsigned)b); }
__device__ __forceinline__ long long ff_sub(long long a, long long b) {
    return (long long)((unsigned long long)a - (unsigned long long)b);
}

__device__ __forceinline__ float ff_mul(float a, float b) { return a * b; }
__device__ __forceinline__ double ff_mul(double a, double b) { return a * b; }
__device__ __forceinline__ int ff_mul(int a, int b) { return (int)((unsigned)a * (unsigned)b); }
__device__ __forceinline__ long long ff_mul(long long a, long long b) {
    return (long long)((unsigned long long)a * (unsigned long long)b);
}

__device__ __forceinline__ float ff_neg(float a) { return -a; }
__device__ __forceinline__ double ff_neg(double a) { return -a; }
__device__ __forceinline__ int ff_neg(int a) { return (int)(0u - (unsigned)a); }
__device__ __forceinline__ long long ff_neg(long long a) {
    return (long long)(0ull - (unsigned long long)a);
}

__device__ __forceinline__ float ff_abs(float a) { return fabsf(a); }
__device__ __forceinline__ double ff_abs(double a) { return fabs(a); }
__device__ __forceinline__ int ff_abs(int a) { return a < 0 ? ff_neg(a) : a; }
__device__ __forceinline__ long long ff_abs(long long a) { return a < 0 ? ff_neg(a) : a; }

__device__ __forceinline__ float ff_sqrt(float a) { return sqrtf(a); }
__device__ __forceinline__ double ff_sqrt(double a) { return sqrt(a); }
__device__ __forceinline__ float ff_exp(float a) { return expf(a); }
__device__ __forceinline__ double ff_exp(double a) { return exp(a); }
__device__ __forceinline__ float ff_log(float a) { return logf(a); }
__device__ __forceinline__ double ff_log(double a) { return log(a); }
__device__ __forceinline__ float ff_log1p(float a) { return log1pf(a); }
__device__ __forceinline__ double ff_log1p(double a) { return log1p(a); }
__device__ __forceinline__ float ff_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double ff_pow(double a, double b) { return pow(a, b); }
__device__ __forceinline__ float ff_sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }
__device__ __forceinline__ double ff_sigmoid(double a) { return 1.0 / (1.0 + exp(-a)); }

// minimum / maximum: NaN if either side is NaN (a + b is NaN exactly then).
template <typename T> __device__ __forceinline__ T ff_min(T a, T b) {
    return a < b ? a : (b <= a ? b : a + b);
}
template <typename T> __device__ __forceinline__ T ff_max(T a, T b) {
    return a > b ? a : (b >= a ? b : a + b);
}

// clip(x, lo, hi): lo below, hi above, NaN stays NaN.
template <typename T> __device__ __forceinline__ T ff_clip(T x, T lo, T hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

// cast(x, T): every conversion goes through f64, as the CPU's
// `T::from_f64(x.to_f64())`: integers truncate toward zero and saturate, NaN
// becomes 0 (the `_rz` conversions saturate; C++ casts would be undefined out
// of range), and i64 -> f32 rounds twice, once to f64 and once to f32.
__device__ __forceinline__ int ff_to_i32(double x) { return __double2int_rz(x); }
__device__ __forceinline__ long long ff_to_i64(double x) { return __double2ll_rz(x); }
__device__ __forceinline__ float ff_to_f32(double x) { return __double2float_rn(x); }
__device__ __forceinline__ double ff_to_f64(double x) { return x; }
