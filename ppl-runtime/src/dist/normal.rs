//! The normal (Gaussian) distribution.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::Arc;

/// Normal distribution with mean `loc` and standard deviation `scale`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Normal};
/// let n = Normal::new(0.0, 1.0)?;
/// let lp = n.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? + 0.918_938_5).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Normal {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl Normal {
    /// A normal with mean `loc` and standard deviation `scale > 0` (scalars or tensors, broadcast).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Normal", vec![("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param("Normal", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("Normal", "scale", &r.tensors[1], &Constraint::Positive)?;
        let mut t = r.tensors.into_iter();
        Ok(Normal { loc: t.next().unwrap(), scale: t.next().unwrap(), batch_shape: r.shape })
    }

    /// The mean parameter.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The standard-deviation parameter.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    fn full_shape(&self, sample_shape: &[usize]) -> Vec<usize> {
        args::concat_shapes(sample_shape, &self.batch_shape)
    }
}

impl Distribution for Normal {
    fn name(&self) -> &'static str {
        "Normal"
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
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        Ok(self.rsample(rng, sample_shape)?.detach())
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = self.full_shape(sample_shape);
        let eps = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        Ok(eps.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Normal", value, &Constraint::Real)?;
        let z = value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?;
        let lp = z.sqr()?.affine(-0.5, -0.5 * (2.0 * PI).ln())?.broadcast_sub(&self.scale.log()?)?;
        Ok(lp)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.sqr()?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.scale.log()?.affine(1.0, 0.5 + 0.5 * (2.0 * PI).ln())?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        let z = value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?;
        Ok(z.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?.erf()?.affine(0.5, 0.5)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Normal {
            loc: args::expand_param("Normal", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("Normal", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
