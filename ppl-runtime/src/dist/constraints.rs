//! Constraints: the sets that parameters and supports live in, as in `torch.distributions.constraints`.
//!
//! A constraint checks values ([`Constraint::check`]) and, through
//! [`biject_to`](crate::dist::transforms::biject_to), names the transform that maps the
//! unconstrained reals onto it.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use std::fmt;
use std::str::FromStr;

/// A constraint on values. Elementwise unless noted; `event_dim` tells how many rightmost dims
/// one checked event spans.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// All real numbers (finite).
    Real,
    /// `x > 0`.
    Positive,
    /// `x >= 0`.
    Nonnegative,
    /// `x > lower`.
    GreaterThan(f64),
    /// `x >= lower`.
    GreaterThanEq(f64),
    /// `x < upper`.
    LessThan(f64),
    /// `lower <= x <= upper`.
    Interval(f64, f64),
    /// `lower <= x < upper`.
    HalfOpenInterval(f64, f64),
    /// `0 <= x <= 1`.
    UnitInterval,
    /// Nonnegative vectors summing to one (event_dim 1).
    Simplex,
    /// Lower-triangular matrices with positive diagonal (event_dim 2).
    LowerCholesky,
    /// Lower-Cholesky factors of correlation matrices: rows of unit norm (event_dim 2).
    CorrCholesky,
    /// Symmetric positive-definite matrices (event_dim 2).
    PositiveDefinite,
    /// Strictly increasing vectors (event_dim 1).
    OrderedVector,
    /// Integers in `lower..=upper`.
    IntegerInterval(i64, i64),
    /// Integers `>= lower`.
    IntegerGreaterThanEq(i64),
    /// `0` or `1`.
    Boolean,
    /// `0, 1, 2, ...`.
    NonnegativeInteger,
    /// `1, 2, 3, ...`.
    PositiveInteger,
    /// One-hot vectors (event_dim 1).
    OneHot,
    /// Real vectors (event_dim 1).
    RealVector,
    /// `base` applied to events of `reinterpreted` more rightmost dims.
    Independent(Box<Constraint>, usize),
}

impl Constraint {
    /// How many rightmost dims one event of this constraint spans.
    pub fn event_dim(&self) -> usize {
        use Constraint::*;
        match self {
            Simplex | OrderedVector | OneHot | RealVector => 1,
            LowerCholesky | CorrCholesky | PositiveDefinite => 2,
            Independent(base, n) => base.event_dim() + n,
            _ => 0,
        }
    }

    /// Whether values are integers or booleans.
    pub fn is_discrete(&self) -> bool {
        use Constraint::*;
        match self {
            IntegerInterval(..) | IntegerGreaterThanEq(_) | Boolean | NonnegativeInteger | PositiveInteger | OneHot => {
                true
            }
            Independent(base, _) => base.is_discrete(),
            _ => false,
        }
    }

    /// `self` reinterpreted over `n` more rightmost dims (no-op for `n == 0`).
    pub fn independent(self, n: usize) -> Constraint {
        match (self, n) {
            (c, 0) => c,
            (Constraint::Independent(b, m), n) => Constraint::Independent(b, m + n),
            (c, n) => Constraint::Independent(Box::new(c), n),
        }
    }

    /// Whether a scalar satisfies an elementwise constraint (`None` for event constraints).
    fn check_scalar(&self, x: f64) -> Option<bool> {
        use Constraint::*;
        let int = x.is_finite() && x == x.round();
        Some(match self {
            Real => x.is_finite(),
            Positive => x > 0.0 && !x.is_nan(),
            Nonnegative => x >= 0.0,
            GreaterThan(l) => x > *l,
            GreaterThanEq(l) => x >= *l,
            LessThan(u) => x < *u,
            Interval(l, u) => x >= *l && x <= *u,
            HalfOpenInterval(l, u) => x >= *l && x < *u,
            UnitInterval => (0.0..=1.0).contains(&x),
            IntegerInterval(l, u) => int && x >= *l as f64 && x <= *u as f64,
            IntegerGreaterThanEq(l) => int && x >= *l as f64,
            Boolean => x == 0.0 || x == 1.0,
            NonnegativeInteger => int && x >= 0.0,
            PositiveInteger => int && x >= 1.0,
            _ => return None,
        })
    }

    /// Checks one event (a flat slice of `event_dims` row-major) of an event constraint.
    fn check_event(&self, v: &[f64], event_dims: &[usize], tol: f64) -> bool {
        use Constraint::*;
        match self {
            Simplex => v.iter().all(|&x| x >= 0.0) && (v.iter().sum::<f64>() - 1.0).abs() <= tol * v.len().max(1) as f64,
            OrderedVector => v.iter().all(|x| x.is_finite()) && v.windows(2).all(|w| w[0] < w[1]),
            OneHot => v.iter().all(|&x| x == 0.0 || x == 1.0) && v.iter().sum::<f64>() == 1.0,
            RealVector => v.iter().all(|x| x.is_finite()),
            LowerCholesky | CorrCholesky | PositiveDefinite => {
                let (r, c) = (event_dims[0], event_dims[1]);
                if r != c {
                    return false;
                }
                let at = |i: usize, j: usize| v[i * c + j];
                match self {
                    LowerCholesky => (0..r).all(|i| {
                        at(i, i) > 0.0 && (0..c).all(|j| (j <= i && at(i, j).is_finite()) || (j > i && at(i, j) == 0.0))
                    }),
                    CorrCholesky => (0..r).all(|i| {
                        let norm: f64 = (0..c).map(|j| at(i, j) * at(i, j)).sum();
                        at(i, i) > 0.0 && (0..c).all(|j| j <= i || at(i, j) == 0.0) && (norm - 1.0).abs() <= tol * c as f64
                    }),
                    _ => {
                        let sym = (0..r).all(|i| (0..c).all(|j| (at(i, j) - at(j, i)).abs() <= tol * (1.0 + at(i, j).abs())));
                        sym && cholesky_ok(v, r)
                    }
                }
            }
            _ => false,
        }
    }

    /// A `u8` tensor of the value's shape less the constraint's event dims: 1 where the
    /// constraint holds.
    pub fn check(&self, value: &Tensor) -> Result<Tensor> {
        let (ok, shape) = self.check_host(value)?;
        let v: Vec<u8> = ok.into_iter().map(u8::from).collect();
        Ok(Tensor::from_vec(v, shape, value.device())?)
    }

    /// Host-side check: one flag per event, and the shape of the flags.
    fn check_host(&self, value: &Tensor) -> Result<(Vec<bool>, Vec<usize>)> {
        let ed = self.event_dim();
        let dims = value.dims();
        if dims.len() < ed {
            return Err(Error::ShapeMismatch {
                context: format!("constraint `{self}` needs {ed} event dim(s)"),
                expected: format!("rank >= {ed}"),
                got: format!("{dims:?}"),
                hint: None,
            });
        }
        let tol = if value.dtype() == DType::F64 { 1e-6 } else { 1e-4 };
        let flat = value.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let batch = dims[..dims.len() - ed].to_vec();
        let event_dims = &dims[dims.len() - ed..];
        let esize: usize = event_dims.iter().product();
        let (base, base_ed) = match self {
            Constraint::Independent(b, _) => (b.as_ref(), b.event_dim()),
            c => (c, ed),
        };
        let base_event_dims = &dims[dims.len() - base_ed..];
        let base_size: usize = base_event_dims.iter().product();
        let ok = if esize == 0 {
            vec![true; batch.iter().product()]
        } else {
            flat.chunks(esize)
                .map(|event| {
                    if base_ed == 0 {
                        event.iter().all(|&x| base.check_scalar(x).unwrap_or(false))
                    } else {
                        event.chunks(base_size.max(1)).all(|sub| base.check_event(sub, base_event_dims, tol))
                    }
                })
                .collect()
        };
        Ok((ok, batch))
    }

    /// `None` when every element satisfies the constraint; otherwise a description of the
    /// first element (or event) that does not, e.g. `element [1, 0] is -2`.
    pub fn first_violation(&self, value: &Tensor) -> Result<Option<String>> {
        let (ok, batch) = self.check_host(value)?;
        let Some(bad) = ok.iter().position(|b| !b) else { return Ok(None) };
        let idx = unravel(bad, &batch);
        let ed = self.event_dim();
        let mut t = value.clone();
        for &i in &idx {
            t = t.get(i)?;
        }
        let shown = if ed == 0 {
            format!("{}", t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
        } else {
            let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let mut s = format!("{v:?}");
            if s.len() > 120 {
                s.truncate(117);
                s.push_str("...");
            }
            s
        };
        let what = if ed == 0 { "element" } else { "event" };
        let n_bad = ok.iter().filter(|b| !**b).count();
        let more = if n_bad > 1 { format!(" ({n_bad} of {} fail)", ok.len()) } else { String::new() };
        Ok(Some(format!("{what} {idx:?} is {shown}{more}")))
    }
}

fn cholesky_ok(a: &[f64], n: usize) -> bool {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d.is_nan() || d <= 0.0 {
                    return false;
                }
                l[i * n + j] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    true
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        idx[d] = flat % n.max(1);
        flat /= n.max(1);
    }
    idx
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Constraint::*;
        match self {
            Real => write!(f, "real"),
            Positive => write!(f, "positive"),
            Nonnegative => write!(f, "nonnegative"),
            GreaterThan(l) => write!(f, "greater_than({l})"),
            GreaterThanEq(l) => write!(f, "greater_than_eq({l})"),
            LessThan(u) => write!(f, "less_than({u})"),
            Interval(l, u) => write!(f, "interval({l}, {u})"),
            HalfOpenInterval(l, u) => write!(f, "half_open_interval({l}, {u})"),
            UnitInterval => write!(f, "unit_interval"),
            Simplex => write!(f, "simplex"),
            LowerCholesky => write!(f, "lower_cholesky"),
            CorrCholesky => write!(f, "corr_cholesky"),
            PositiveDefinite => write!(f, "positive_definite"),
            OrderedVector => write!(f, "ordered_vector"),
            IntegerInterval(l, u) => write!(f, "integer_interval({l}, {u})"),
            IntegerGreaterThanEq(l) => write!(f, "integer_greater_than_eq({l})"),
            Boolean => write!(f, "boolean"),
            NonnegativeInteger => write!(f, "nonnegative_integer"),
            PositiveInteger => write!(f, "positive_integer"),
            OneHot => write!(f, "one_hot"),
            RealVector => write!(f, "real_vector"),
            Independent(b, n) => write!(f, "independent({b}, {n})"),
        }
    }
}

impl FromStr for Constraint {
    type Err = Error;

    /// Parses the [`Display`](fmt::Display) form back, e.g. `interval(0, 1)`.
    fn from_str(s: &str) -> Result<Self> {
        use Constraint::*;
        let bad = || Error::invalid_arg("Constraint::from_str", "s", format!("unknown constraint `{s}`"));
        let s = s.trim();
        let (head, args) = match s.find('(') {
            Some(i) if s.ends_with(')') => (&s[..i], Some(&s[i + 1..s.len() - 1])),
            None => (s, None),
            _ => return Err(bad()),
        };
        let nums = |a: &str| -> Result<Vec<f64>> {
            a.split(',').map(|x| x.trim().parse::<f64>().map_err(|_| bad())).collect()
        };
        Ok(match (head, args) {
            ("real", None) => Real,
            ("positive", None) => Positive,
            ("nonnegative", None) => Nonnegative,
            ("unit_interval", None) => UnitInterval,
            ("simplex", None) => Simplex,
            ("lower_cholesky", None) => LowerCholesky,
            ("corr_cholesky", None) => CorrCholesky,
            ("positive_definite", None) => PositiveDefinite,
            ("ordered_vector", None) => OrderedVector,
            ("boolean", None) => Boolean,
            ("nonnegative_integer", None) => NonnegativeInteger,
            ("positive_integer", None) => PositiveInteger,
            ("one_hot", None) => OneHot,
            ("real_vector", None) => RealVector,
            ("independent", Some(a)) => {
                let i = a.rfind(',').ok_or_else(bad)?;
                let n = a[i + 1..].trim().parse::<usize>().map_err(|_| bad())?;
                Independent(Box::new(a[..i].parse()?), n)
            }
            (h, Some(a)) => {
                let v = nums(a)?;
                match (h, v.as_slice()) {
                    ("greater_than", [l]) => GreaterThan(*l),
                    ("greater_than_eq", [l]) => GreaterThanEq(*l),
                    ("less_than", [u]) => LessThan(*u),
                    ("interval", [l, u]) => Interval(*l, *u),
                    ("half_open_interval", [l, u]) => HalfOpenInterval(*l, *u),
                    ("integer_interval", [l, u]) => IntegerInterval(*l as i64, *u as i64),
                    ("integer_greater_than_eq", [l]) => IntegerGreaterThanEq(*l as i64),
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// Lowercase constructors, as in `torch.distributions.constraints`.
#[allow(clippy::module_inception)]
pub mod constraints {
    pub use super::Constraint;
    /// All reals.
    pub const REAL: Constraint = Constraint::Real;
    /// `x > 0`.
    pub const POSITIVE: Constraint = Constraint::Positive;
    /// `x >= 0`.
    pub const NONNEGATIVE: Constraint = Constraint::Nonnegative;
    /// `[0, 1]`.
    pub const UNIT_INTERVAL: Constraint = Constraint::UnitInterval;
    /// The probability simplex.
    pub const SIMPLEX: Constraint = Constraint::Simplex;
    /// `x > lower`.
    pub fn greater_than(lower: f64) -> Constraint {
        Constraint::GreaterThan(lower)
    }
    /// `x < upper`.
    pub fn less_than(upper: f64) -> Constraint {
        Constraint::LessThan(upper)
    }
    /// `lower <= x <= upper`.
    pub fn interval(lower: f64, upper: f64) -> Constraint {
        Constraint::Interval(lower, upper)
    }
    /// Integers in `lower..=upper`.
    pub fn integer_interval(lower: i64, upper: i64) -> Constraint {
        Constraint::IntegerInterval(lower, upper)
    }
    /// `x >= lower`.
    pub fn greater_than_eq(lower: f64) -> Constraint {
        Constraint::GreaterThanEq(lower)
    }
    /// `lower <= x < upper`.
    pub fn half_open_interval(lower: f64, upper: f64) -> Constraint {
        Constraint::HalfOpenInterval(lower, upper)
    }
    /// Integers `>= lower`.
    pub fn integer_greater_than_eq(lower: i64) -> Constraint {
        Constraint::IntegerGreaterThanEq(lower)
    }
    /// `base` over `reinterpreted` more rightmost dims.
    pub fn independent(base: Constraint, reinterpreted: usize) -> Constraint {
        base.independent(reinterpreted)
    }
    /// Lower-triangular matrices with positive diagonal.
    pub const LOWER_CHOLESKY: Constraint = Constraint::LowerCholesky;
    /// Lower-Cholesky factors of correlation matrices.
    pub const CORR_CHOLESKY: Constraint = Constraint::CorrCholesky;
    /// Symmetric positive-definite matrices.
    pub const POSITIVE_DEFINITE: Constraint = Constraint::PositiveDefinite;
    /// Strictly increasing vectors.
    pub const ORDERED_VECTOR: Constraint = Constraint::OrderedVector;
    /// `0` or `1`.
    pub const BOOLEAN: Constraint = Constraint::Boolean;
    /// `0, 1, 2, ...`.
    pub const NONNEGATIVE_INTEGER: Constraint = Constraint::NonnegativeInteger;
    /// `1, 2, 3, ...`.
    pub const POSITIVE_INTEGER: Constraint = Constraint::PositiveInteger;
    /// One-hot vectors.
    pub const ONE_HOT: Constraint = Constraint::OneHot;
    /// Real vectors.
    pub const REAL_VECTOR: Constraint = Constraint::RealVector;
}
