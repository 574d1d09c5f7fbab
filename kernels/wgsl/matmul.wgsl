// fuseflow: C = op(A) · op(B) for column-major f32 matrices (see
// src/backend/wgpu/matmul.rs), where op reads a matrix as stored or
// transposed. Each 16x16 workgroup computes a 16x16 tile of C, staging
// 16x16 tiles of A and B in workgroup memory; elements past the edges load as
// zero, so sizes need not divide the tile.

const TILE: u32 = 16u;

struct Params {
    // C is m x n; the inner dimension is k.
    m: u32,
    n: u32,
    k: u32,
    // Rows of A and B as stored (their column stride).
    a_rows: u32,
    b_rows: u32,
    // Nonzero: read the operand transposed.
    a_t: u32,
    b_t: u32,
    // Workgroups along x; tile rows beyond it continue along z.
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// tile_a[i][r]: op(A)(row r of the tile, inner i); tile_b[j][i]: op(B)(inner i, column j).
var<workgroup> tile_a: array<array<f32, TILE>, TILE>;
var<workgroup> tile_b: array<array<f32, TILE>, TILE>;

fn a_at(r: u32, i: u32) -> f32 {
    if (r >= params.m || i >= params.k) { return 0.0; }
    if (params.a_t != 0u) { return a[r * params.a_rows + i]; }
    return a[i * params.a_rows + r];
}

fn b_at(i: u32, j: u32) -> f32 {
    if (i >= params.k || j >= params.n) { return 0.0; }
    if (params.b_t != 0u) { return b[i * params.b_rows + j]; }
    return b[j * params.b_rows + i];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let r = (group_id.z * params.groups_x + group_id.x) * TILE + local.x;
    let j = group_id.y * TILE + local.y;
    var acc = 0.0;
    let tiles = (params.k + TILE - 1u) / TILE;
    for (var t = 0u; t < tiles; t++) {
        let base = t * TILE;
        tile_a[local.y][local.x] = a_at(r, base + local.y);
        tile_b[local.y][local.x] = b_at(base + local.x, j);
        workgroupBarrier();
        for (var i = 0u; i < TILE; i++) {
            acc += tile_a[i][local.x] * tile_b[local.y][i];
        }
        workgroupBarrier();
    }
    if (r < params.m && j < params.n) {
        c[j * params.m + r] = acc;
    }
}
