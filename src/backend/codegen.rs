//! The body of a fused kernel, generated from the IR as GPU source text.
//!
//! [`fused_body`] walks a [`Projection`]'s arena (children before parents) and
//! emits one statement per operator node for one row: its value, and its
//! validity when it can be null. Each operator is spelled by its definition in
//! [`crate::ir::ops`], so WGSL, CUDA C and the CPU share one meaning. What is
//! known to be valid at compile time (literals, columns without nulls,
//! `fill_null` with a valid fill) carries no validity at all, so a kernel over
//! null-free data does no null work.
//!
//! Each backend wraps the body in its kernel skeleton (bindings, the row
//! index, packing bool and validity bits); the body reads
//!
//! - `row`: the row index (`u32` in WGSL, a 64-bit integer in CUDA);
//! - `in{c}`: the values of input column `c` (`u32` bit words for bool columns);
//! - `valid{c}`: the validity bit words of column `c`, bound only when
//!   [`InputUse::nullable`] is set.
//!
//! Only bool, i32 and f32 are spelled for WGSL, which has no 64-bit types;
//! strings are never spelled (they stay on the CPU).

use crate::error::{DeviceFailure, Error, Result};
use crate::ir::ops::{Lang, clip_spelling};
use crate::ir::{BinaryOp, Const, DType, ExprId, Node, Projection};

/// An input column a fused kernel reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputUse {
    /// Column index in the projection's input schema.
    pub column: usize,
    /// Its dtype.
    pub dtype: DType,
    /// Whether the kernel reads its validity (`valid{c}` is bound).
    pub nullable: bool,
}

/// One output of a fused kernel: expressions over the body's variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputExpr {
    /// The output's dtype.
    pub dtype: DType,
    /// Its value for the current row.
    pub value: String,
    /// Its validity for the current row; `None` when it is never null.
    pub valid: Option<String>,
}

/// The per-row body of a fused kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedBody {
    /// Statements, in order, one per line, without indentation.
    pub statements: Vec<String>,
    /// The columns read, in column order.
    pub inputs: Vec<InputUse>,
    /// Each output of the projection, in order.
    pub outputs: Vec<OutputExpr>,
}

/// Generate the body of `projection` in `lang`.
///
/// `nullable[c]` tells whether input column `c` has nulls in the data the
/// kernel will see (a kernel is specialized on it); `device` names the device
/// in errors.
///
/// # Errors
/// [`Error::Device`] with [`DeviceFailure::Unsupported`] when a node computes
/// on a dtype the language lacks (f64 and i64 in WGSL, strings anywhere).
pub fn fused_body(
    projection: &Projection,
    lang: Lang,
    nullable: &[bool],
    device: &str,
) -> Result<FusedBody> {
    let arena = projection.arena();
    let needed = projection.live_nodes();
    let mut body = Generator {
        lang,
        projection,
        statements: Vec::new(),
        values: vec![String::new(); arena.len()],
        valid: vec![None; arena.len()],
    };
    let mut inputs: Vec<InputUse> = Vec::new();
    for id in arena.ids().filter(|id| needed[id.index()]) {
        let dtype = arena.dtype(id);
        if !supported(lang, dtype) {
            return Err(unsupported(projection, id, dtype, device));
        }
        if let Node::Column(c) = arena.node(id) {
            let nullable = nullable.get(*c).copied().unwrap_or(true);
            inputs.push(InputUse {
                column: *c,
                dtype,
                nullable,
            });
        }
        body.emit(id, nullable);
    }
    inputs.sort_by_key(|i| i.column);
    inputs.dedup_by_key(|i| i.column);
    let outputs = projection
        .outputs()
        .iter()
        .map(|(_, id)| OutputExpr {
            dtype: arena.dtype(*id),
            value: body.values[id.index()].clone(),
            valid: body.valid[id.index()].clone(),
        })
        .collect();
    Ok(FusedBody {
        statements: body.statements,
        inputs,
        outputs,
    })
}

/// Whether `lang` can compute on `dtype`.
pub fn supported(lang: Lang, dtype: DType) -> bool {
    match dtype {
        DType::Bool | DType::Int32 | DType::Float32 => true,
        DType::Int64 | DType::Float64 => lang == Lang::Cuda,
        DType::Utf8 => false,
    }
}

fn unsupported(projection: &Projection, id: ExprId, dtype: DType, device: &str) -> Error {
    let output = projection
        .outputs()
        .iter()
        .find(|(_, root)| root.index() >= id.index())
        .map_or("?", |(name, _)| name.as_str());
    let advice = match dtype {
        DType::Utf8 => "string work runs on the CPU; place this step on `cpu`".to_string(),
        _ => "cast the columns to f32/i32 first (`cast(x, f32)`), or place this step on `cpu` or `cuda`"
            .to_string(),
    };
    Error::device(
        device,
        DeviceFailure::Unsupported,
        format!("output '{output}' computes on {dtype}, which this device cannot; {advice}"),
    )
}

/// The type of a value in `lang`.
pub fn type_name(lang: Lang, dtype: DType) -> &'static str {
    match (lang, dtype) {
        (_, DType::Bool) => "bool",
        (Lang::Wgsl, DType::Int32) => "i32",
        (Lang::Wgsl, DType::Float32) => "f32",
        (Lang::Cuda, DType::Int32) => "int",
        (Lang::Cuda, DType::Int64) => "long long",
        (Lang::Cuda, DType::Float32) => "float",
        (Lang::Cuda, DType::Float64) => "double",
        (_, other) => unreachable!("{other} is not spelled in {lang:?}; checked by `supported`"),
    }
}

/// The storage element of a column in `lang` (bool columns are bit words).
pub fn storage_type(lang: Lang, dtype: DType) -> &'static str {
    match (lang, dtype) {
        (Lang::Wgsl, DType::Bool) => "u32",
        (Lang::Cuda, DType::Bool) => "unsigned int",
        _ => type_name(lang, dtype),
    }
}

struct Generator<'p> {
    lang: Lang,
    projection: &'p Projection,
    statements: Vec<String>,
    /// Each node's value: a variable or an inline literal.
    values: Vec<String>,
    /// Each node's validity: a variable, or `None` for never null.
    valid: Vec<Option<String>>,
}

impl Generator<'_> {
    /// Emit node `id`: its value, and its validity where it can be null, as
    /// variables (literals stay inline).
    fn emit(&mut self, id: ExprId, nullable: &[bool]) {
        let arena = self.projection.arena();
        let dtype = arena.dtype(id);
        let i = id.index();
        let v = |g: &Self, c: &ExprId| g.values[c.index()].clone();
        let n = |g: &Self, c: &ExprId| g.valid[c.index()].clone();
        let (value, valid): (String, Option<String>) = match arena.node(id) {
            Node::Literal(c) => {
                self.values[i] = literal(self.lang, c, dtype);
                return;
            }
            Node::Column(c) => self.column(*c, dtype, nullable),
            Node::Unary(op, a) => (
                fill(op.spelling(self.lang), &[&v(self, a)], self.wgsl_type(*a)),
                n(self, a),
            ),
            Node::Binary(op @ (BinaryOp::And | BinaryOp::Or), a, b) => self.kleene(*op, *a, *b),
            Node::Binary(op, a, b) => (
                fill(
                    op.spelling(self.lang),
                    &[&v(self, a), &v(self, b)],
                    self.wgsl_type(*a),
                ),
                all_valid(&[n(self, a), n(self, b)]),
            ),
            Node::Clip(x, lo, hi) => (
                fill(
                    clip_spelling(self.lang),
                    &[&v(self, x), &v(self, lo), &v(self, hi)],
                    self.wgsl_type(*x),
                ),
                all_valid(&[n(self, x), n(self, lo), n(self, hi)]),
            ),
            Node::IsNull(x) => (
                n(self, x).map_or_else(|| "false".to_string(), |nx| format!("(!{nx})")),
                None,
            ),
            Node::FillNull(x, f) => match n(self, x) {
                None => (v(self, x), None),
                Some(nx) => (
                    self.select(&nx, &v(self, x), &v(self, f)),
                    n(self, f).map(|nf| format!("({nx} || {nf})")),
                ),
            },
            Node::IfElse(c, t, f) => self.if_else(*c, *t, *f),
            Node::Cast(x) => {
                let from = arena.dtype(*x);
                let (value, in_range) = cast(self.lang, &v(self, x), from, dtype);
                (value, all_valid(&[n(self, x), in_range]))
            }
        };
        let ty = type_name(self.lang, dtype);
        self.values[i] = self.declare(&format!("v{i}"), ty, &value);
        self.valid[i] = valid.map(|valid| self.declare(&format!("n{i}"), "bool", &valid));
    }

    /// Input column `c`: its value for the row, and its validity if it has nulls.
    fn column(&self, c: usize, dtype: DType, nullable: &[bool]) -> (String, Option<String>) {
        let valid = nullable
            .get(c)
            .copied()
            .unwrap_or(true)
            .then(|| bit(self.lang, &format!("valid{c}")));
        let value = match dtype {
            DType::Bool => bit(self.lang, &format!("in{c}")),
            _ => format!("in{c}[row]"),
        };
        (value, valid)
    }

    /// Kleene `and` / `or`: a valid `false` decides `and`, a valid `true`
    /// decides `or`, whatever the other side; the value needs no select, as
    /// `x && false` and `x || true` hold for any x.
    fn kleene(&self, op: BinaryOp, a: ExprId, b: ExprId) -> (String, Option<String>) {
        let (va, vb) = (
            self.values[a.index()].clone(),
            self.values[b.index()].clone(),
        );
        let value = fill(op.spelling(self.lang), &[&va, &vb], "");
        let valid = match (self.valid[a.index()].clone(), self.valid[b.index()].clone()) {
            (None, None) => None,
            (na, nb) => {
                let or = op == BinaryOp::Or;
                let decides = |valid: &Option<String>, x: String| {
                    let x = if or { x } else { format!("!{x}") };
                    match valid {
                        Some(nv) => format!("({nv} && {x})"),
                        None => x,
                    }
                };
                let both = all_valid(&[na.clone(), nb.clone()]).expect("one is nullable");
                Some(format!(
                    "({both} || {} || {})",
                    decides(&na, va),
                    decides(&nb, vb)
                ))
            }
        };
        (value, valid)
    }

    /// `if_else(c, t, f)`: a null condition selects `otherwise`.
    fn if_else(&self, c: ExprId, t: ExprId, f: ExprId) -> (String, Option<String>) {
        let v = |id: ExprId| self.values[id.index()].clone();
        let n = |id: ExprId| self.valid[id.index()].clone();
        let cond = match n(c) {
            Some(nc) => format!("({nc} && {})", v(c)),
            None => v(c),
        };
        let valid = match (n(t), n(f)) {
            (None, None) => None,
            (nt, nf) => Some(self.select(
                &cond,
                nt.as_deref().unwrap_or("true"),
                nf.as_deref().unwrap_or("true"),
            )),
        };
        (self.select(&cond, &v(t), &v(f)), valid)
    }

    /// Declare an immutable variable and return its name.
    fn declare(&mut self, name: &str, ty: &str, expr: &str) -> String {
        self.statements.push(match self.lang {
            Lang::Wgsl => format!("let {name}: {ty} = {expr};"),
            Lang::Cuda => format!("const {ty} {name} = {expr};"),
        });
        name.to_string()
    }

    fn select(&self, cond: &str, if_true: &str, if_false: &str) -> String {
        match self.lang {
            Lang::Wgsl => format!("select({if_false}, {if_true}, {cond})"),
            Lang::Cuda => format!("({cond} ? {if_true} : {if_false})"),
        }
    }

    /// The WGSL type of a node, for type-suffixed helpers (`ff_min_f32`).
    fn wgsl_type(&self, id: ExprId) -> &'static str {
        match self.lang {
            Lang::Wgsl => type_name(Lang::Wgsl, self.projection.arena().dtype(id)),
            Lang::Cuda => "",
        }
    }
}

/// Fill a spelling template.
fn fill(template: &str, args: &[&str], ty: &str) -> String {
    let mut out = template.replace("{t}", ty);
    for (slot, arg) in ["{a}", "{b}", "{c}"].iter().zip(args) {
        out = out.replace(slot, arg);
    }
    out
}

/// The conjunction of validities; `None` when all are never null.
fn all_valid(valid: &[Option<String>]) -> Option<String> {
    let parts: Vec<&str> = valid.iter().flatten().map(String::as_str).collect();
    match parts.as_slice() {
        [] => None,
        [one] => Some((*one).to_string()),
        many => Some(format!("({})", many.join(" && "))),
    }
}

/// Bit `row` of the bit words `words` (Arrow's LSB-first bitmaps as u32 words).
fn bit(lang: Lang, words: &str) -> String {
    match lang {
        Lang::Wgsl => format!("((({words}[row >> 5u] >> (row & 31u)) & 1u) != 0u)"),
        Lang::Cuda => format!("ff_bit({words}, row)"),
    }
}

/// A constant in `lang`; NaN and infinities by their bits.
fn literal(lang: Lang, c: &Const, dtype: DType) -> String {
    let value = c.as_f64().unwrap_or(f64::NAN);
    match (lang, dtype) {
        (_, DType::Bool) => (value != 0.0).to_string(),
        (Lang::Wgsl, DType::Int32) | (Lang::Cuda, DType::Int32) => {
            let v = value as i32;
            let text = if v == i32::MIN {
                "(-2147483647 - 1)".to_string()
            } else {
                v.to_string()
            };
            match lang {
                Lang::Wgsl => format!("i32({text})"),
                Lang::Cuda => text,
            }
        }
        (Lang::Cuda, DType::Int64) => {
            let v = value as i64;
            if v == i64::MIN {
                "(-9223372036854775807LL - 1LL)".into()
            } else {
                format!("{v}LL")
            }
        }
        (_, DType::Float32) => {
            let v = value as f32;
            match (lang, v.is_finite()) {
                (Lang::Wgsl, true) => format!("{v:?}f"),
                (Lang::Wgsl, false) => format!("bitcast<f32>({:#010x}u)", v.to_bits()),
                (Lang::Cuda, true) => format!("{v:?}f"),
                (Lang::Cuda, false) => format!("__int_as_float({:#010x})", v.to_bits()),
            }
        }
        (Lang::Cuda, DType::Float64) => {
            if value.is_finite() {
                format!("{value:?}")
            } else {
                format!("__longlong_as_double({:#018x}LL)", value.to_bits())
            }
        }
        (_, other) => unreachable!("literal of {other} in {lang:?}; checked by `supported`"),
    }
}

/// A conversion, and the validity it adds: a float converted to an integer is
/// null unless its truncation is representable (NaN included), as on the CPU.
fn cast(lang: Lang, x: &str, from: DType, to: DType) -> (String, Option<String>) {
    if from == to {
        return (x.to_string(), None);
    }
    let value = match (to, lang) {
        // Not `x != 0`: NaN is true, and WGSL's `!=` may be ordered.
        (DType::Bool, _) => format!("(!({x} == {}))", literal(lang, &Const::Int(0), from)),
        (_, Lang::Wgsl) => format!("{}({x})", type_name(lang, to)),
        // Through f64 like the CPU's `from_f64(x.to_f64())`; see `ff_to_*` in prelude.cuh.
        (_, Lang::Cuda) => format!("ff_to_{}({x})", to.name()),
    };
    let in_range = (from.is_float() && to.is_integer()).then(|| {
        let bound = if to == DType::Int32 {
            2f64.powi(31)
        } else {
            2f64.powi(63)
        };
        let lit = |v: f64| literal(lang, &Const::Float(v.to_bits()), from);
        let trunc = match (lang, from) {
            (Lang::Cuda, DType::Float32) => format!("truncf({x})"),
            _ => format!("trunc({x})"),
        };
        format!("({trunc} >= {} && {trunc} < {})", lit(-bound), lit(bound))
    });
    (value, in_range)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::ir::{col, lit};

    fn projection(exprs: &[(&str, crate::ir::Expr)]) -> Projection {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float32, true),
            Field::new("y", DataType::Float32, true),
            Field::new("flag", DataType::Boolean, true),
        ]));
        let exprs: Vec<_> = exprs
            .iter()
            .map(|(n, e)| (n.to_string(), e.clone()))
            .collect();
        Projection::try_new(schema, &exprs).unwrap()
    }

    #[test]
    fn null_free_inputs_carry_no_validity() {
        let p = projection(&[("z", (col("x") + col("y")).sqrt())]);
        let body = fused_body(&p, Lang::Wgsl, &[false, false, false], "test").unwrap();
        assert_eq!(body.outputs[0].valid, None);
        assert!(body.statements.iter().all(|s| !s.contains("valid")));
        assert_eq!(
            body.inputs.iter().map(|i| i.column).collect::<Vec<_>>(),
            vec![0, 1]
        );
    }

    #[test]
    fn fill_null_with_a_literal_removes_validity() {
        let p = projection(&[("z", col("x").fill_null(lit(0.5)) * lit(2.0))]);
        let body = fused_body(&p, Lang::Cuda, &[true, true, true], "test").unwrap();
        assert_eq!(body.outputs[0].valid, None);
        assert!(body.statements.iter().any(|s| s.contains("valid0")));
    }

    #[test]
    fn f64_is_refused_in_wgsl_only() {
        let p = projection(&[("z", col("x").cast(DType::Float64))]);
        let err = fused_body(&p, Lang::Wgsl, &[true, true, true], "wgpu: test").unwrap_err();
        assert!(matches!(
            err,
            Error::Device {
                failure: DeviceFailure::Unsupported,
                ..
            }
        ));
        assert!(err.to_string().contains("'z'"), "{err}");
        fused_body(&p, Lang::Cuda, &[true, true, true], "cuda").unwrap();
    }
}
