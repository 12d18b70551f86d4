//! The beta distribution.

use crate::dist::special;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::gamma::standard_gamma_log;
use crate::dist::ops;
use crate::dist::special::{betainc, digamma, log_beta};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::{Arc, OnceLock};

/// Beta distribution on `[0, 1]`, torch's `Beta(concentration1, concentration0)`: density
/// `x^(α-1) (1-x)^(β-1) / B(α, β)` with `α = concentration1`, `β = concentration0`.
///
/// `rsample` is reparameterized: `X / (X + Y)` for standard gammas `X ~ Γ(α)`, `Y ~ Γ(β)` with
/// implicit reparameterization gradients, formed in log space so that draws stay right for tiny
/// concentrations.
///
/// ```
/// use ppl_runtime::dist::{Beta, Distribution};
/// let d = Beta::new(2.0, 6.0)?;
/// assert_eq!(d.mean()?.to_scalar::<f32>()?, 0.25);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Beta {
    concentration1: Tensor,
    concentration0: Tensor,
    batch_shape: Vec<usize>,
    /// `log B(α, β)`, computed on first use.
    log_norm: OnceLock<Tensor>,
}

impl Beta {
    /// A beta with `concentration1 > 0` (α) and `concentration0 > 0` (β), scalars or tensors.
    pub fn new(concentration1: impl Into<Arg>, concentration0: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Beta", vec![("concentration1", concentration1.into()), ("concentration0", concentration0.into())])?;
        args::validate_param("Beta", "concentration1", &r.tensors[0], &Constraint::Positive)?;
        args::validate_param("Beta", "concentration0", &r.tensors[1], &Constraint::Positive)?;
        let [concentration1, concentration0] = ops::take(r.tensors);
        Ok(Beta { concentration1, concentration0, batch_shape: r.shape, log_norm: OnceLock::new() })
    }

    /// α, the exponent of `x`.
    pub fn concentration1(&self) -> &Tensor {
        &self.concentration1
    }

    /// β, the exponent of `1 - x`.
    pub fn concentration0(&self) -> &Tensor {
        &self.concentration0
    }

    fn total(&self) -> Result<Tensor> {
        Ok((&self.concentration1 + &self.concentration0)?)
    }
}

impl Distribution for Beta {
    fn name(&self) -> &'static str {
        "Beta"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.concentration1.dtype()
    }
    fn device(&self) -> &Device {
        self.concentration1.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        // X / (X + Y) = sigmoid(log X - log Y), in f64 log space: no gamma draw underflows, so
        // tiny concentrations give draws near 0 and 1, not a tie at 0/0 → 1/2.
        let lx = standard_gamma_log(rng, &self.concentration1.broadcast_as(shape.as_slice())?)?;
        let ly = standard_gamma_log(rng, &self.concentration0.broadcast_as(shape.as_slice())?)?;
        Ok(candle_nn::ops::sigmoid(&(lx - ly)?)?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Beta", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Beta", value, &Constraint::UnitInterval)?;
        let a = special::xlogy(&self.concentration1.affine(1.0, -1.0)?, value)?;
        let b = special::xlogy(&self.concentration0.affine(1.0, -1.0)?, &value.affine(-1.0, 1.0)?)?;
        let ln = ops::cached(&self.log_norm, || log_beta(&self.concentration1, &self.concentration0))?;
        Ok((a + b)?.broadcast_sub(ln)?)
    }
    fn support(&self) -> Constraint {
        Constraint::UnitInterval
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((&self.concentration1 / self.total()?)?)
    }
    fn variance(&self) -> Result<Tensor> {
        let t = self.total()?;
        let num = (&self.concentration1 * &self.concentration0)?;
        Ok((num / (t.sqr()? * t.affine(1.0, 1.0)?)?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // log B(α, β) - (α - 1) ψ(α) - (β - 1) ψ(β) + (α + β - 2) ψ(α + β)
        let (a, b, t) = (&self.concentration1, &self.concentration0, self.total()?);
        let ta = (a.affine(1.0, -1.0)? * digamma(a)?)?;
        let tb = (b.affine(1.0, -1.0)? * digamma(b)?)?;
        let tt = (t.affine(1.0, -2.0)? * digamma(&t)?)?;
        Ok((((log_beta(a, b)? - ta)? - tb)? + tt)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Beta", value, &self.batch_shape, &[], self.dtype())?;
        betainc(&self.concentration1, &self.concentration0, &value.clamp(0.0, 1.0)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Beta {
            concentration1: args::expand_param("Beta", &self.concentration1, &self.batch_shape, batch_shape)?,
            concentration0: args::expand_param("Beta", &self.concentration0, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            log_norm: OnceLock::new(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
