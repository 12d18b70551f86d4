//! `Masked`: a distribution whose `log_prob` is zeroed where a boolean mask is false.

use crate::dist::args;
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// The base distribution with `log_prob` multiplied by a 0/1 mask broadcast to its batch shape
/// (Pyro's `.mask(m)`). Sampling is unchanged.
#[derive(Clone, Debug)]
pub struct Masked {
    base: DistRef,
    mask: Tensor,
    batch_shape: Vec<usize>,
}

impl Masked {
    /// Masks `base` by `mask`, a boolean tensor (Candle's `u8`, as comparisons such as
    /// `x.ge(0.0)?` return) of 0s and 1s broadcastable to its batch shape; 1 keeps the
    /// log-density. Other dtypes, and (when validation is on) other values, are errors: a mask
    /// selects, it does not weight.
    pub fn new(base: DistRef, mask: &Tensor) -> Result<Self> {
        args::check_mask(&format!("`{}`.mask", base.name()), mask, crate::defaults::validation_enabled())?;
        let batch_shape = args::broadcast_shapes(base.batch_shape(), mask.dims()).ok_or_else(|| Error::ShapeMismatch {
            context: format!("`{}`.mask: mask does not broadcast with the batch shape", base.name()),
            expected: format!("{:?}", base.batch_shape()),
            got: format!("{:?}", mask.dims()),
            hint: None,
        })?;
        let base = if batch_shape.as_slice() != base.batch_shape() { base.expand(&batch_shape)? } else { base };
        let mask = mask.to_device(base.device())?;
        Ok(Masked { base, mask, batch_shape })
    }

    /// The wrapped distribution.
    pub fn base(&self) -> &DistRef {
        &self.base
    }

    /// The mask: a `u8` tensor of 0s and 1s.
    pub fn mask_tensor(&self) -> &Tensor {
        &self.mask
    }
}

impl Distribution for Masked {
    fn name(&self) -> &'static str {
        "Masked"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        self.base.event_shape()
    }
    fn dtype(&self) -> DType {
        self.base.dtype()
    }
    fn device(&self) -> &Device {
        self.base.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.base.sample(rng, sample_shape)
    }
    fn has_rsample(&self) -> bool {
        self.base.has_rsample()
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.base.rsample(rng, sample_shape)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        let lp = self.base.log_prob(value)?;
        // where(mask, lp, 0): multiply would turn -inf into NaN at masked entries.
        let zeros = lp.zeros_like()?;
        Ok(self.mask.broadcast_as(lp.dims())?.where_cond(&lp, &zeros)?)
    }
    fn support(&self) -> Constraint {
        self.base.support()
    }
    fn has_enumerate_support(&self) -> bool {
        self.base.has_enumerate_support()
    }
    fn enumerate_support(&self, expand: bool) -> Result<Tensor> {
        self.base.enumerate_support(expand)
    }
    fn mean(&self) -> Result<Tensor> {
        self.base.mean()
    }
    fn variance(&self) -> Result<Tensor> {
        self.base.variance()
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Masked::new(self.base.expand(batch_shape)?, &self.mask)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

