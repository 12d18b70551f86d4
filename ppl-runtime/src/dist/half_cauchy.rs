//! The half-Cauchy distribution: `|X|` for `X ~ Cauchy(0, scale)`.

use crate::dist::special;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::dist::special::log1p;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::{FRAC_PI_2, PI};
use std::sync::Arc;

/// Half-Cauchy distribution with scale `scale` on `[0, ∞)` (torch's `HalfCauchy`).
///
/// Its mean and variance are infinite, as in torch.
///
/// ```
/// use ppl_runtime::dist::{Distribution, HalfCauchy};
/// let d = HalfCauchy::new(1.0)?;
/// let lp = d.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - (2.0 / std::f32::consts::PI).ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HalfCauchy {
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl HalfCauchy {
    /// A half-Cauchy with scale `scale > 0` (a scalar or a tensor).
    pub fn new(scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("HalfCauchy", vec![("scale", scale.into())])?;
        args::validate_param("HalfCauchy", "scale", &r.tensors[0], &Constraint::Positive)?;
        let [scale] = ops::take(r.tensors);
        Ok(HalfCauchy { scale, batch_shape: r.shape })
    }

    /// The scale.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    fn icdf_unchecked(&self, p: &Tensor) -> Result<Tensor> {
        Ok(special::tan(&p.affine(FRAC_PI_2, 0.0)?)?.broadcast_mul(&self.scale)?)
    }
}

impl Distribution for HalfCauchy {
    fn name(&self) -> &'static str {
        "HalfCauchy"
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
        let u = ops::uniform(rng, &shape, self.dtype(), self.device())?;
        self.icdf_unchecked(&u)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("HalfCauchy", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("HalfCauchy", value, &Constraint::Nonnegative)?;
        let l = log1p(&value.broadcast_div(&self.scale)?.sqr()?)?;
        Ok(l.broadcast_add(&self.scale.log()?)?.affine(-1.0, (2.0 / PI).ln())?)
    }
    fn support(&self) -> Constraint {
        Constraint::Nonnegative
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.scale.ones_like()?.affine(0.0, f64::INFINITY)?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.ones_like()?.affine(0.0, f64::INFINITY)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.scale.log()?.affine(1.0, (2.0 * PI).ln())?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("HalfCauchy", value, &self.batch_shape, &[], self.dtype())?;
        Ok(special::atan(&value.broadcast_div(&self.scale)?)?.affine(2.0 / PI, 0.0)?.relu()?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("HalfCauchy", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("HalfCauchy", value, &Constraint::UnitInterval)?;
        self.icdf_unchecked(value)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(HalfCauchy {
            scale: args::expand_param("HalfCauchy", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
