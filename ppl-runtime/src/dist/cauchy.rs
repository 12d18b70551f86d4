//! The Cauchy (Lorentz) distribution.

use crate::dist::special;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::dist::special::log1p;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::Arc;

/// Cauchy distribution with location `loc` and scale `scale` (torch's `Cauchy`).
///
/// Its mean is undefined (NaN) and its variance infinite, as in torch.
///
/// ```
/// use ppl_runtime::dist::{Cauchy, Distribution};
/// let d = Cauchy::new(0.0, 1.0)?;
/// let lp = d.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? + std::f32::consts::PI.ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Cauchy {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl Cauchy {
    /// A Cauchy with location `loc` and scale `scale > 0` (scalars or tensors, broadcast).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Cauchy", vec![("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param("Cauchy", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("Cauchy", "scale", &r.tensors[1], &Constraint::Positive)?;
        let [loc, scale] = ops::take(r.tensors);
        Ok(Cauchy { loc, scale, batch_shape: r.shape })
    }

    /// The location (median).
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The scale (half width at half maximum).
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    fn z(&self, value: &Tensor) -> Result<Tensor> {
        Ok(value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?)
    }
}

impl Distribution for Cauchy {
    fn name(&self) -> &'static str {
        "Cauchy"
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
        let u = ops::uniform(rng, &shape, self.dtype(), self.device())?;
        self.icdf_unchecked(&u)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Cauchy", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Cauchy", value, &Constraint::Real)?;
        let l = log1p(&self.z(value)?.sqr()?)?;
        Ok(l.broadcast_add(&self.scale.log()?)?.affine(-1.0, -PI.ln())?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.ones_like()?.affine(0.0, f64::NAN)?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.loc.ones_like()?.affine(0.0, f64::INFINITY)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.scale.log()?.affine(1.0, (4.0 * PI).ln())?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Cauchy", value, &self.batch_shape, &[], self.dtype())?;
        Ok(special::atan(&self.z(value)?)?.affine(1.0 / PI, 0.5)?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Cauchy", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Cauchy", value, &Constraint::UnitInterval)?;
        self.icdf_unchecked(value)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Cauchy {
            loc: args::expand_param("Cauchy", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("Cauchy", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Cauchy {
    fn icdf_unchecked(&self, p: &Tensor) -> Result<Tensor> {
        let t = special::tan(&p.affine(PI, -0.5 * PI)?)?;
        Ok(t.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
}
