//! The half-normal distribution: `|X|` for `X ~ Normal(0, scale)`.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::normal::HALF_LN_2PI;
use crate::dist::ops;
use crate::dist::special;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::{LN_2, PI};
use std::sync::Arc;

/// Half-normal distribution with scale `scale` on `[0, ∞)` (torch's `HalfNormal`).
///
/// ```
/// use ppl_runtime::dist::{Distribution, HalfNormal};
/// let d = HalfNormal::new(1.0)?;
/// let m = d.mean()?.to_scalar::<f32>()?;
/// assert!((m - (2.0 / std::f32::consts::PI).sqrt()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HalfNormal {
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl HalfNormal {
    /// A half-normal with scale `scale > 0` (a scalar or a tensor).
    pub fn new(scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("HalfNormal", vec![("scale", scale.into())])?;
        args::validate_param("HalfNormal", "scale", &r.tensors[0], &Constraint::Positive)?;
        let [scale] = ops::take(r.tensors);
        Ok(HalfNormal { scale, batch_shape: r.shape })
    }

    /// The scale of the underlying normal.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }
}

impl Distribution for HalfNormal {
    fn name(&self) -> &'static str {
        "HalfNormal"
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
        let eps = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        Ok(eps.abs()?.broadcast_mul(&self.scale)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("HalfNormal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("HalfNormal", value, &Constraint::Nonnegative)?;
        let z2 = value.broadcast_div(&self.scale)?.sqr()?;
        Ok(z2.affine(-0.5, LN_2 - HALF_LN_2PI)?.broadcast_sub(&self.scale.log()?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Nonnegative
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.scale.affine((2.0 / PI).sqrt(), 0.0)?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.sqr()?.affine(1.0 - 2.0 / PI, 0.0)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // 0.5 log(π σ² / 2) + 0.5
        Ok(self.scale.log()?.affine(1.0, 0.5 * (PI / 2.0).ln() + 0.5)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("HalfNormal", value, &self.batch_shape, &[], self.dtype())?;
        let z = value.broadcast_div(&self.scale)?.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?;
        Ok(z.erf()?.relu()?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("HalfNormal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("HalfNormal", value, &Constraint::UnitInterval)?;
        // Φ⁻¹((1 + p) / 2) σ
        Ok(special::ndtri(&value.affine(0.5, 0.5)?)?.broadcast_mul(&self.scale)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(HalfNormal {
            scale: args::expand_param("HalfNormal", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
