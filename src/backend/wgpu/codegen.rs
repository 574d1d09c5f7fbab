//! The WGSL compute shader of a fused kernel, around the body that
//! [`fused_body`] generates.
//!
//! One invocation computes one row; rows past the end are masked. Bindings,
//! in order: `params` (rows of this launch, the grid's width), then each input
//! read (`in{c}`, and `valid{c}` when nullable), then each output (`out{k}`,
//! and `out{k}_valid` when it can be null), then `ff_nulls`, one null counter
//! per output. Bool values and validity are bits, packed per workgroup in
//! `var<workgroup>` words with `atomicOr`; after a barrier one invocation per
//! word stores it and adds the word's nulls to the counter.

use std::fmt::Write as _;

use crate::backend::codegen::{FusedBody, fused_body, storage_type};
use crate::error::Result;
use crate::ir::ops::Lang;
use crate::ir::{DType, Projection};

/// Helpers the generated and hand-written kernels call.
pub(crate) const PRELUDE: &str = include_str!("../../../kernels/wgsl/prelude.wgsl");

/// Invocations per workgroup of a fused kernel.
pub(crate) const WORKGROUP: u32 = 256;

/// Bit words per workgroup of a fused kernel.
const WORDS: u32 = WORKGROUP / 32;

/// A fused kernel: its WGSL source and the body it was generated from.
pub(crate) struct FusedKernel {
    /// The complete shader, prelude included.
    pub source: String,
    /// The body, for the inputs and outputs to bind.
    pub body: FusedBody,
}

/// The WGSL compute shader that evaluates every output of `projection`.
///
/// `nullable[c]` tells whether input column `c` has nulls (the kernel is
/// specialized on it). This is the text [`Backend::launch`] compiles on a wgpu
/// device, prelude included.
///
/// [`Backend::launch`]: crate::backend::Backend::launch
///
/// # Errors
/// [`Error::Device`](crate::Error::Device) with
/// [`DeviceFailure::Unsupported`](crate::error::DeviceFailure::Unsupported)
/// when the projection computes on f64, i64 or strings.
#[cfg(feature = "internals")]
pub fn fused_kernel_source(projection: &Projection, nullable: &[bool]) -> Result<String> {
    fused_kernel(projection, nullable, "wgpu").map(|k| k.source)
}

/// Generate the kernel of `projection`; `device` names the device in errors.
pub(crate) fn fused_kernel(
    projection: &Projection,
    nullable: &[bool],
    device: &str,
) -> Result<FusedKernel> {
    let body = fused_body(projection, Lang::Wgsl, nullable, device)?;
    let mut s = String::from(PRELUDE);
    let (packed, stores) = bindings(&mut s, &body);
    main_function(&mut s, &body, &packed, &stores);
    Ok(FusedKernel { source: s, body })
}

/// Bits a workgroup packs into words with `atomicOr`, which one invocation
/// per word then stores: a bool output's values or an output's validity.
struct Packed {
    /// The storage buffer of bit words.
    words: String,
    /// The workgroup's array of words.
    pack: String,
    /// The bit of the current row.
    bit: String,
    /// For validity: the output whose null counter the word's nulls go to.
    counter: Option<usize>,
}

/// The `Params` struct and every binding, in binding order. Returns the bits
/// to pack and the stores of the outputs that are not bit words.
fn bindings(s: &mut String, body: &FusedBody) -> (Vec<Packed>, Vec<String>) {
    let mut binding = 0;
    let mut bind = |s: &mut String, access: &str, name: &str, ty: &str| {
        let _ = writeln!(
            s,
            "@group(0) @binding({binding}) var<{access}> {name}: {ty};"
        );
        binding += 1;
    };
    s.push_str("\nstruct Params {\n    rows: u32,\n    groups_x: u32,\n}\n\n");
    bind(s, "uniform", "params", "Params");
    for input in &body.inputs {
        let c = input.column;
        let ty = format!("array<{}>", storage_type(Lang::Wgsl, input.dtype));
        bind(s, "storage, read", &format!("in{c}"), &ty);
        if input.nullable {
            bind(s, "storage, read", &format!("valid{c}"), "array<u32>");
        }
    }
    let mut packed = Vec::new();
    let mut stores = Vec::new();
    for (k, out) in body.outputs.iter().enumerate() {
        let ty = format!("array<{}>", storage_type(Lang::Wgsl, out.dtype));
        bind(s, "storage, read_write", &format!("out{k}"), &ty);
        if out.dtype == DType::Bool {
            packed.push(Packed {
                words: format!("out{k}"),
                pack: format!("pack{k}"),
                bit: out.value.clone(),
                counter: None,
            });
        } else {
            stores.push(format!("out{k}[row] = {};", out.value));
        }
        if let Some(valid) = &out.valid {
            bind(
                s,
                "storage, read_write",
                &format!("out{k}_valid"),
                "array<u32>",
            );
            packed.push(Packed {
                words: format!("out{k}_valid"),
                pack: format!("pack{k}_valid"),
                bit: valid.clone(),
                counter: Some(k),
            });
        }
    }
    if packed.iter().any(|p| p.counter.is_some()) {
        bind(s, "storage, read_write", "ff_nulls", "array<atomic<u32>>");
    }
    (packed, stores)
}

/// The workgroup words and `main`: clear the words, compute the row, pack
/// its bits, then store the words and count their nulls.
fn main_function(s: &mut String, body: &FusedBody, packed: &[Packed], stores: &[String]) {
    s.push('\n');
    for Packed { pack, .. } in packed {
        let _ = writeln!(s, "var<workgroup> {pack}: array<atomic<u32>, {WORDS}>;");
    }
    let _ = writeln!(s, "\n@compute @workgroup_size({WORKGROUP})");
    s.push_str(
        "fn main(@builtin(workgroup_id) group_id: vec3<u32>, @builtin(local_invocation_index) lane: u32) {\n",
    );
    s.push_str("    let group = group_id.y * params.groups_x + group_id.x;\n");
    let _ = writeln!(s, "    let row = group * {WORKGROUP}u + lane;");
    if !packed.is_empty() {
        let _ = writeln!(s, "    if (lane < {WORDS}u) {{");
        for Packed { pack, .. } in packed {
            let _ = writeln!(s, "        atomicStore(&{pack}[lane], 0u);");
        }
        s.push_str("    }\n    workgroupBarrier();\n");
    }
    s.push_str("    if (row < params.rows) {\n");
    for line in body.statements.iter().chain(stores) {
        let _ = writeln!(s, "        {line}");
    }
    for Packed { pack, bit, .. } in packed {
        let _ = writeln!(
            s,
            "        atomicOr(&{pack}[lane >> 5u], select(0u, 1u << (lane & 31u), {bit}));"
        );
    }
    s.push_str("    }\n");
    if !packed.is_empty() {
        store_words(s, packed);
    }
    s.push_str("}\n");
}

/// After the workgroup's barrier, one invocation per word stores it and adds
/// its nulls to the output's counter.
fn store_words(s: &mut String, packed: &[Packed]) {
    s.push_str("    workgroupBarrier();\n");
    let _ = writeln!(s, "    let word = group * {WORDS}u + lane;");
    let _ = writeln!(s, "    if (lane < {WORDS}u && word * 32u < params.rows) {{");
    for Packed {
        words,
        pack,
        counter,
        ..
    } in packed
    {
        let _ = writeln!(s, "        let {pack}_word = atomicLoad(&{pack}[lane]);");
        let _ = writeln!(s, "        {words}[word] = {pack}_word;");
        if let Some(k) = counter {
            let _ = writeln!(
                s,
                "        atomicAdd(&ff_nulls[{k}], min(params.rows - word * 32u, 32u) - countOneBits({pack}_word));"
            );
        }
    }
    s.push_str("    }\n");
}

/// Parse and validate WGSL with naga, as wgpu will; the error is naga's
/// report, with the offending line.
pub(crate) fn validate(source: &str) -> Result<(), String> {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(source))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::ir::{Expr, col, if_else, lit};

    fn projection(exprs: &[(&str, Expr)]) -> Projection {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float32, true),
            Field::new("y", DataType::Float32, true),
            Field::new("i", DataType::Int32, true),
            Field::new("flag", DataType::Boolean, true),
        ]));
        let exprs: Vec<_> = exprs
            .iter()
            .map(|(n, e)| (n.to_string(), e.clone()))
            .collect();
        Projection::try_new(schema, &exprs).unwrap()
    }

    /// Every op, every output dtype, with and without validity.
    fn every_op() -> Projection {
        let (x, y, i, flag) = (col("x"), col("y"), col("i"), col("flag"));
        projection(&[
            (
                "arith",
                (x.clone() + y.clone()) * lit(2.0) - x.clone() / y.clone(),
            ),
            (
                "unary",
                x.clone().abs().sqrt() + x.clone().exp() + x.clone().log() + x.clone().log1p(),
            ),
            ("sig", x.clone().sigmoid().pow(y.clone())),
            ("minmax", x.clone().minimum(y.clone()).maximum(lit(0.5))),
            ("clip", x.clone().clip(lit(-1.0), lit(1.0))),
            (
                "iclip",
                i.clone().clip(lit(-3), lit(3)) + i.clone().minimum(lit(7)).maximum(lit(-7)),
            ),
            (
                "cmp",
                x.clone()
                    .lt(y.clone())
                    .and(i.clone().gt_eq(lit(0)))
                    .or(flag.clone().not()),
            ),
            (
                "eq",
                x.clone()
                    .eq(y.clone())
                    .or(x.clone().not_eq(lit(1.0)))
                    .and(x.clone().lt_eq(y.clone())),
            ),
            ("isnull", x.clone().is_null()),
            (
                "filled",
                x.clone().fill_null(lit(0.0)) + y.clone().fill_null(x.clone()),
            ),
            (
                "special",
                x.clone().fill_null(lit(f64::NAN)) + lit(f64::INFINITY),
            ),
            ("choice", if_else(flag.clone(), x.clone(), y.clone())),
            ("cast_i", x.clone().cast(DType::Int32)),
            (
                "cast_f",
                i.clone().cast(DType::Float32) + flag.clone().cast(DType::Float32),
            ),
            ("cast_b", i.clone().cast(DType::Bool)),
            ("flag", flag),
        ])
    }

    #[test]
    fn every_generated_shader_validates() {
        let p = every_op();
        for mask in 0..16u32 {
            let nullable: Vec<bool> = (0..4).map(|c| mask & (1 << c) != 0).collect();
            let kernel = fused_kernel(&p, &nullable, "test").unwrap();
            if let Err(report) = validate(&kernel.source) {
                panic!("nullable {nullable:?}:\n{report}\n{}", kernel.source);
            }
        }
    }

    #[test]
    fn hand_written_kernels_validate() {
        for source in [
            super::super::reduce::source(DType::Float32, true),
            super::super::reduce::source(DType::Int32, false),
            super::super::matmul::SOURCE.to_string(),
        ] {
            if let Err(report) = validate(&source) {
                panic!("{report}");
            }
        }
    }

    #[test]
    fn invalid_wgsl_is_reported_with_its_line() {
        let report = validate("fn main() { let x: f32 = 1u; }").unwrap_err();
        assert!(report.contains("1u") || report.contains("f32"), "{report}");
    }
}
