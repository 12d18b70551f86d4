//! The Poisson distribution over counts `0, 1, 2, ...`.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::special::{self, lgamma};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use rand_distr::Distribution as _;
use std::sync::Arc;

/// Poisson distribution with mean `rate >= 0`; values are float counts (as in torch).
///
/// ```
/// use ppl_runtime::dist::{Distribution, Poisson};
/// let d = Poisson::new(2.0)?;
/// let lp = d.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? + 2.0).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Poisson {
    rate: Tensor,
    batch_shape: Vec<usize>,
}

/// Host copy of a tensor as f64.
pub(crate) fn host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.detach().flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// One Poisson draw; `rate == 0` gives 0.
pub(crate) fn poisson_draw(dist: &'static str, rng: &mut rand::rngs::Xoshiro256PlusPlus, rate: f64) -> Result<f64> {
    if rate == 0.0 {
        return Ok(0.0);
    }
    let p = rand_distr::Poisson::new(rate).map_err(|e| Error::InvalidParameter {
        dist,
        arg: "rate",
        constraint: "nonnegative, below 1.8e19 for sampling".into(),
        detail: format!("cannot sample with rate {rate}: {e}"),
    })?;
    Ok(p.sample(rng))
}

impl Poisson {
    /// A Poisson with mean `rate >= 0` (scalar or tensor).
    pub fn new(rate: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Poisson", vec![("rate", rate.into())])?;
        args::validate_param("Poisson", "rate", &r.tensors[0], &Constraint::Nonnegative)?;
        Ok(Poisson { rate: r.tensors[0].clone(), batch_shape: r.shape })
    }

    /// The rate (mean) parameter.
    pub fn rate(&self) -> &Tensor {
        &self.rate
    }
}

impl Distribution for Poisson {
    fn name(&self) -> &'static str {
        "Poisson"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.rate.dtype()
    }
    fn device(&self) -> &Device {
        self.rate.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let rate = host(&self.rate.broadcast_as(shape.as_slice())?)?;
        let v = rate.iter().map(|&r| poisson_draw("Poisson", rng.inner(), r)).collect::<Result<Vec<f64>>>()?;
        Ok(Tensor::from_vec(v, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Poisson", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Poisson", value, &Constraint::NonnegativeInteger)?;
        let k = value.to_dtype(self.dtype())?;
        let shape = args::broadcast_shapes(k.dims(), &self.batch_shape).unwrap_or_default();
        let (k, rate) = (k.broadcast_as(shape.as_slice())?, self.rate.broadcast_as(shape.as_slice())?);
        // k log(rate) - rate - log k!
        Ok(((special::xlogy(&k, &rate)? - rate)? - lgamma(&k.affine(1.0, 1.0)?)?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::NonnegativeInteger
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.rate.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.rate.clone())
    }
    /// `-Σ_k p(k) log p(k)` by exact summation over the support (from the mode outwards until
    /// the terms are negligible), on the host in f64; differentiable in `rate` through
    /// `dH/dλ = -Σ p(k) (k/λ - 1) log p(k)`, summed the same way (0 at `λ = 0`, where it is infinite).
    fn entropy(&self) -> Result<Tensor> {
        let rates = host(&self.rate)?;
        let (mut h, mut g) = (Vec::with_capacity(rates.len()), Vec::with_capacity(rates.len()));
        for &r in &rates {
            if r == 0.0 {
                // H = 0 at λ = 0, where dH/dλ ~ -log λ is infinite: its gradient is given as 0,
                // as a value with an infinite gradient would be NaN in the forward pass.
                h.push(0.0);
                g.push(0.0);
                continue;
            }
            let m = r.floor();
            let lp_mode = m * r.ln() - r - libm::lgamma_r(m + 1.0).0;
            let sum = |f: &dyn Fn(f64, f64) -> f64| {
                crate::dist::ops::sum_unimodal(m, lp_mode, 0.0, |k| r.ln() - (k + 1.0).ln(), f).ok_or_else(|| Error::Unsupported {
                    dist: "Poisson",
                    method: "entropy",
                    hint: Some(format!("rate {r} is too large to sum the support (over 2e8 terms)")),
                })
            };
            h.push(sum(&|_, lp| -lp.exp() * lp)?);
            g.push(sum(&|k, lp| -lp.exp() * (k / r - 1.0) * lp)?);
        }
        crate::dist::ops::with_host_grads(h, &self.batch_shape, &[(&self.rate, g)])
    }
    /// `P(X <= x) = Q(floor(x) + 1, rate)` (regularized upper incomplete gamma), computed on the
    /// host: it carries no gradient.
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        let v = value.to_dtype(self.dtype())?;
        let shape = args::broadcast_shapes(v.dims(), &self.batch_shape)
            .ok_or_else(|| Error::shape_mismatch("`Poisson`.cdf", &self.batch_shape, v.dims()))?;
        let x = host(&v.broadcast_as(shape.as_slice())?)?;
        let rate = host(&self.rate.broadcast_as(shape.as_slice())?)?;
        let out: Vec<f64> = x
            .iter()
            .zip(&rate)
            .map(|(&x, &r)| {
                if x.is_nan() || r.is_nan() {
                    f64::NAN
                } else if x < 0.0 {
                    0.0
                } else if r == 0.0 || x.is_infinite() {
                    1.0
                } else {
                    statrs::function::gamma::checked_gamma_ur(x.floor() + 1.0, r).unwrap_or(f64::NAN)
                }
            })
            .collect();
        Ok(Tensor::from_vec(out, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Poisson {
            rate: args::expand_param("Poisson", &self.rate, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
