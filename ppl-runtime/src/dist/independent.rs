//! `Independent`: reinterprets rightmost batch dims of a distribution as event dims.

use crate::dist::args;
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution, sum_rightmost};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// The base distribution with its rightmost `reinterpreted` batch dims moved into the event
/// (Pyro's `.to_event(n)`): `log_prob` sums over them.
#[derive(Clone, Debug)]
pub struct Independent {
    base: DistRef,
    reinterpreted: usize,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
}

impl Independent {
    /// Moves the rightmost `reinterpreted` batch dims of `base` into its event.
    pub fn new(base: DistRef, reinterpreted: usize) -> Result<Self> {
        let b = base.batch_shape();
        if reinterpreted > b.len() {
            return Err(Error::invalid_arg(
                format!("`{}`.to_event", base.name()),
                "n",
                format!("cannot move {reinterpreted} dims into the event: batch_shape is {b:?}"),
            ));
        }
        let split = b.len() - reinterpreted;
        let batch_shape = b[..split].to_vec();
        let event_shape = args::concat_shapes(&b[split..], base.event_shape());
        Ok(Independent { base, reinterpreted, batch_shape, event_shape })
    }

    /// The wrapped distribution.
    pub fn base(&self) -> &DistRef {
        &self.base
    }

    /// How many batch dims were moved into the event.
    pub fn reinterpreted(&self) -> usize {
        self.reinterpreted
    }

    fn sum_rightmost(&self, t: Tensor) -> Result<Tensor> {
        sum_rightmost(self.base.name(), t, self.reinterpreted)
    }
}

impl Distribution for Independent {
    fn name(&self) -> &'static str {
        "Independent"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &self.event_shape
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
    /// The base's log-density summed over the reinterpreted dims, in one fused pass where the
    /// base has a kernel for it ([`Distribution::log_prob_event`]).
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        self.base.log_prob_event(value, self.reinterpreted)
    }
    fn log_prob_event(&self, value: &Tensor, event_dims: usize) -> Result<Tensor> {
        self.base.log_prob_event(value, self.reinterpreted + event_dims)
    }
    fn support(&self) -> Constraint {
        self.base.support().independent(self.reinterpreted)
    }
    fn has_enumerate_support(&self) -> bool {
        false
    }
    fn mean(&self) -> Result<Tensor> {
        self.base.mean()
    }
    fn variance(&self) -> Result<Tensor> {
        self.base.variance()
    }
    fn entropy(&self) -> Result<Tensor> {
        let h = self.base.entropy()?;
        self.sum_rightmost(h)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let split = self.base.batch_shape().len() - self.reinterpreted;
        let full = args::concat_shapes(batch_shape, &self.base.batch_shape()[split..]);
        Ok(Arc::new(Independent::new(self.base.expand(&full)?, self.reinterpreted)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
