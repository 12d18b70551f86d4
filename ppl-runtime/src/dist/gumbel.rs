//! The Gumbel (type-I extreme value) distribution.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::Arc;

/// The Euler–Mascheroni constant.
pub(crate) const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Gumbel distribution with location `loc` and scale `scale` (torch's `Gumbel`):
/// `cdf(x) = exp(-exp(-(x - loc) / scale))`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Gumbel};
/// let d = Gumbel::new(0.0, 1.0)?;
/// assert!((d.mean()?.to_scalar::<f32>()? - 0.577_215_7).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Gumbel {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl Gumbel {
    /// A Gumbel with location `loc` and scale `scale > 0` (scalars or tensors, broadcast).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Gumbel", vec![("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param("Gumbel", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("Gumbel", "scale", &r.tensors[1], &Constraint::Positive)?;
        let [loc, scale] = ops::take(r.tensors);
        Ok(Gumbel { loc, scale, batch_shape: r.shape })
    }

    /// The location (mode).
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The scale.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    /// `loc - scale * log(-log(p))`.
    fn icdf_unchecked(&self, p: &Tensor) -> Result<Tensor> {
        let t = p.log()?.neg()?.log()?;
        Ok(self.loc.broadcast_sub(&t.broadcast_mul(&self.scale)?)?)
    }
}

impl Distribution for Gumbel {
    fn name(&self) -> &'static str {
        "Gumbel"
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
        args::check_value_shape("Gumbel", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Gumbel", value, &Constraint::Real)?;
        // -(z + exp(-z)) - log(scale)
        let z = value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?;
        let s = (&z + z.neg()?.exp()?)?;
        Ok(s.broadcast_add(&self.scale.log()?)?.neg()?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((&self.loc + self.scale.affine(EULER_GAMMA, 0.0)?)?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.sqr()?.affine(PI * PI / 6.0, 0.0)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.scale.log()?.affine(1.0, 1.0 + EULER_GAMMA)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Gumbel", value, &self.batch_shape, &[], self.dtype())?;
        let z = value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?;
        Ok(z.neg()?.exp()?.neg()?.exp()?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Gumbel", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Gumbel", value, &Constraint::UnitInterval)?;
        self.icdf_unchecked(value)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Gumbel {
            loc: args::expand_param("Gumbel", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("Gumbel", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
