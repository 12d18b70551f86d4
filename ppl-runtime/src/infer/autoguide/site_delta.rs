//! The distribution autoguides record at a latent site.

use crate::dist::{Constraint, Delta, DistRef, Distribution};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// A point mass at an autoguide's constrained draw whose log-density is that of the guide's
/// density at the draw (`log q(x) - log|det J|`, computed when drawing), and whose support is the
/// model site's (so model–guide checks see the support the value lies in).
#[derive(Clone, Debug)]
pub struct GuideDelta {
    delta: Delta,
    support: Constraint,
}

impl GuideDelta {
    /// A point mass at `value` (the rightmost `event_dim` dims form the event) with log-density
    /// `log_density` (broadcastable to the batch shape), reporting `support`.
    pub fn new(value: &Tensor, log_density: &Tensor, event_dim: usize, support: Constraint) -> Result<Self> {
        Ok(GuideDelta { delta: Delta::new(value, log_density, event_dim)?, support })
    }
}

impl Distribution for GuideDelta {
    fn name(&self) -> &'static str {
        "GuideDelta"
    }
    fn batch_shape(&self) -> &[usize] {
        self.delta.batch_shape()
    }
    fn event_shape(&self) -> &[usize] {
        self.delta.event_shape()
    }
    fn dtype(&self) -> DType {
        self.delta.dtype()
    }
    fn device(&self) -> &Device {
        self.delta.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.delta.sample(rng, sample_shape)
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.delta.rsample(rng, sample_shape)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        self.delta.log_prob(value)
    }
    fn support(&self) -> Constraint {
        self.support.clone()
    }
    fn mean(&self) -> Result<Tensor> {
        self.delta.mean()
    }
    fn variance(&self) -> Result<Tensor> {
        self.delta.variance()
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let expanded = self.delta.expand(batch_shape)?;
        let delta =
            expanded.as_any().downcast_ref::<Delta>().cloned().ok_or_else(|| {
                Error::invalid_arg("GuideDelta", "expand", "Delta::expand returned another distribution")
            })?;
        Ok(Arc::new(GuideDelta { delta, support: self.support.clone() }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
