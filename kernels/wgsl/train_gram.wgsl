// fuseflow: partial products Aᵀ·diag(w)·B per block of GRAM_BLOCK rows (see
// src/backend/train.rs, TrainKernel::BlockGram). A is n x p and B is n x q,
// column-major f32; w is column `w_offset / n` of a matrix with n rows.
// Workgroup (x, y, z) computes the 16x16 tile (x, y) of block z's p x q
// partial, staging 16 rows of A and of w·B at a time in workgroup memory;
// elements past the edges load as zero, so sizes need not divide the tile.
// The host adds the blocks' partials in f64.

const TILE: u32 = 16u;
const GRAM_BLOCK: u32 = 4096u;

struct Params {
    n: u32,
    p: u32,
    q: u32,
    // Element offset of the weight column; has_w = 0 means w = 1.
    w_offset: u32,
    has_w: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> parts: array<f32>;

// tile_a[r][i]: A(row r of the slab, column i of the tile); tile_b[r][j]: w·B likewise.
var<workgroup> tile_a: array<array<f32, TILE>, TILE>;
var<workgroup> tile_b: array<array<f32, TILE>, TILE>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let i = group_id.x * TILE + local.x;
    let j = group_id.y * TILE + local.y;
    let start = group_id.z * GRAM_BLOCK;
    let end = min(start + GRAM_BLOCK, params.n);
    var acc = 0.0;
    for (var base = start; base < end; base += TILE) {
        // Thread (x, y) loads A(base + y, tile column x) and w·B(base + x, tile column y).
        let ra = base + local.y;
        var va = 0.0;
        if (ra < end && i < params.p) { va = a[i * params.n + ra]; }
        tile_a[local.y][local.x] = va;
        let rb = base + local.x;
        var vb = 0.0;
        if (rb < end && j < params.q) {
            vb = b[j * params.n + rb];
            if (params.has_w != 0u) { vb *= w[params.w_offset + rb]; }
        }
        tile_b[local.x][local.y] = vb;
        workgroupBarrier();
        for (var r = 0u; r < TILE; r++) {
            acc += tile_a[r][local.x] * tile_b[r][local.y];
        }
        workgroupBarrier();
    }
    if (i < params.p && j < params.q) {
        parts[(group_id.z * params.q + j) * params.p + i] = acc;
    }
}
