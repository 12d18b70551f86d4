//! `Unit`: the trivial distribution behind `factor` sites, whose log-density is a given weight.

use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// A distribution whose `log_prob` is a fixed `log_factor`, whatever the value (Pyro's `Unit`).
#[derive(Clone, Debug)]
pub struct Unit {
    log_factor: Tensor,
}

impl Unit {
    /// A unit distribution with log-density `log_factor` (a float tensor; its shape is the batch shape).
    pub fn new(log_factor: &Tensor) -> Result<Self> {
        if !log_factor.dtype().is_float() {
            return Err(Error::invalid_arg("Unit", "log_factor", format!("must be a float tensor, got {:?}", log_factor.dtype())));
        }
        Ok(Unit { log_factor: log_factor.clone() })
    }

    /// The log-weight.
    pub fn log_factor(&self) -> &Tensor {
        &self.log_factor
    }
}

impl Distribution for Unit {
    fn name(&self) -> &'static str {
        "Unit"
    }
    fn batch_shape(&self) -> &[usize] {
        self.log_factor.dims()
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.log_factor.dtype()
    }
    fn device(&self) -> &Device {
        self.log_factor.device()
    }
    fn sample(&self, _rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape: Vec<usize> = sample_shape.iter().chain(self.log_factor.dims()).copied().collect();
        Ok(Tensor::zeros(shape, self.dtype(), self.device())?)
    }
    /// The log factor, broadcast with the value's shape (Pyro's `Unit.log_prob`).
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        let lf = &self.log_factor;
        match crate::dist::args::broadcast_shapes(lf.dims(), value.dims()) {
            Some(s) if s.as_slice() == lf.dims() => Ok(lf.clone()),
            Some(s) => Ok(lf.broadcast_as(s)?),
            None => Err(Error::shape_mismatch("`Unit`.log_prob: value does not broadcast with the batch shape", lf.dims(), value.dims())),
        }
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Unit {
            log_factor: crate::dist::args::expand_param("Unit", &self.log_factor, self.log_factor.dims(), batch_shape)?,
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
