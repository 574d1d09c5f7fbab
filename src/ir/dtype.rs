//! Column data types and literal values understood by the expression IR.

use std::fmt;

use arrow_schema::DataType;

/// The data types fuseflow computes on.
///
/// Arrow inputs with other integer or string encodings (Int8, UInt16, LargeUtf8,
/// Utf8View, ...) are normalized to one of these when they are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Boolean.
    Bool,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit IEEE float.
    Float32,
    /// 64-bit IEEE float.
    Float64,
    /// UTF-8 string, used for categorical columns.
    Utf8,
}

impl DType {
    /// The Arrow type this dtype is stored as.
    pub fn to_arrow(self) -> DataType {
        match self {
            DType::Bool => DataType::Boolean,
            DType::Int32 => DataType::Int32,
            DType::Int64 => DataType::Int64,
            DType::Float32 => DataType::Float32,
            DType::Float64 => DataType::Float64,
            DType::Utf8 => DataType::Utf8,
        }
    }

    /// The dtype of an Arrow type, if fuseflow computes on it directly.
    pub fn from_arrow(dt: &DataType) -> Option<Self> {
        Some(match dt {
            DataType::Boolean => DType::Bool,
            DataType::Int32 => DType::Int32,
            DataType::Int64 => DType::Int64,
            DataType::Float32 => DType::Float32,
            DataType::Float64 => DType::Float64,
            DataType::Utf8 => DType::Utf8,
            _ => return None,
        })
    }

    /// The dtype an Arrow type is normalized to on ingest (wider or equal, never lossy),
    /// or `None` when fuseflow cannot compute on it.
    pub fn normalized_from_arrow(dt: &DataType) -> Option<Self> {
        Self::from_arrow(dt).or(match dt {
            DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => {
                Some(DType::Int32)
            }
            DataType::UInt32 => Some(DType::Int64),
            DataType::Float16 => Some(DType::Float32),
            DataType::LargeUtf8 | DataType::Utf8View => Some(DType::Utf8),
            DataType::Dictionary(_, value) => {
                Self::normalized_from_arrow(value).filter(|d| *d == DType::Utf8)
            }
            _ => None,
        })
    }

    /// Parse a dtype name as written in spec files and expressions.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "bool" | "boolean" => DType::Bool,
            "i32" | "int32" => DType::Int32,
            "i64" | "int64" | "int" => DType::Int64,
            "f32" | "float32" => DType::Float32,
            "f64" | "float64" | "float" => DType::Float64,
            "utf8" | "str" | "string" => DType::Utf8,
            _ => return None,
        })
    }

    /// The short name used in messages and spec files.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::Int32 => "i32",
            DType::Int64 => "i64",
            DType::Float32 => "f32",
            DType::Float64 => "f64",
            DType::Utf8 => "utf8",
        }
    }

    /// Integer or float.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || self.is_float()
    }

    /// Int32 or Int64.
    pub fn is_integer(self) -> bool {
        matches!(self, DType::Int32 | DType::Int64)
    }

    /// Float32 or Float64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::Float32 | DType::Float64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A literal value in an expression.
///
/// Numeric literals are *weakly typed*: `col("x") * 2.0` keeps the type of `x`
/// (f32 stays f32) instead of promoting the column to f64.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A boolean literal.
    Bool(bool),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal.
    Str(String),
}

impl Scalar {
    /// The dtype a literal has when nothing constrains it.
    pub fn default_dtype(&self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::Int64,
            Scalar::Float(_) => DType::Float64,
            Scalar::Str(_) => DType::Utf8,
        }
    }

    /// The value as f64, for numeric and boolean literals.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Bool(b) => Some(f64::from(u8::from(*b))),
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(x) => Some(*x),
            Scalar::Str(_) => None,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 => {
                write!(f, "{x:.1}")
            }
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<f32> for Scalar {
    fn from(v: f32) -> Self {
        Scalar::Float(f64::from(v))
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}
impl From<i32> for Scalar {
    fn from(v: i32) -> Self {
        Scalar::Int(i64::from(v))
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}
impl From<&str> for Scalar {
    fn from(v: &str) -> Self {
        Scalar::Str(v.to_string())
    }
}
impl From<String> for Scalar {
    fn from(v: String) -> Self {
        Scalar::Str(v)
    }
}
