// fuseflow: helpers that generated fused kernels call (see src/ir/ops.rs for
// each op's spelling). They pin down what WGSL leaves open so that results
// match the CPU reference: the domain of log and sqrt, NaN in min and max,
// pow of a negative base. WGSL cannot overload, so helpers carry their type.

// Functions, not constants: a constant expression may not be NaN or infinite,
// and naga does not evaluate bitcast in constant expressions.
fn ff_nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn ff_inf() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

fn ff_isnan_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn ff_sqrt_f32(x: f32) -> f32 {
    return select(sqrt(x), ff_nan(), x < 0.0);
}

fn ff_log_f32(x: f32) -> f32 {
    if (x < 0.0) { return ff_nan(); }
    if (x == 0.0) { return -ff_inf(); }
    return log(x);
}

// log(1 + x) accurate near zero: the rounding of u = 1 + x is corrected by x / (u - 1).
fn ff_log1p_f32(x: f32) -> f32 {
    if (x < -1.0) { return ff_nan(); }
    if (x == -1.0) { return -ff_inf(); }
    let u = 1.0 + x;
    if (u == 1.0 || u == ff_inf() || ff_isnan_f32(x)) {
        return select(x, log(u), u == ff_inf());
    }
    return log(u) * (x / (u - 1.0));
}

// C's pow (C99 Annex F): pow(x, 0) = 1, pow(1, y) = 1, pow(-1, inf) = 1, a
// negative base only with an integer exponent (the sign from its parity,
// -0 included), and the infinite cases spelled out, as exp2 of an infinite
// argument is not reliable on every driver.
fn ff_pow_f32(a: f32, b: f32) -> f32 {
    if (b == 0.0 || a == 1.0) { return 1.0; }
    if (ff_isnan_f32(a) || ff_isnan_f32(b)) { return ff_nan(); }
    let integer = trunc(b) == b;
    // pow(-inf, y) is +0 or +inf for any y that is not an odd integer.
    if (a < 0.0 && !integer && a != -ff_inf()) { return ff_nan(); }
    // Every f32 at or above 2^24 is an even integer.
    let odd = integer && abs(b) < 16777216.0 && (i32(abs(b)) & 1) == 1;
    let negative = (bitcast<u32>(a) & 0x80000000u) != 0u;
    let x = abs(a);
    var magnitude = 1.0;
    if (x == 0.0) {
        magnitude = select(ff_inf(), 0.0, b > 0.0);
    } else if (x != 1.0) {
        let t = b * log2(x);
        if (t == ff_inf()) {
            magnitude = ff_inf();
        } else if (t == -ff_inf()) {
            magnitude = 0.0;
        } else {
            magnitude = exp2(t);
        }
    }
    return select(magnitude, -magnitude, negative && odd);
}

fn ff_min_f32(a: f32, b: f32) -> f32 {
    if (ff_isnan_f32(a) || ff_isnan_f32(b)) { return ff_nan(); }
    return select(b, a, a < b);
}

fn ff_max_f32(a: f32, b: f32) -> f32 {
    if (ff_isnan_f32(a) || ff_isnan_f32(b)) { return ff_nan(); }
    return select(b, a, a > b);
}

fn ff_min_i32(a: i32, b: i32) -> i32 {
    return min(a, b);
}

fn ff_max_i32(a: i32, b: i32) -> i32 {
    return max(a, b);
}

// clip(x, lo, hi): lo below, hi above, NaN stays NaN. The NaN test is
// explicit: NVIDIA's Vulkan driver turns the selects into a clamp, which
// gives NaN the bound.
fn ff_clip_f32(x: f32, lo: f32, hi: f32) -> f32 {
    if (ff_isnan_f32(x)) { return x; }
    return select(select(x, hi, x > hi), lo, x < lo);
}

fn ff_clip_i32(x: i32, lo: i32, hi: i32) -> i32 {
    return select(select(x, hi, x > hi), lo, x < lo);
}
