// fuseflow: per-block statistics of a column (see src/backend/wgpu/reduce.rs).
//
// Each workgroup summarizes one block of CHUNK rows into a Partial: non-null
// count (NaN excluded), nulls, NaNs, and mean, M2, min, max of the rest, by
// Welford's update per invocation and Chan's formula across invocations, in
// f32. The host combines the partials in block order in f64. Everything runs
// in a fixed order, so results repeat bit for bit on a device.
//
// The host prepends the prelude and, per variant, `alias Elem = f32;` (or
// i32) and `fn ff_valid(row: u32) -> bool` (reading binding 2 when the column
// has nulls).

const WG: u32 = 256u;
const PER_INVOCATION: u32 = 16u;
const CHUNK: u32 = 4096u; // WG * PER_INVOCATION

struct Params {
    rows: u32,
    groups_x: u32,
    // Index of this piece's first block in `partials`.
    base: u32,
}

struct Partial {
    count: u32,
    nulls: u32,
    nans: u32,
    unused: u32,
    mean: f32,
    m2: f32,
    min: f32,
    max: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<Elem>;
@group(0) @binding(3) var<storage, read_write> partials: array<Partial>;

var<workgroup> scratch: array<Partial, WG>;

fn combine(a: Partial, b: Partial) -> Partial {
    var out = Partial(a.count + b.count, a.nulls + b.nulls, a.nans + b.nans, 0u,
                      a.mean, a.m2, min(a.min, b.min), max(a.max, b.max));
    if (b.count == 0u) {
        return out;
    }
    if (a.count == 0u) {
        out.mean = b.mean;
        out.m2 = b.m2;
        return out;
    }
    let na = f32(a.count);
    let nb = f32(b.count);
    let n = na + nb;
    let delta = b.mean - a.mean;
    out.mean = a.mean + delta * nb / n;
    out.m2 = a.m2 + b.m2 + delta * delta * na * nb / n;
    return out;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let block = group_id.y * params.groups_x + group_id.x;
    let start = block * CHUNK;
    var acc = Partial(0u, 0u, 0u, 0u, 0.0, 0.0, ff_inf(), -ff_inf());
    for (var i = 0u; i < PER_INVOCATION; i++) {
        // Neighbouring invocations read neighbouring rows.
        let row = start + i * WG + lane;
        if (row >= params.rows) {
            break;
        }
        if (!ff_valid(row)) {
            acc.nulls += 1u;
            continue;
        }
        let x = f32(values[row]);
        if (ff_isnan_f32(x)) {
            acc.nans += 1u;
            continue;
        }
        acc.count += 1u;
        let d = x - acc.mean;
        acc.mean += d / f32(acc.count);
        acc.m2 += d * (x - acc.mean);
        acc.min = min(acc.min, x);
        acc.max = max(acc.max, x);
    }
    scratch[lane] = acc;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            scratch[lane] = combine(scratch[lane], scratch[lane + stride]);
        }
        workgroupBarrier();
    }
    if (lane == 0u && start < params.rows) {
        partials[params.base + block] = scratch[0];
    }
}
