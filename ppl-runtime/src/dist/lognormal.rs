//! The log-normal distribution: `exp(X)` for `X ~ Normal(loc, scale)`.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::normal::HALF_LN_2PI;
use crate::dist::ops;
use crate::dist::special;
use crate::dist::special::expm1;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Log-normal distribution: `log(X)` is normal with mean `loc` and standard deviation `scale`
/// (torch's `LogNormal`).
///
/// ```
/// use ppl_runtime::dist::{Distribution, LogNormal};
/// let d = LogNormal::new(0.0, 1.0)?;
/// let m = d.mean()?.to_scalar::<f32>()?;
/// assert!((m - 0.5f32.exp()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LogNormal {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl LogNormal {
    /// A log-normal whose logarithm has mean `loc` and standard deviation `scale > 0`.
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("LogNormal", vec![("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param("LogNormal", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("LogNormal", "scale", &r.tensors[1], &Constraint::Positive)?;
        let [loc, scale] = ops::take(r.tensors);
        Ok(LogNormal { loc, scale, batch_shape: r.shape })
    }

    /// The mean of `log(X)`.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The standard deviation of `log(X)`.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }
}

impl Distribution for LogNormal {
    fn name(&self) -> &'static str {
        "LogNormal"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.loc.dtype()
    }
    fn device(&self) -> &Device {
        self.loc.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let eps = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        Ok(eps.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?.exp()?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("LogNormal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("LogNormal", value, &Constraint::Positive)?;
        let y = value.log()?;
        let z = y.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?;
        let lp = z.sqr()?.affine(-0.5, -HALF_LN_2PI)?.broadcast_sub(&self.scale.log()?)?;
        Ok(lp.broadcast_sub(&y)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Positive
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((&self.loc + self.scale.sqr()?.affine(0.5, 0.0)?)?.exp()?)
    }
    fn variance(&self) -> Result<Tensor> {
        // (exp(σ²) - 1) exp(2μ + σ²)
        let s2 = self.scale.sqr()?;
        Ok((expm1(&s2)? * (self.loc.affine(2.0, 0.0)? + &s2)?.exp()?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok((self.scale.log()? + &self.loc)?.affine(1.0, 0.5 + HALF_LN_2PI)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("LogNormal", value, &self.batch_shape, &[], self.dtype())?;
        let z = value.log()?.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?;
        special::ndtr(&z)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("LogNormal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("LogNormal", value, &Constraint::UnitInterval)?;
        Ok(special::ndtri(value)?.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?.exp()?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(LogNormal {
            loc: args::expand_param("LogNormal", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("LogNormal", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
