// fuseflow fused kernel; outputs: z, score, positive
extern "C" __global__ void __launch_bounds__(256) ff_fused(
    const long long ff_rows,
    const float* __restrict__ in0,
    const unsigned int* __restrict__ valid0,
    const double* __restrict__ in1,
    float* __restrict__ out0,
    float* __restrict__ out1,
    unsigned int* __restrict__ out2,
    unsigned int* __restrict__ out_valid2,
    unsigned long long* __restrict__ ff_null_counts) {
    const unsigned int ff_lane = threadIdx.x & 31u;
    const long long ff_warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const long long ff_stride = (long long)gridDim.x * blockDim.x;
    unsigned long long ff_nulls2 = 0;
    for (long long ff_base = ff_warp * 32; ff_base < ff_rows; ff_base += ff_stride) {
        const long long row = ff_base + ff_lane;
        const bool ff_active = row < ff_rows;
        bool ff_bit2 = false;
        bool ff_ok2 = false;
        if (ff_active) {
            const float v0 = in0[row];
            const bool n0 = ff_bit(valid0, row);
            const float v3 = (n0 ? v0 : 0.25f);
            const float v6 = ff_sub(v3, 1.5f);
            const float v9 = (v6 / 2.0f);
            const float v14 = ff_clip(v9, -5.0f, 5.0f);
            const float v17 = (n0 ? v0 : 0.0f);
            const float v20 = ff_mul(v17, 0.5f);
            const double v21 = in1[row];
            const float v22 = ff_to_f32(v21);
            const float v25 = ff_mul(v22, -0.25f);
            const float v26 = ff_add(v20, v25);
            const float v27 = ff_sigmoid(v26);
            const bool v28 = (v0 > 0.0f);
            const bool n28 = n0;
            out0[row] = v14;
            out1[row] = v27;
            ff_bit2 = v28;
            ff_ok2 = n28;
        }
        const unsigned int ff_active_word = __ballot_sync(0xffffffffu, ff_active);
        const unsigned int ff_word2 = __ballot_sync(0xffffffffu, ff_bit2);
        if (ff_lane == 0) out2[ff_base >> 5] = ff_word2;
        const unsigned int ff_valid_word2 = __ballot_sync(0xffffffffu, ff_ok2);
        if (ff_lane == 0) {
            out_valid2[ff_base >> 5] = ff_valid_word2;
            ff_nulls2 += __popc(ff_active_word & ~ff_valid_word2);
        }
    }
    if (ff_lane == 0 && ff_nulls2 != 0) atomicAdd(&ff_null_counts[2], ff_nulls2);
}
