//! The two-parameter Weibull distribution.

use crate::dist::special;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::gumbel::EULER_GAMMA;
use crate::dist::ops;
use crate::dist::special::{expm1, lgamma, log1p};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Weibull distribution with scale `scale` (λ) and shape `concentration` (k), torch's
/// `Weibull(scale, concentration)`: `cdf(x) = 1 - exp(-(x/λ)^k)` on `(0, ∞)`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Weibull};
/// let d = Weibull::new(2.0, 1.0)?; // k = 1: exponential with mean 2
/// assert!((d.mean()?.to_scalar::<f32>()? - 2.0).abs() < 1e-5);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Weibull {
    scale: Tensor,
    concentration: Tensor,
    batch_shape: Vec<usize>,
}

impl Weibull {
    /// A Weibull with scale `scale > 0` and shape `concentration > 0` (scalars or tensors).
    pub fn new(scale: impl Into<Arg>, concentration: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Weibull", vec![("scale", scale.into()), ("concentration", concentration.into())])?;
        args::validate_param("Weibull", "scale", &r.tensors[0], &Constraint::Positive)?;
        args::validate_param("Weibull", "concentration", &r.tensors[1], &Constraint::Positive)?;
        let [scale, concentration] = ops::take(r.tensors);
        Ok(Weibull { scale, concentration, batch_shape: r.shape })
    }

    /// The scale λ.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    /// The shape k.
    pub fn concentration(&self) -> &Tensor {
        &self.concentration
    }

    /// `λ e^{1/k}` for a standard exponential `e`.
    fn scaled_exponential(&self, e: &Tensor) -> Result<Tensor> {
        let p = e.log()?.broadcast_div(&self.concentration)?.exp()?;
        Ok(p.broadcast_mul(&self.scale)?)
    }

    /// `Γ(1 + n/k)`.
    fn gamma_moment(&self, n: f64) -> Result<Tensor> {
        Ok(lgamma(&self.concentration.recip()?.affine(n, 1.0)?)?.exp()?)
    }
}

impl Distribution for Weibull {
    fn name(&self) -> &'static str {
        "Weibull"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.scale.dtype()
    }
    fn device(&self) -> &Device {
        self.scale.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let e = ops::uniform(rng, &shape, self.dtype(), self.device())?.log()?.neg()?;
        self.scaled_exponential(&e)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Weibull", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Weibull", value, &Constraint::Positive)?;
        // log(k/λ) + (k - 1) log(x/λ) - (x/λ)^k
        let z = value.broadcast_div(&self.scale)?;
        let k = &self.concentration;
        let t = special::xlogy(&k.affine(1.0, -1.0)?, &z)?;
        let pow = z.log()?.broadcast_mul(k)?.exp()?;
        let c = (k.log()? - self.scale.log()?)?;
        Ok(t.broadcast_sub(&pow)?.broadcast_add(&c)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Positive
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((&self.scale * self.gamma_moment(1.0)?)?)
    }
    fn variance(&self) -> Result<Tensor> {
        let g1 = self.gamma_moment(1.0)?;
        Ok((self.scale.sqr()? * (self.gamma_moment(2.0)? - g1.sqr()?)?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // γ (1 - 1/k) + log(λ / k) + 1
        let k = &self.concentration;
        let a = k.recip()?.affine(-EULER_GAMMA, EULER_GAMMA + 1.0)?;
        Ok((a + self.scale.log()? - k.log()?)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Weibull", value, &self.batch_shape, &[], self.dtype())?;
        let pow = value.broadcast_div(&self.scale)?.log()?.broadcast_mul(&self.concentration)?.exp()?;
        Ok(expm1(&pow.neg()?)?.neg()?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Weibull", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Weibull", value, &Constraint::UnitInterval)?;
        self.scaled_exponential(&log1p(&value.neg()?)?.neg()?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Weibull {
            scale: args::expand_param("Weibull", &self.scale, &self.batch_shape, batch_shape)?,
            concentration: args::expand_param("Weibull", &self.concentration, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
