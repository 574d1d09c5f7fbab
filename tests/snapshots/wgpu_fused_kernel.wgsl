
struct Params {
    rows: u32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> valid0: array<u32>;
@group(0) @binding(3) var<storage, read> in1: array<i32>;
@group(0) @binding(4) var<storage, read> valid1: array<u32>;
@group(0) @binding(5) var<storage, read> in2: array<u32>;
@group(0) @binding(6) var<storage, read> valid2: array<u32>;
@group(0) @binding(7) var<storage, read_write> out0: array<f32>;
@group(0) @binding(8) var<storage, read_write> out0_valid: array<u32>;
@group(0) @binding(9) var<storage, read_write> out1: array<u32>;
@group(0) @binding(10) var<storage, read_write> out1_valid: array<u32>;
@group(0) @binding(11) var<storage, read_write> out2: array<i32>;
@group(0) @binding(12) var<storage, read_write> ff_nulls: array<atomic<u32>>;

var<workgroup> pack0_valid: array<atomic<u32>, 8>;
var<workgroup> pack1: array<atomic<u32>, 8>;
var<workgroup> pack1_valid: array<atomic<u32>, 8>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let group = group_id.y * params.groups_x + group_id.x;
    let row = group * 256u + lane;
    if (lane < 8u) {
        atomicStore(&pack0_valid[lane], 0u);
        atomicStore(&pack1[lane], 0u);
        atomicStore(&pack1_valid[lane], 0u);
    }
    workgroupBarrier();
    if (row < params.rows) {
        let v0: f32 = in0[row];
        let n0: bool = (((valid0[row >> 5u] >> (row & 31u)) & 1u) != 0u);
        let v3: f32 = (v0 * 0.5f);
        let n3: bool = n0;
        let v6: f32 = (v3 - 1.0f);
        let n6: bool = n3;
        let v7: f32 = (1.0 / (1.0 + exp(-v6)));
        let n7: bool = n6;
        let v10: bool = (v0 > 0.0f);
        let n10: bool = n0;
        let v11: bool = (((in2[row >> 5u] >> (row & 31u)) & 1u) != 0u);
        let n11: bool = (((valid2[row >> 5u] >> (row & 31u)) & 1u) != 0u);
        let v12: bool = (v10 && v11);
        let n12: bool = ((n10 && n11) || (n10 && !v10) || (n11 && !v11));
        let v13: i32 = in1[row];
        let n13: bool = (((valid1[row >> 5u] >> (row & 31u)) & 1u) != 0u);
        let v16: i32 = select(i32(0), v13, n13);
        let v19: i32 = (v16 + i32(1));
        out0[row] = v7;
        out2[row] = v19;
        atomicOr(&pack0_valid[lane >> 5u], select(0u, 1u << (lane & 31u), n7));
        atomicOr(&pack1[lane >> 5u], select(0u, 1u << (lane & 31u), v12));
        atomicOr(&pack1_valid[lane >> 5u], select(0u, 1u << (lane & 31u), n12));
    }
    workgroupBarrier();
    let word = group * 8u + lane;
    if (lane < 8u && word * 32u < params.rows) {
        let pack0_valid_word = atomicLoad(&pack0_valid[lane]);
        out0_valid[word] = pack0_valid_word;
        atomicAdd(&ff_nulls[0], min(params.rows - word * 32u, 32u) - countOneBits(pack0_valid_word));
        let pack1_word = atomicLoad(&pack1[lane]);
        out1[word] = pack1_word;
        let pack1_valid_word = atomicLoad(&pack1_valid[lane]);
        out1_valid[word] = pack1_valid_word;
        atomicAdd(&ff_nulls[1], min(params.rows - word * 32u, 32u) - countOneBits(pack1_valid_word));
    }
}
