//! Bijective transforms with log-abs-det-Jacobians, and [`biject_to`], which maps a constraint
//! to the transform from the unconstrained reals onto it (as in Pyro).
//!
//! Conventions follow `torch.distributions.transforms`: a transform acts jointly on the
//! rightmost `domain_event_dim` dims of its input, and `log_abs_det_jacobian(x, y)` is summed
//! over them, so it has the input's shape less those dims. For transforms that change the
//! dimension (stick-breaking: `K-1 → K`; corr-Cholesky: `K(K-1)/2 → K×K`; vector → lower
//! Cholesky) the Jacobian is that of the map onto the output's free coordinates.
//!
//! References: `torch/distributions/transforms.py`; Stan Reference Manual, "Constraint
//! transforms" (stick-breaking, Cholesky factors of correlation matrices).

mod elementwise;
mod matrix;

pub use elementwise::{AffineTransform, ExpTransform, IdentityTransform, PowerTransform, SigmoidTransform, SoftplusTransform};
pub use matrix::{CholeskyTransform, CorrCholeskyTransform, LowerCholeskyTransform, OrderedTransform, StickBreakingTransform};

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
    /// `Some(+1.0)` or `Some(-1.0)` for an elementwise transform that is monotone increasing or
    /// decreasing everywhere (used by cdfs of transformed distributions); `None` otherwise.
    fn sign(&self) -> Option<f64> {
        None
    }
    /// For an [`InverseTransform`], the transform it inverts (so that `t.inv().inv()` is `t`).
    fn inverse_of(&self) -> Option<TransformRef> {
        None
    }
}

/// `inv()` for shared transforms.
pub trait TransformRefExt {
    /// The inverse transform (unwrapping a double inverse), as torch's `Transform.inv`.
    fn inv(&self) -> TransformRef;
}

impl TransformRefExt for TransformRef {
    fn inv(&self) -> TransformRef {
        match self.inverse_of() {
            Some(t) => t,
            None => Arc::new(InverseTransform::new(self.clone())),
        }
    }
}

/// `inv()` and boxing for concrete transforms.
pub trait TransformExt: Transform + Sized {
    /// The inverse transform.
    fn inv(self) -> InverseTransform {
        InverseTransform::new(Arc::new(self))
    }
    /// Boxes the transform into a shared [`TransformRef`].
    fn into_ref(self) -> TransformRef {
        Arc::new(self)
    }
}

impl<T: Transform> TransformExt for T {}

/// Sums the `n` rightmost dims of `t`.
pub(crate) fn sum_rightmost(t: Tensor, n: usize) -> Result<Tensor> {
    if n > t.rank() {
        return Err(Error::shape_mismatch(format!("cannot sum the {n} rightmost dims"), &vec![1; n], t.dims()));
    }
    let mut t = t;
    for _ in 0..n {
        t = t.sum(t.rank() - 1)?;
    }
    Ok(t)
}

/// Errors unless `t` has at least `need` dims.
pub(crate) fn check_rank(name: &str, what: &str, t: &[usize], need: usize) -> Result<()> {
    if t.len() < need {
        return Err(Error::ShapeMismatch {
            context: format!("`{name}`.{what}: the input needs {need} event dim(s)"),
            expected: format!("rank >= {need}"),
            got: format!("{t:?}"),
            hint: None,
        });
    }
    Ok(())
}

/// The inverse `y ↦ f⁻¹(y)` of a transform `f` (torch's `_InverseTransform`).
#[derive(Clone, Debug)]
pub struct InverseTransform {
    base: TransformRef,
}

impl InverseTransform {
    /// The inverse of `base`.
    pub fn new(base: TransformRef) -> Self {
        InverseTransform { base }
    }
}

impl Transform for InverseTransform {
    fn name(&self) -> &'static str {
        "InverseTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.base.inverse(x)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.base.forward(y)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(self.base.log_abs_det_jacobian(y, x)?.neg()?)
    }
    fn domain(&self) -> Constraint {
        self.base.codomain()
    }
    fn codomain(&self) -> Constraint {
        self.base.domain()
    }
    fn domain_event_dim(&self) -> usize {
        self.base.codomain_event_dim()
    }
    fn codomain_event_dim(&self) -> usize {
        self.base.domain_event_dim()
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.base.inverse_shape(shape)
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.base.forward_shape(shape)
    }
    fn sign(&self) -> Option<f64> {
        self.base.sign()
    }
    fn inverse_of(&self) -> Option<TransformRef> {
        Some(self.base.clone())
    }
}

/// `base` applied to events with `reinterpreted` more rightmost dims: the Jacobian term is
/// summed over them (torch's `IndependentTransform`).
#[derive(Clone, Debug)]
pub struct IndependentTransform {
    base: TransformRef,
    reinterpreted: usize,
}

impl IndependentTransform {
    /// `base` acting on events with `reinterpreted` more rightmost dims.
    pub fn new(base: TransformRef, reinterpreted: usize) -> Self {
        IndependentTransform { base, reinterpreted }
    }
}

impl Transform for IndependentTransform {
    fn name(&self) -> &'static str {
        "IndependentTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(self.name(), "forward", x.dims(), self.domain_event_dim())?;
        self.base.forward(x)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        check_rank(self.name(), "inverse", y.dims(), self.codomain_event_dim())?;
        self.base.inverse(y)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        sum_rightmost(self.base.log_abs_det_jacobian(x, y)?, self.reinterpreted)
    }
    fn domain(&self) -> Constraint {
        self.base.domain().independent(self.reinterpreted)
    }
    fn codomain(&self) -> Constraint {
        self.base.codomain().independent(self.reinterpreted)
    }
    fn domain_event_dim(&self) -> usize {
        self.base.domain_event_dim() + self.reinterpreted
    }
    fn codomain_event_dim(&self) -> usize {
        self.base.codomain_event_dim() + self.reinterpreted
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.base.forward_shape(shape)
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.base.inverse_shape(shape)
    }
    fn sign(&self) -> Option<f64> {
        self.base.sign()
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
        // As torch: each part's term is summed over the event dims it does not cover itself,
        // tracking how the event rank changes along the chain.
        let mut event_dim = self.domain_event_dim() as isize;
        let mut x = x.clone();
        let mut total: Option<Tensor> = None;
        for t in &self.parts {
            let y = t.forward(&x)?;
            let extra = (event_dim - t.domain_event_dim() as isize).max(0) as usize;
            let term = sum_rightmost(t.log_abs_det_jacobian(&x, &y)?, extra)?;
            total = Some(match total {
                None => term,
                Some(acc) => acc.broadcast_add(&term)?,
            });
            event_dim += t.codomain_event_dim() as isize - t.domain_event_dim() as isize;
            x = y;
        }
        match total {
            Some(t) => Ok(t),
            None => sum_rightmost(x.zeros_like()?, self.domain_event_dim()),
        }
    }
    fn domain(&self) -> Constraint {
        let base = self.parts.first().map(|t| t.domain()).unwrap_or(Constraint::Real);
        let extra = self.domain_event_dim().saturating_sub(base.event_dim());
        base.independent(extra)
    }
    fn codomain(&self) -> Constraint {
        let base = self.parts.last().map(|t| t.codomain()).unwrap_or(Constraint::Real);
        let extra = self.codomain_event_dim().saturating_sub(base.event_dim());
        base.independent(extra)
    }
    fn domain_event_dim(&self) -> usize {
        // torch's rule: walk back from the last codomain, keeping the largest rank needed.
        let Some(last) = self.parts.last() else { return 0 };
        let mut ed = last.codomain_event_dim() as isize;
        for t in self.parts.iter().rev() {
            ed += t.domain_event_dim() as isize - t.codomain_event_dim() as isize;
            ed = ed.max(t.domain_event_dim() as isize);
        }
        ed as usize
    }
    fn codomain_event_dim(&self) -> usize {
        let Some(first) = self.parts.first() else { return 0 };
        let mut ed = first.domain_event_dim() as isize;
        for t in &self.parts {
            ed += t.codomain_event_dim() as isize - t.domain_event_dim() as isize;
            ed = ed.max(t.codomain_event_dim() as isize);
        }
        ed as usize
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.parts.iter().try_fold(shape.to_vec(), |s, t| t.forward_shape(&s))
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.parts.iter().rev().try_fold(shape.to_vec(), |s, t| t.inverse_shape(&s))
    }
    fn sign(&self) -> Option<f64> {
        self.parts.iter().try_fold(1.0, |s, t| t.sign().map(|x| s * x))
    }
}

/// The transform from unconstrained reals onto `constraint`, as Pyro's `biject_to`.
///
/// Matrix constraints use free-coordinate vectors on the unconstrained side, so that the map
/// is a true bijection (no flat directions for MCMC): `lower_cholesky` takes a vector of
/// `n(n+1)/2` entries ([`LowerCholeskyTransform::from_vector`]), `corr_cholesky` one of
/// `K(K-1)/2`, and `positive_definite` is that lower-Cholesky map followed by `L ↦ L Lᵀ`.
pub fn biject_to(constraint: &Constraint) -> Result<TransformRef> {
    use Constraint::*;
    Ok(match constraint {
        Real => Arc::new(IdentityTransform),
        RealVector => Arc::new(IndependentTransform::new(Arc::new(IdentityTransform), 1)),
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
        Simplex => Arc::new(StickBreakingTransform),
        LowerCholesky => Arc::new(LowerCholeskyTransform::from_vector()),
        CorrCholesky => Arc::new(CorrCholeskyTransform),
        PositiveDefinite => Arc::new(ComposeTransform::new(vec![
            Arc::new(LowerCholeskyTransform::from_vector()),
            Arc::new(CholeskyTransform.inv()),
        ])),
        OrderedVector => Arc::new(OrderedTransform),
        Independent(base, n) => Arc::new(IndependentTransform::new(biject_to(base)?, *n)),
        c => {
            return Err(Error::Unsupported {
                dist: "biject_to",
                method: "transform",
                hint: Some(format!("no bijection from the reals onto the discrete constraint `{c}`")),
            });
        }
    })
}
