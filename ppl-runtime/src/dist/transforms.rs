//! Bijective transforms with log-abs-det-Jacobians, and [`biject_to`], which maps a constraint
//! to the transform from the unconstrained reals onto it (as in Pyro).

use crate::dist::constraints::Constraint;
use crate::error::{Error, Result};
use candle_core::Tensor;
use std::fmt::Debug;
use std::sync::Arc;

/// A shared transform.
pub type TransformRef = Arc<dyn Transform>;

/// A bijection `y = f(x)` between a domain and a codomain constraint.
pub trait Transform: Debug + Send + Sync + 'static {
    /// Name used in error messages, e.g. `"ExpTransform"`.
    fn name(&self) -> &'static str;
    /// `y = f(x)`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// `x = f⁻¹(y)`.
    fn inverse(&self, y: &Tensor) -> Result<Tensor>;
    /// `log |det J_f(x)|`, summed over the transform's event dims (`y = f(x)` is given to save work).
    fn log_abs_det_jacobian(&self, x: &Tensor, y: &Tensor) -> Result<Tensor>;
    /// The constraint on inputs.
    fn domain(&self) -> Constraint;
    /// The constraint on outputs.
    fn codomain(&self) -> Constraint;
    /// Rightmost dims of the input that one application acts on jointly.
    fn domain_event_dim(&self) -> usize {
        self.domain().event_dim()
    }
    /// Rightmost dims of the output that one application produces jointly.
    fn codomain_event_dim(&self) -> usize {
        self.codomain().event_dim()
    }
    /// Shape of the output for an input of shape `shape` (same unless the transform changes it).
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        Ok(shape.to_vec())
    }
    /// Shape of the input for an output of shape `shape`.
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        Ok(shape.to_vec())
    }
}

/// `y = x`.
#[derive(Clone, Debug, Default)]
pub struct IdentityTransform;

impl Transform for IdentityTransform {
    fn name(&self) -> &'static str {
        "IdentityTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        Ok(y.clone())
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(x.zeros_like()?)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::Real
    }
}

/// `y = exp(x)`.
#[derive(Clone, Debug, Default)]
pub struct ExpTransform;

impl Transform for ExpTransform {
    fn name(&self) -> &'static str {
        "ExpTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.exp()?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        Ok(y.log()?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::Positive
    }
}

/// `y = loc + scale * x`, elementwise with scalar `loc` and `scale`.
#[derive(Clone, Debug)]
pub struct AffineTransform {
    /// Offset.
    pub loc: f64,
    /// Multiplier (non-zero).
    pub scale: f64,
}

impl AffineTransform {
    /// `y = loc + scale * x`; `scale` must be non-zero and finite.
    pub fn new(loc: f64, scale: f64) -> Result<Self> {
        if scale == 0.0 || !scale.is_finite() || !loc.is_finite() {
            return Err(Error::invalid_arg("AffineTransform", "scale", format!("must be finite and non-zero, got {scale}")));
        }
        Ok(AffineTransform { loc, scale })
    }
}

impl Transform for AffineTransform {
    fn name(&self) -> &'static str {
        "AffineTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.affine(self.scale, self.loc)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        Ok(y.affine(1.0 / self.scale, -self.loc / self.scale)?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(x.ones_like()?.affine(self.scale.abs().ln(), 0.0)?)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::Real
    }
}

/// `y = 1 / (1 + exp(-x))`.
#[derive(Clone, Debug, Default)]
pub struct SigmoidTransform;

impl Transform for SigmoidTransform {
    fn name(&self) -> &'static str {
        "SigmoidTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(x)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        // logit(y) = log(y) - log(1 - y)
        Ok((y.log()? - y.affine(-1.0, 1.0)?.log()?)?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        // log σ'(x) = -softplus(-x) - softplus(x)
        Ok((crate::dist::special::softplus(&x.neg()?)? + crate::dist::special::softplus(x)?)?.neg()?)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::UnitInterval
    }
}

/// Applies `parts` in order: `y = f_n(...f_1(x))`.
#[derive(Clone, Debug)]
pub struct ComposeTransform {
    /// The transforms, first applied first.
    pub parts: Vec<TransformRef>,
}

impl ComposeTransform {
    /// Composes `parts`, the first applied first.
    pub fn new(parts: Vec<TransformRef>) -> Self {
        ComposeTransform { parts }
    }
}

impl Transform for ComposeTransform {
    fn name(&self) -> &'static str {
        "ComposeTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.parts.iter().try_fold(x.clone(), |x, t| t.forward(&x))
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.parts.iter().rev().try_fold(y.clone(), |y, t| t.inverse(&y))
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        // Each part's term is summed down to the largest event dim of the chain.
        let ed = self.domain_event_dim().max(self.codomain_event_dim());
        let mut x = x.clone();
        let mut total: Option<Tensor> = None;
        for t in &self.parts {
            let y = t.forward(&x)?;
            let mut term = t.log_abs_det_jacobian(&x, &y)?;
            let extra = ed.saturating_sub(t.domain_event_dim().max(t.codomain_event_dim()));
            for _ in 0..extra {
                term = term.sum(term.rank() - 1)?;
            }
            total = Some(match total {
                None => term,
                Some(acc) => acc.broadcast_add(&term)?,
            });
            x = y;
        }
        match total {
            Some(t) => Ok(t),
            None => Ok(x.zeros_like()?),
        }
    }
    fn domain(&self) -> Constraint {
        self.parts.first().map(|t| t.domain()).unwrap_or(Constraint::Real)
    }
    fn codomain(&self) -> Constraint {
        self.parts.last().map(|t| t.codomain()).unwrap_or(Constraint::Real)
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.parts.iter().try_fold(shape.to_vec(), |s, t| t.forward_shape(&s))
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.parts.iter().rev().try_fold(shape.to_vec(), |s, t| t.inverse_shape(&s))
    }
}

/// The transform from unconstrained reals onto `constraint`, as Pyro's `biject_to`.
pub fn biject_to(constraint: &Constraint) -> Result<TransformRef> {
    use Constraint::*;
    Ok(match constraint {
        Real | RealVector => Arc::new(IdentityTransform),
        Positive | Nonnegative => Arc::new(ExpTransform),
        GreaterThan(l) | GreaterThanEq(l) => {
            Arc::new(ComposeTransform::new(vec![Arc::new(ExpTransform), Arc::new(AffineTransform::new(*l, 1.0)?)]))
        }
        LessThan(u) => {
            Arc::new(ComposeTransform::new(vec![Arc::new(ExpTransform), Arc::new(AffineTransform::new(*u, -1.0)?)]))
        }
        UnitInterval => Arc::new(SigmoidTransform),
        Interval(l, u) | HalfOpenInterval(l, u) => Arc::new(ComposeTransform::new(vec![
            Arc::new(SigmoidTransform),
            Arc::new(AffineTransform::new(*l, u - l)?),
        ])),
        Independent(base, _) => biject_to(base)?,
        c => {
            return Err(Error::Unsupported {
                dist: "biject_to",
                method: "transform",
                hint: Some(format!("no bijection onto constraint `{c}`")),
            })
        }
    })
}
