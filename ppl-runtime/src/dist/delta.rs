//! The Delta (point-mass) distribution, as in Pyro.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// A point mass at `v` (Pyro's `Delta(v, log_density, event_dim)`): `log_prob(x)` is
/// `log_density` where `x == v` over the whole event and `-inf` elsewhere. The rightmost
/// `event_dim` dims of `v` form the event. Samples are `v` itself, and `rsample` lets gradients
/// flow to `v` (used by `AutoDelta` guides).
///
/// ```
/// use ppl_runtime::dist::{Delta, Distribution};
/// use candle_core::{Device, Tensor};
/// let d = Delta::new(&Tensor::new(&[1f32, 2.0], &Device::Cpu)?, 0.0, 1)?;
/// let lp = d.log_prob(&Tensor::new(&[1f32, 2.0], &Device::Cpu)?)?;
/// assert_eq!(lp.to_scalar::<f32>()?, 0.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Delta {
    v: Tensor,
    log_density: Tensor,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
}

impl Delta {
    /// A point mass at `v` with log-density `log_density` (broadcastable to the batch shape) and
    /// the rightmost `event_dim` dims of `v` as the event.
    pub fn new(v: impl Into<Arg>, log_density: impl Into<Arg>, event_dim: usize) -> Result<Self> {
        let r = args::resolve("Delta", vec![("v", v.into())])?;
        let v = r.tensors[0].clone();
        if event_dim > v.rank() {
            return Err(Error::invalid_arg(
                "`Delta`",
                "event_dim",
                format!("event_dim {event_dim} exceeds the rank of `v` (shape {:?})", v.dims()),
            ));
        }
        let split = v.rank() - event_dim;
        let batch_shape = v.dims()[..split].to_vec();
        let event_shape = v.dims()[split..].to_vec();
        let log_density = match log_density.into() {
            Arg::Scalar(x) => Tensor::new(x, v.device())?.to_dtype(v.dtype())?,
            Arg::Tensor(t) => {
                if t.dtype() != v.dtype() {
                    return Err(Error::DTypeMismatch {
                        context: "`Delta`".into(),
                        a: "v".into(),
                        a_dtype: v.dtype(),
                        b: "log_density".into(),
                        b_dtype: t.dtype(),
                    });
                }
                t
            }
        };
        args::validate_param("Delta", "log_density", &log_density, &Constraint::Real)?;
        if args::broadcast_shapes(log_density.dims(), &batch_shape).as_deref() != Some(batch_shape.as_slice()) {
            return Err(Error::ShapeMismatch {
                context: "`Delta`: argument `log_density` must broadcast to the batch shape of `v`".into(),
                expected: format!("{batch_shape:?}"),
                got: format!("{:?}", log_density.dims()),
                hint: None,
            });
        }
        let log_density = log_density.broadcast_as(batch_shape.as_slice())?;
        Ok(Delta { v, log_density, batch_shape, event_shape })
    }

    /// A point mass at `v` with log-density 0 and no event dims.
    pub fn point(v: impl Into<Arg>) -> Result<Self> {
        Self::new(v, 0.0, 0)
    }

    /// The location of the point mass.
    pub fn v(&self) -> &Tensor {
        &self.v
    }

    /// The log-density at `v`, of shape `batch_shape`.
    pub fn log_density(&self) -> &Tensor {
        &self.log_density
    }
}

impl Distribution for Delta {
    fn name(&self) -> &'static str {
        "Delta"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &self.event_shape
    }
    fn dtype(&self) -> DType {
        self.v.dtype()
    }
    fn device(&self) -> &Device {
        self.v.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, _rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, self.v.dims());
        Ok(self.v.broadcast_as(shape)?.contiguous()?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Delta", value, &self.batch_shape, &self.event_shape, self.dtype())?;
        let x = value.to_dtype(self.dtype())?;
        // log(1{x == v}) is 0 or -inf; summed over the event dims.
        let mut lp = x.broadcast_eq(&self.v)?.to_dtype(self.dtype())?.log()?;
        for _ in 0..self.event_shape.len() {
            lp = lp.sum(lp.rank() - 1)?;
        }
        Ok(lp.broadcast_add(&self.log_density)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real.independent(self.event_shape.len())
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.v.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.v.zeros_like()?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let v = args::expand_param("Delta", &self.v, &self.batch_shape, batch_shape)?;
        let log_density = args::expand_param("Delta", &self.log_density, &self.batch_shape, batch_shape)?;
        Ok(Arc::new(Delta { v, log_density, event_shape: self.event_shape.clone(), batch_shape: batch_shape.to_vec() }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
