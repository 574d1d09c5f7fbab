// fuseflow: column statistics, one partial result per fixed chunk of rows.
//
// Block b reduces rows [b * FF_CHUNK, (b + 1) * FF_CHUNK) in two passes over
// the chunk (which stays in L1/L2 between them): count, nulls, NaNs, f64 sum,
// min and max; then the sum of squared deviations from the chunk mean. Within
// a block, threads combine in a fixed tree (warp shuffles, then warp 0), so a
// chunk's partial does not depend on scheduling; the host merges partials in
// chunk order (Chan et al., the same merge as the CPU's ColumnStats::merge),
// so results repeat bit for bit on the same device.
//
// Launch: grid = ceil(n / FF_CHUNK) blocks of FF_THREADS threads. `valid` is
// the validity bitmap as u32 words, or null when the column has no nulls.

#define FF_CHUNK 8192
#define FF_THREADS 256
// NVRTC has no math_constants.h by default.
#define FF_INF __longlong_as_double(0x7ff0000000000000LL)
#define FF_NAN __longlong_as_double(0x7ff8000000000000LL)

// One chunk's statistics; the layout matches `Partial` in src/backend/cuda/reduce.rs.
struct ff_partial {
    unsigned long long count;  // non-null values, NaN included
    unsigned long long nulls;
    unsigned long long nans;
    double mean;               // of non-null, non-NaN values; NaN when none
    double m2;                 // sum of squared deviations from `mean`
    double min;                // NaN when none
    double max;                // NaN when none
};

// Sum over the block in a fixed order; every thread gets the total.
template <typename T, typename Op>
__device__ T ff_block_combine(T v, Op op, T* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
    }
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    __syncthreads();  // `shared` may still be read from the previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < FF_THREADS / 32 ? shared[lane] : shared[0];
        for (int offset = (FF_THREADS / 32) / 2; offset > 0; offset >>= 1) {
            v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
        }
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    return shared[0];
}

struct ff_sum {
    template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct ff_lesser {
    __device__ double operator()(double a, double b) const { return b < a ? b : a; }
};
struct ff_greater {
    __device__ double operator()(double a, double b) const { return b > a ? b : a; }
};

template <typename T>
__device__ void ff_reduce(const T* __restrict__ values, const unsigned int* __restrict__ valid,
                          long long n, ff_partial* __restrict__ out) {
    __shared__ double shared_f[FF_THREADS / 32];
    __shared__ unsigned long long shared_u[FF_THREADS / 32];
    const long long start = (long long)blockIdx.x * FF_CHUNK;
    const long long end = start + FF_CHUNK < n ? start + FF_CHUNK : n;

    unsigned long long count = 0, nulls = 0, nans = 0;
    double sum = 0.0, lo = FF_INF, hi = -FF_INF;
    for (long long row = start + threadIdx.x; row < end; row += FF_THREADS) {
        if (valid != nullptr && !((valid[row >> 5] >> (row & 31)) & 1u)) {
            nulls += 1;
            continue;
        }
        count += 1;
        const double x = (double)values[row];
        if (x != x) {
            nans += 1;
            continue;
        }
        sum += x;
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
    }
    count = ff_block_combine(count, ff_sum(), shared_u);
    nulls = ff_block_combine(nulls, ff_sum(), shared_u);
    nans = ff_block_combine(nans, ff_sum(), shared_u);
    sum = ff_block_combine(sum, ff_sum(), shared_f);
    lo = ff_block_combine(lo, ff_lesser(), shared_f);
    hi = ff_block_combine(hi, ff_greater(), shared_f);
    const unsigned long long finite = count - nans;
    const double mean = finite > 0 ? sum / (double)finite : FF_NAN;

    double m2 = 0.0;
    if (finite > 0) {
        for (long long row = start + threadIdx.x; row < end; row += FF_THREADS) {
            if (valid != nullptr && !((valid[row >> 5] >> (row & 31)) & 1u)) continue;
            const double x = (double)values[row];
            if (x != x) continue;
            const double d = x - mean;
            m2 += d * d;
        }
    }
    m2 = ff_block_combine(m2, ff_sum(), shared_f);

    if (threadIdx.x == 0) {
        ff_partial p;
        p.count = count;
        p.nulls = nulls;
        p.nans = nans;
        p.mean = mean;
        p.m2 = m2;
        p.min = finite > 0 ? lo : FF_NAN;
        p.max = finite > 0 ? hi : FF_NAN;
        out[blockIdx.x] = p;
    }
}

extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_reduce_f32(const float* values, const unsigned int* valid, long long n, ff_partial* out) {
    ff_reduce(values, valid, n, out);
}
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_reduce_f64(const double* values, const unsigned int* valid, long long n, ff_partial* out) {
    ff_reduce(values, valid, n, out);
}
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_reduce_i32(const int* values, const unsigned int* valid, long long n, ff_partial* out) {
    ff_reduce(values, valid, n, out);
}
extern "C" __global__ void __launch_bounds__(FF_THREADS)
ff_reduce_i64(const long long* values, const unsigned int* valid, long long n, ff_partial* out) {
    ff_reduce(values, valid, n, out);
}
