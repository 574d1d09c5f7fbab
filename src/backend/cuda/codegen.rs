//! The CUDA C kernel around a [`FusedBody`]: parameters, the row loop, and
//! the packing of bool values and validity into Arrow bitmaps.
//!
//! Each warp evaluates 32 consecutive rows per step of a grid-stride loop
//! (`ff_base` is a multiple of 32), so one `__ballot_sync` over the warp *is*
//! one 32-bit word of an Arrow bitmap, written by lane 0 without atomics.
//! Every lane of a warp runs the same number of loop steps, so the full mask
//! is always correct; lanes past the last row are inactive, read nothing and
//! vote `false`, which leaves the bitmap's padding bits zero. Nulls of each
//! output are counted per warp (`__popc` of active rows that are not valid)
//! and added to `ff_null_counts[k]` once per warp at the end.
//!
//! Memory traffic: a warp step reads 32 consecutive values per input column,
//! one 128-byte (f32, i32) or 256-byte (f64, i64) coalesced transaction,
//! plus one 4-byte validity word; it writes the same widths back. Loads are
//! 4 or 8 bytes per lane, not vectorized: with 2048 resident threads per SM
//! the scalar stream already keeps enough bytes in flight to approach HBM
//! bandwidth, and wider loads would break the one-warp-one-word mapping.

use std::fmt::Write as _;

use crate::backend::codegen::{FusedBody, InputUse, fused_body, storage_type};
use crate::error::Result;
use crate::ir::ops::Lang;
use crate::ir::{DType, Projection};

/// The helpers generated kernels call (`ff_add`, `ff_bit`, ...), prepended to
/// every kernel: NVRTC has no include path by default.
pub const PRELUDE: &str = include_str!("../../../kernels/cuda/prelude.cuh");

/// The entry point of every fused kernel.
pub const FUSED_ENTRY: &str = "ff_fused";

/// One parameter of a fused kernel, in order; the launcher passes arguments
/// by walking the same list, so signature and call cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `long long ff_rows`: the number of rows.
    Rows,
    /// `in{c}`: the values (or bit words) of input column `c`.
    Values(usize),
    /// `valid{c}`: the validity words of input column `c`.
    Validity(usize),
    /// `out{k}`: the values (or bit words) of output `k`.
    Output(usize),
    /// `out_valid{k}`: the validity words of output `k`.
    OutputValidity(usize),
    /// `ff_null_counts`: one 64-bit null counter per output, zeroed before launch.
    NullCounts,
}

/// One output of a fused kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelOutput {
    /// Its dtype (bool outputs are bit words).
    pub dtype: DType,
    /// Whether the kernel writes a validity bitmap and counts nulls for it.
    pub nullable: bool,
}

/// A fused kernel as CUDA C, with the layout of its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedKernel {
    /// The kernel's text, without [`PRELUDE`].
    pub source: String,
    /// The parameters, in order.
    pub params: Vec<Param>,
    /// The input columns read, in column order.
    pub inputs: Vec<InputUse>,
    /// The outputs, in the projection's order.
    pub outputs: Vec<KernelOutput>,
}

impl FusedKernel {
    /// The text NVRTC compiles: [`PRELUDE`] then the kernel.
    pub fn full_source(&self) -> String {
        format!("{PRELUDE}\n{}", self.source)
    }
}

/// Generate the fused CUDA kernel of `projection`, specialized on which input
/// columns have nulls (`nullable[c]`); `device` names the device in errors.
///
/// # Errors
/// [`Error::Device`](crate::Error::Device) with
/// [`DeviceFailure::Unsupported`](crate::error::DeviceFailure::Unsupported)
/// when an output or an intermediate is a string.
pub fn fused_kernel(
    projection: &Projection,
    nullable: &[bool],
    device: &str,
) -> Result<FusedKernel> {
    let body = fused_body(projection, Lang::Cuda, nullable, device)?;
    let mut params = vec![Param::Rows];
    for input in &body.inputs {
        params.push(Param::Values(input.column));
        if input.nullable {
            params.push(Param::Validity(input.column));
        }
    }
    let outputs: Vec<KernelOutput> = body
        .outputs
        .iter()
        .map(|o| KernelOutput {
            dtype: o.dtype,
            nullable: o.valid.is_some(),
        })
        .collect();
    for (k, output) in outputs.iter().enumerate() {
        params.push(Param::Output(k));
        if output.nullable {
            params.push(Param::OutputValidity(k));
        }
    }
    params.push(Param::NullCounts);
    let names: Vec<&str> = projection
        .outputs()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    let source = render(&body, &params, &names);
    Ok(FusedKernel {
        source,
        params,
        inputs: body.inputs,
        outputs,
    })
}

/// The kernel's text: the signature, then a grid-stride loop in which each
/// warp evaluates 32 rows and packs their bits by ballot.
fn render(body: &FusedBody, params: &[Param], names: &[&str]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "// fuseflow fused kernel; outputs: {}", names.join(", "));
    let _ = writeln!(
        s,
        "extern \"C\" __global__ void __launch_bounds__(256) {FUSED_ENTRY}("
    );
    let _ = writeln!(s, "    {}) {{", signature(body, params).join(",\n    "));
    s.push_str(
        "    const unsigned int ff_lane = threadIdx.x & 31u;\n    \
         const long long ff_warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;\n    \
         const long long ff_stride = (long long)gridDim.x * blockDim.x;\n",
    );
    let nullable: Vec<usize> = (0..body.outputs.len())
        .filter(|k| body.outputs[*k].valid.is_some())
        .collect();
    for k in &nullable {
        let _ = writeln!(s, "    unsigned long long ff_nulls{k} = 0;");
    }
    s.push_str(
        "    for (long long ff_base = ff_warp * 32; ff_base < ff_rows; ff_base += ff_stride) {\n",
    );
    s.push_str("        const long long row = ff_base + ff_lane;\n");
    s.push_str("        const bool ff_active = row < ff_rows;\n");
    evaluate_row(&mut s, body);
    store_ballots(&mut s, body, !nullable.is_empty());
    s.push_str("    }\n");
    for k in &nullable {
        let _ = writeln!(
            s,
            "    if (ff_lane == 0 && ff_nulls{k} != 0) atomicAdd(&ff_null_counts[{k}], ff_nulls{k});"
        );
    }
    s.push_str("}\n");
    s
}

/// One declaration per parameter, in `params` order.
fn signature(body: &FusedBody, params: &[Param]) -> Vec<String> {
    let dtype_of_input = |c: usize| {
        body.inputs
            .iter()
            .find(|i| i.column == c)
            .map(|i| i.dtype)
            .expect("a Values/Validity param names a read column")
    };
    params
        .iter()
        .map(|p| match *p {
            Param::Rows => "const long long ff_rows".to_string(),
            Param::Values(c) => format!(
                "const {}* __restrict__ in{c}",
                storage_type(Lang::Cuda, dtype_of_input(c))
            ),
            Param::Validity(c) => format!("const unsigned int* __restrict__ valid{c}"),
            Param::Output(k) => format!(
                "{}* __restrict__ out{k}",
                storage_type(Lang::Cuda, body.outputs[k].dtype)
            ),
            Param::OutputValidity(k) => format!("unsigned int* __restrict__ out_valid{k}"),
            Param::NullCounts => "unsigned long long* __restrict__ ff_null_counts".to_string(),
        })
        .collect()
}

/// The body for the lane's row when it is active: values stored, bits and
/// validity kept as votes for the ballot.
fn evaluate_row(s: &mut String, body: &FusedBody) {
    // Votes: declared outside the guarded block so every lane takes part in the ballot.
    for (k, out) in body.outputs.iter().enumerate() {
        if out.dtype == DType::Bool {
            let _ = writeln!(s, "        bool ff_bit{k} = false;");
        }
        if out.valid.is_some() {
            let _ = writeln!(s, "        bool ff_ok{k} = false;");
        }
    }
    s.push_str("        if (ff_active) {\n");
    for statement in &body.statements {
        let _ = writeln!(s, "            {statement}");
    }
    for (k, out) in body.outputs.iter().enumerate() {
        if out.dtype == DType::Bool {
            let _ = writeln!(s, "            ff_bit{k} = {};", out.value);
        } else {
            let _ = writeln!(s, "            out{k}[row] = {};", out.value);
        }
        if let Some(valid) = &out.valid {
            let _ = writeln!(s, "            ff_ok{k} = {valid};");
        }
    }
    s.push_str("        }\n");
}

/// The warp's votes as bitmap words, stored by lane 0, and the nulls among
/// the active rows counted.
fn store_ballots(s: &mut String, body: &FusedBody, any_nullable: bool) {
    if any_nullable {
        s.push_str(
            "        const unsigned int ff_active_word = __ballot_sync(0xffffffffu, ff_active);\n",
        );
    }
    for (k, out) in body.outputs.iter().enumerate() {
        if out.dtype == DType::Bool {
            let _ = writeln!(
                s,
                "        const unsigned int ff_word{k} = __ballot_sync(0xffffffffu, ff_bit{k});\n        \
                 if (ff_lane == 0) out{k}[ff_base >> 5] = ff_word{k};"
            );
        }
        if out.valid.is_some() {
            let _ = writeln!(
                s,
                "        const unsigned int ff_valid_word{k} = __ballot_sync(0xffffffffu, ff_ok{k});\n        \
                 if (ff_lane == 0) {{\n            \
                 out_valid{k}[ff_base >> 5] = ff_valid_word{k};\n            \
                 ff_nulls{k} += __popc(ff_active_word & ~ff_valid_word{k});\n        \
                 }}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::ir::{col, lit};

    fn kernel(nullable: &[bool]) -> FusedKernel {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float32, true),
            Field::new("n", DataType::Int64, true),
            Field::new("flag", DataType::Boolean, true),
        ]));
        let exprs = [
            ("y".to_string(), col("x") * lit(2.0)),
            ("big".to_string(), col("n").gt(lit(3)).and(col("flag"))),
        ];
        fused_kernel(
            &Projection::try_new(schema, &exprs).unwrap(),
            nullable,
            "test",
        )
        .unwrap()
    }

    /// The launcher passes arguments in `params` order, so the signature must follow it.
    #[test]
    fn signature_follows_the_parameter_list() {
        let k = kernel(&[true, false, true]);
        assert_eq!(
            k.params,
            vec![
                Param::Rows,
                Param::Values(0),
                Param::Validity(0),
                Param::Values(1),
                Param::Values(2),
                Param::Validity(2),
                Param::Output(0),
                Param::OutputValidity(0),
                Param::Output(1),
                Param::OutputValidity(1),
                Param::NullCounts,
            ]
        );
        let names = [
            "ff_rows",
            "in0",
            "valid0",
            "in1",
            "in2",
            "valid2",
            "out0",
            "out_valid0",
            "out1",
            "out_valid1",
            "ff_null_counts",
        ];
        let positions: Vec<usize> = names
            .iter()
            .map(|n| {
                k.source
                    .find(&format!(" {n},"))
                    .or_else(|| k.source.find(&format!(" {n})")))
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", k.source);
    }

    #[test]
    fn bools_and_validity_are_packed_by_ballot() {
        let k = kernel(&[false, false, true]);
        assert_eq!(
            k.outputs[1],
            KernelOutput {
                dtype: DType::Bool,
                nullable: true
            }
        );
        assert!(
            k.source.contains("out1[ff_base >> 5] = ff_word1"),
            "{}",
            k.source
        );
        assert!(
            k.source
                .contains("out_valid1[ff_base >> 5] = ff_valid_word1"),
            "{}",
            k.source
        );
        assert!(
            k.source
                .contains("atomicAdd(&ff_null_counts[1], ff_nulls1)"),
            "{}",
            k.source
        );
        assert!(!k.source.contains("ff_nulls0"), "{}", k.source);
    }
}
