// fuseflow: per-block statistics of a column (see src/backend/wgpu/reduce.rs).
//
// Each workgroup summarizes one block of CHUNK rows into a Partial: non-null
// count (NaN excluded), nulls, NaNs, and mean, M2, min, max of the rest, in
// two passes over the block as the CPU does: sums first (each invocation over
// its rows, then a fixed tree across invocations), then squared deviations
// from the block mean. So infinities give what they give on the CPU (mean
// inf, M2 NaN) rather than Welford's NaN. In f32; the host combines the
// partials in block order in f64. Everything runs in a fixed order, so
// results repeat bit for bit on a device.
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

// Totals of the first pass: counts add, `mean` holds the sum, min and max combine.
fn add(a: Partial, b: Partial) -> Partial {
    return Partial(a.count + b.count, a.nulls + b.nulls, a.nans + b.nans, 0u,
                   a.mean + b.mean, a.m2 + b.m2, min(a.min, b.min), max(a.max, b.max));
}

// Sum `scratch` over the workgroup in a fixed tree; every invocation gets the total.
fn tree_sum(lane: u32) -> Partial {
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            scratch[lane] = add(scratch[lane], scratch[lane + stride]);
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    // Nobody writes `scratch` again before everyone has read the total.
    workgroupBarrier();
    return total;
}

// The value of `row` if it enters mean and variance (valid, not NaN).
fn value(row: u32) -> f32 {
    return f32(values[row]);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let block = group_id.y * params.groups_x + group_id.x;
    let start = block * CHUNK;
    // Pass 1: counts, sum, min, max. Neighbouring invocations read neighbouring rows.
    var acc = Partial(0u, 0u, 0u, 0u, 0.0, 0.0, ff_inf(), -ff_inf());
    for (var i = 0u; i < PER_INVOCATION; i++) {
        let row = start + i * WG + lane;
        if (row >= params.rows) {
            break;
        }
        if (!ff_valid(row)) {
            acc.nulls += 1u;
            continue;
        }
        let x = value(row);
        if (ff_isnan_f32(x)) {
            acc.nans += 1u;
            continue;
        }
        acc.count += 1u;
        acc.mean += x;
        acc.min = min(acc.min, x);
        acc.max = max(acc.max, x);
    }
    scratch[lane] = acc;
    var total = tree_sum(lane);
    let mean = total.mean / f32(max(total.count, 1u));
    // Pass 2: squared deviations from the block mean (the block is in cache).
    var m2 = 0.0;
    for (var i = 0u; i < PER_INVOCATION; i++) {
        let row = start + i * WG + lane;
        if (row >= params.rows) {
            break;
        }
        if (ff_valid(row)) {
            let x = value(row);
            if (!ff_isnan_f32(x)) {
                m2 += (x - mean) * (x - mean);
            }
        }
    }
    scratch[lane] = Partial(0u, 0u, 0u, 0u, 0.0, m2, ff_inf(), -ff_inf());
    let deviations = tree_sum(lane);
    if (lane == 0u && start < params.rows) {
        total.mean = mean;
        total.m2 = deviations.m2;
        partials[params.base + block] = total;
    }
}
