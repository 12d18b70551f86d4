//! Student's t distribution, with location and scale.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::gamma::standard_gamma;
use crate::dist::ops;
use crate::dist::special::{digamma, lgamma, log1p, scalar};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::{Arc, OnceLock};

/// Student's t distribution with `df` degrees of freedom, location `loc` and scale `scale`
/// (torch's `StudentT(df, loc, scale)`).
///
/// As in torch, the mean is NaN for `df ≤ 1`, and the variance is infinite for `1 < df ≤ 2`
/// and NaN for `df ≤ 1`. `rsample` is reparameterized in all three parameters
/// (`loc + scale · N / sqrt(χ²_df / df)`, with the chi-squared drawn by implicit
/// reparameterization).
///
/// ```
/// use ppl_runtime::dist::{Distribution, StudentT};
/// let d = StudentT::new(4.0, 1.0, 2.0)?;
/// assert_eq!(d.variance()?.to_scalar::<f32>()?, 8.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct StudentT {
    df: Tensor,
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
    /// `log(scale) + ½ log(df π) + lgamma(df/2) - lgamma((df+1)/2)`, computed on first use.
    log_norm: OnceLock<Tensor>,
}

impl StudentT {
    /// A Student's t with `df > 0`, `loc` and `scale > 0` (scalars or tensors, broadcast).
    pub fn new(df: impl Into<Arg>, loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("StudentT", vec![("df", df.into()), ("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param("StudentT", "df", &r.tensors[0], &Constraint::Positive)?;
        args::validate_param("StudentT", "loc", &r.tensors[1], &Constraint::Real)?;
        args::validate_param("StudentT", "scale", &r.tensors[2], &Constraint::Positive)?;
        let [df, loc, scale] = ops::take(r.tensors);
        Ok(StudentT { df, loc, scale, batch_shape: r.shape, log_norm: OnceLock::new() })
    }

    /// The degrees of freedom.
    pub fn df(&self) -> &Tensor {
        &self.df
    }

    /// The location.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The scale.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    fn standardize(&self, value: &Tensor) -> Result<Tensor> {
        Ok(value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?)
    }

    /// A tensor of the batch shape filled with `v`.
    fn filled(&self, v: f64) -> Result<Tensor> {
        Ok(self.df.ones_like()?.affine(0.0, v)?)
    }
}

impl Distribution for StudentT {
    fn name(&self) -> &'static str {
        "StudentT"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.df.dtype()
    }
    fn device(&self) -> &Device {
        self.df.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let x = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        // χ²_df / df = Gamma(df/2, 1) / (df/2)
        let half = self.df.affine(0.5, 0.0)?;
        let g = standard_gamma(rng, &half.broadcast_as(shape.as_slice())?)?.broadcast_div(&half)?;
        let y = (x / g.sqrt()?)?;
        Ok(y.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("StudentT", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("StudentT", value, &Constraint::Real)?;
        let y2 = self.standardize(value)?.sqr()?;
        let t = log1p(&y2.broadcast_div(&self.df)?)?.broadcast_mul(&self.df.affine(-0.5, -0.5)?)?;
        let z = ops::cached(&self.log_norm, || {
            let df = &self.df;
            let a = (self.scale.log()? + df.log()?.affine(0.5, 0.5 * PI.ln())?)?;
            Ok(((a + lgamma(&df.affine(0.5, 0.0)?)?)? - lgamma(&df.affine(0.5, 0.5)?)?)?)
        })?;
        Ok(t.broadcast_sub(z)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.df.gt(1.0)?.where_cond(&self.loc, &self.filled(f64::NAN)?)?)
    }
    fn variance(&self) -> Result<Tensor> {
        let df = &self.df;
        // Sanitize df - 2 where df ≤ 2 so the unused branch stays finite (no NaN gradients).
        let big = df.gt(2.0)?;
        let safe = big.where_cond(df, &self.filled(3.0)?)?;
        let v = (self.scale.sqr()? * (&safe / safe.affine(1.0, -2.0)?)?)?;
        let small = df.gt(1.0)?.where_cond(&self.filled(f64::INFINITY)?, &self.filled(f64::NAN)?)?;
        Ok(big.where_cond(&v, &small)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // (df+1)/2 (ψ((df+1)/2) - ψ(df/2)) + ½ log df + log B(df/2, ½) + log scale
        let df = &self.df;
        let (h, h1) = (df.affine(0.5, 0.0)?, df.affine(0.5, 0.5)?);
        let lbeta = (lgamma(&h)?.affine(1.0, 0.5 * PI.ln())? - lgamma(&h1)?)?;
        let t = (&h1 * (digamma(&h1)? - digamma(&h)?)?)?;
        Ok((((t + df.log()?.affine(0.5, 0.0)?)? + lbeta)? + self.scale.log()?)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("StudentT", value, &self.batch_shape, &[], self.dtype())?;
        let y = self.standardize(value)?;
        ops::host_map(&[&self.df, &y], |v| {
            let (df, t) = (v[0], v[1]);
            if t.is_nan() {
                return f64::NAN;
            }
            let tail = 0.5 * scalar::betainc(0.5 * df, 0.5, df / (df + t * t));
            if t < 0.0 { tail } else { 1.0 - tail }
        })
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(StudentT {
            df: args::expand_param("StudentT", &self.df, &self.batch_shape, batch_shape)?,
            loc: args::expand_param("StudentT", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("StudentT", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            log_norm: OnceLock::new(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
