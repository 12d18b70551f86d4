//! The continuous uniform distribution on `[low, high]`.

use crate::defaults;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Uniform distribution on `[low, high]` (torch's `Uniform`; the support depends on the
/// parameters, so values are checked elementwise against them).
///
/// ```
/// use ppl_runtime::dist::{Distribution, Uniform};
/// let d = Uniform::new(-1.0, 3.0)?;
/// assert_eq!(d.mean()?.to_scalar::<f32>()?, 1.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Uniform {
    low: Tensor,
    high: Tensor,
    batch_shape: Vec<usize>,
    /// `(low, high)` when both are constant scalars: the support is then `interval(low, high)`.
    bounds: Option<(f64, f64)>,
}

/// Host copies of tensors broadcast to `shape`, as f64.
fn host(ts: &[&Tensor], shape: &[usize]) -> Result<Vec<Vec<f64>>> {
    ts.iter().map(|t| Ok(t.broadcast_as(shape)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)).collect()
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        idx[d] = i % n.max(1);
        i /= n.max(1);
    }
    idx
}

impl Uniform {
    /// A uniform on `[low, high]` with `low < high` (scalars or tensors, broadcast).
    pub fn new(low: impl Into<Arg>, high: impl Into<Arg>) -> Result<Self> {
        let (low, high) = (low.into(), high.into());
        let bounds = ops::host_const(&low).zip(ops::host_const(&high));
        let r = args::resolve("Uniform", vec![("low", low), ("high", high)])?;
        args::validate_param("Uniform", "low", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("Uniform", "high", &r.tensors[1], &Constraint::Real)?;
        if defaults::validation_enabled() {
            let h = host(&[&r.tensors[0], &r.tensors[1]], &r.shape)?;
            if let Some(i) = h[0].iter().zip(&h[1]).position(|(l, u)| l.is_nan() || u.is_nan() || l >= u) {
                return Err(Error::InvalidParameter {
                    dist: "Uniform",
                    arg: "high",
                    constraint: "greater_than(low)".into(),
                    detail: format!("element {:?} is {} but low is {}", unravel(i, &r.shape), h[1][i], h[0][i]),
                });
            }
        }
        let [low, high] = ops::take(r.tensors);
        Ok(Uniform { low, high, batch_shape: r.shape, bounds })
    }

    /// The lower bound.
    pub fn low(&self) -> &Tensor {
        &self.low
    }

    /// The upper bound.
    pub fn high(&self) -> &Tensor {
        &self.high
    }

    fn width(&self) -> Result<Tensor> {
        Ok((&self.high - &self.low)?)
    }

    /// Checks `low <= value <= high` elementwise when validation is on.
    fn validate_value(&self, value: &Tensor) -> Result<()> {
        if !defaults::validation_enabled() {
            return Ok(());
        }
        let shape = args::broadcast_shapes(value.dims(), &self.batch_shape).unwrap_or_default();
        let h = host(&[value, &self.low, &self.high], &shape)?;
        let bad = (0..h[0].len()).filter(|&i| !(h[0][i] >= h[1][i] && h[0][i] <= h[2][i])).collect::<Vec<_>>();
        if let Some(&i) = bad.first() {
            let more = if bad.len() > 1 { format!(" ({} of {} fail)", bad.len(), h[0].len()) } else { String::new() };
            return Err(Error::OutOfSupport {
                dist: "Uniform",
                support: "interval(low, high)".into(),
                detail: format!("element {:?} is {}, outside [{}, {}]{more}", unravel(i, &shape), h[0][i], h[1][i], h[2][i]),
            });
        }
        Ok(())
    }
}

impl Distribution for Uniform {
    fn name(&self) -> &'static str {
        "Uniform"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.low.dtype()
    }
    fn device(&self) -> &Device {
        self.low.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    /// `low + u (high - low)` with `u` uniform on (0, 1). Rounding in the target dtype can make
    /// that exactly `high` (in f32, for `u` within 2⁻²⁴ of 1, or for wide intervals); those
    /// draws are redrawn, so that draws lie in `[low, high)` as torch documents.
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let width = self.width()?;
        let draw = |rng: &mut Rng| -> Result<Tensor> {
            let u = rng.uniform_tensor(&shape, self.dtype(), self.device())?;
            Ok(u.broadcast_mul(&width)?.broadcast_add(&self.low)?)
        };
        let mut x = draw(rng)?;
        for _ in 0..64 {
            let at_high = x.broadcast_ge(&self.high)?;
            if at_high.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? == 0.0 {
                return Ok(x);
            }
            x = at_high.where_cond(&draw(rng)?, &x)?;
        }
        Err(Error::InvalidParameter {
            dist: "Uniform",
            arg: "high",
            constraint: "greater_than(low), with room for draws in the dtype".into(),
            detail: "64 rounds of draws all rounded to `high`: the interval is too narrow for the dtype".into(),
        })
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Uniform", value, &self.batch_shape, &[], self.dtype())?;
        self.validate_value(value)?;
        // -log(high - low) inside the support, -inf outside (only reachable with validation off).
        let lp = self.width()?.log()?.neg()?.broadcast_add(&value.zeros_like()?)?;
        let inside = (value.broadcast_ge(&self.low)?.to_dtype(lp.dtype())? * value.broadcast_le(&self.high)?.to_dtype(lp.dtype())?)?;
        Ok(lp.broadcast_add(&inside.log()?)?)
    }
    fn support(&self) -> Constraint {
        // With tensor bounds the support differs per element, which `Constraint` cannot
        // express; `log_prob` checks values against the bounds themselves.
        match self.bounds {
            Some((l, h)) => Constraint::Interval(l, h),
            None => Constraint::Real,
        }
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((&self.low + &self.high)?.affine(0.5, 0.0)?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.width()?.sqr()?.affine(1.0 / 12.0, 0.0)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.width()?.log()?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Uniform", value, &self.batch_shape, &[], self.dtype())?;
        Ok(value.broadcast_sub(&self.low)?.broadcast_div(&self.width()?)?.clamp(0.0, 1.0)?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Uniform", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Uniform", value, &Constraint::UnitInterval)?;
        Ok(value.broadcast_mul(&self.width()?)?.broadcast_add(&self.low)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Uniform {
            low: args::expand_param("Uniform", &self.low, &self.batch_shape, batch_shape)?,
            high: args::expand_param("Uniform", &self.high, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            bounds: self.bounds,
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
