//! The exponential distribution.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::dist::special::{expm1, log1p};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Exponential distribution with rate `rate` (mean `1 / rate`; torch's `Exponential`).
///
/// ```
/// use ppl_runtime::dist::{Distribution, Exponential};
/// let d = Exponential::new(4.0)?;
/// assert_eq!(d.mean()?.to_scalar::<f32>()?, 0.25);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Exponential {
    rate: Tensor,
    batch_shape: Vec<usize>,
}

impl Exponential {
    /// An exponential with rate `rate > 0` (a scalar or a tensor).
    pub fn new(rate: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Exponential", vec![("rate", rate.into())])?;
        args::validate_param("Exponential", "rate", &r.tensors[0], &Constraint::Positive)?;
        let [rate] = ops::take(r.tensors);
        Ok(Exponential { rate, batch_shape: r.shape })
    }

    /// The rate (inverse mean).
    pub fn rate(&self) -> &Tensor {
        &self.rate
    }
}

impl Distribution for Exponential {
    fn name(&self) -> &'static str {
        "Exponential"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.rate.dtype()
    }
    fn device(&self) -> &Device {
        self.rate.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let e = ops::uniform(rng, &shape, self.dtype(), self.device())?.log()?.neg()?;
        Ok(e.broadcast_div(&self.rate)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Exponential", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Exponential", value, &Constraint::Nonnegative)?;
        Ok(self.rate.log()?.broadcast_sub(&value.broadcast_mul(&self.rate)?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Nonnegative
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.rate.recip()?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.rate.sqr()?.recip()?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.rate.log()?.affine(-1.0, 1.0)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Exponential", value, &self.batch_shape, &[], self.dtype())?;
        Ok(expm1(&value.broadcast_mul(&self.rate)?.neg()?)?.neg()?.relu()?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Exponential", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Exponential", value, &Constraint::UnitInterval)?;
        Ok(log1p(&value.neg()?)?.neg()?.broadcast_div(&self.rate)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Exponential {
            rate: args::expand_param("Exponential", &self.rate, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
