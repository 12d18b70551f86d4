//! The Laplace (double exponential) distribution.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::dist::special::{expm1, log1p};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::LN_2;
use std::sync::Arc;

/// Laplace distribution with location `loc` and scale `scale` (torch's `Laplace`).
///
/// ```
/// use ppl_runtime::dist::{Distribution, Laplace};
/// let d = Laplace::new(0.0, 2.0)?;
/// assert_eq!(d.variance()?.to_scalar::<f32>()?, 8.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Laplace {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
}

impl Laplace {
    /// A Laplace with location `loc` and scale `scale > 0` (scalars or tensors, broadcast).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Laplace", vec![("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param("Laplace", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("Laplace", "scale", &r.tensors[1], &Constraint::Positive)?;
        let [loc, scale] = ops::take(r.tensors);
        Ok(Laplace { loc, scale, batch_shape: r.shape })
    }

    /// The location (mean and median).
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The scale.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    /// `loc - scale * sign(u) * log1p(-|u|)` for `u` in (-1, 1), as torch.
    fn at_signed_uniform(&self, u: &Tensor) -> Result<Tensor> {
        let t = (u.sign()? * log1p(&u.abs()?.neg()?)?)?;
        Ok(self.loc.broadcast_sub(&t.broadcast_mul(&self.scale)?)?)
    }
}

impl Distribution for Laplace {
    fn name(&self) -> &'static str {
        "Laplace"
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
        let u = ops::uniform(rng, &shape, self.dtype(), self.device())?.affine(2.0, -1.0)?;
        self.at_signed_uniform(&u)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Laplace", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Laplace", value, &Constraint::Real)?;
        let z = value.broadcast_sub(&self.loc)?.abs()?.broadcast_div(&self.scale)?;
        Ok(z.broadcast_add(&self.scale.log()?)?.affine(-1.0, -LN_2)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.sqr()?.affine(2.0, 0.0)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.scale.log()?.affine(1.0, 1.0 + LN_2)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Laplace", value, &self.batch_shape, &[], self.dtype())?;
        // 0.5 - 0.5 sign(d) expm1(-|d| / b)
        let d = value.broadcast_sub(&self.loc)?;
        let e = expm1(&d.abs()?.broadcast_div(&self.scale)?.neg()?)?;
        Ok((d.sign()? * e)?.affine(-0.5, 0.5)?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Laplace", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Laplace", value, &Constraint::UnitInterval)?;
        // loc - b sign(p - 0.5) log1p(-2|p - 0.5|)
        self.at_signed_uniform(&value.affine(2.0, -1.0)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Laplace {
            loc: args::expand_param("Laplace", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("Laplace", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
