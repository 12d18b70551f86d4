//! The negative binomial distribution: successes before `total_count` failures.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops::{self, probs_to_logits};
use crate::dist::poisson::{host, poisson_draw};
use crate::dist::special::{betainc, lgamma, softplus};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use rand_distr::Distribution as _;
use std::sync::Arc;

/// Negative binomial distribution (torch convention): the number of successes `0, 1, 2, ...`
/// in Bernoulli trials with success probability `probs` before `total_count > 0` failures
/// (`total_count` is real-valued). `P(k) = C(k + r - 1, k) p^k (1 - p)^r`; values are floats.
///
/// This is scipy's `nbinom(n=total_count, p=1 - probs)`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, NegativeBinomial};
/// let d = NegativeBinomial::new(1.0, 0.5)?; // geometric with p = 1/2
/// let lp = d.log_prob(&candle_core::Tensor::new(2f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - 0.125f32.ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct NegativeBinomial {
    total_count: Tensor,
    probs: Tensor,
    logits: Tensor,
    batch_shape: Vec<usize>,
}

/// `Σ_k f(k, log p(k))` over the support of `NegativeBinomial(r, p)` (`l` the logit of `p`),
/// exact up to rounding; `None` if `p` is so close to 1 that the sum needs too many terms.
fn negative_binomial_sum(r: f64, p: f64, l: f64, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
    let (lp, lq) = ops::log_p_q(p, l);
    if p == 0.0 {
        return Some(f(0.0, 0.0));
    }
    let m = if r > 1.0 { ((r - 1.0) * (lp - lq).exp()).floor() } else { 0.0 };
    let lgam = |x: f64| libm::lgamma_r(x).0;
    let lp_mode = lgam(m + r) - lgam(m + 1.0) - lgam(r) + m * lp + r * lq;
    // The ratio p(k+1)/p(k) = p (k + r)/(k + 1) falls for r >= 1 and rises towards p for r < 1.
    let sup = if r < 1.0 { p } else { 0.0 };
    ops::sum_unimodal(m, lp_mode, sup, |k| ((k + r) / (k + 1.0)).ln() + lp, f)
}

impl NegativeBinomial {
    /// Negative binomial with `total_count > 0` failures and success probability `probs` in `[0, 1)`.
    pub fn new(total_count: impl Into<Arg>, probs: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("NegativeBinomial", vec![("total_count", total_count.into()), ("probs", probs.into())])?;
        args::validate_param("NegativeBinomial", "total_count", &r.tensors[0], &Constraint::Positive)?;
        args::validate_param("NegativeBinomial", "probs", &r.tensors[1], &Constraint::HalfOpenInterval(0.0, 1.0))?;
        let logits = probs_to_logits(&r.tensors[1])?;
        let mut t = r.tensors.into_iter();
        Ok(NegativeBinomial { total_count: t.next().unwrap(), probs: t.next().unwrap(), logits, batch_shape: r.shape })
    }

    /// Negative binomial with `total_count > 0` failures and success log-odds `logits`.
    pub fn from_logits(total_count: impl Into<Arg>, logits: impl Into<Arg>) -> Result<Self> {
        let r =
            args::resolve("NegativeBinomial", vec![("total_count", total_count.into()), ("logits", logits.into())])?;
        args::validate_param("NegativeBinomial", "total_count", &r.tensors[0], &Constraint::Positive)?;
        args::validate_param("NegativeBinomial", "logits", &r.tensors[1], &Constraint::Real)?;
        let probs = candle_nn::ops::sigmoid(&r.tensors[1])?;
        let mut t = r.tensors.into_iter();
        Ok(NegativeBinomial { total_count: t.next().unwrap(), logits: t.next().unwrap(), probs, batch_shape: r.shape })
    }

    /// The number of failures `r`.
    pub fn total_count(&self) -> &Tensor {
        &self.total_count
    }

    /// The success probabilities.
    pub fn probs(&self) -> &Tensor {
        &self.probs
    }

    /// The success log-odds.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }
}

impl Distribution for NegativeBinomial {
    fn name(&self) -> &'static str {
        "NegativeBinomial"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.probs.dtype()
    }
    fn device(&self) -> &Device {
        self.probs.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        // Gamma-Poisson mixture: rate ~ Gamma(shape = r, scale = p / (1 - p)), k ~ Poisson(rate).
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let r = host(&self.total_count.broadcast_as(shape.as_slice())?)?;
        let odds = host(&self.logits.exp()?.broadcast_as(shape.as_slice())?)?;
        let mut out = Vec::with_capacity(r.len());
        for (&r, &scale) in r.iter().zip(&odds) {
            let g = rand_distr::Gamma::new(r, scale).map_err(|e| {
                Error::invalid_arg(
                    "`NegativeBinomial`.sample",
                    "total_count",
                    format!("cannot sample with total_count {r}, odds {scale}: {e}"),
                )
            })?;
            let rate = g.sample(rng.inner());
            out.push(poisson_draw("NegativeBinomial", rng.inner(), rate)?);
        }
        Ok(Tensor::from_vec(out, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("NegativeBinomial", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("NegativeBinomial", value, &Constraint::NonnegativeInteger)?;
        let k = value.to_dtype(self.dtype())?;
        let shape = args::broadcast_shapes(k.dims(), &self.batch_shape).unwrap_or_default();
        let k = k.broadcast_as(shape.as_slice())?;
        let r = self.total_count.broadcast_as(shape.as_slice())?;
        let l = self.logits.broadcast_as(shape.as_slice())?;
        // log C(k + r - 1, k) = lgamma(k + r) - lgamma(k + 1) - lgamma(r)
        let log_binom = ((lgamma(&(&k + &r)?)? - lgamma(&k.affine(1.0, 1.0)?)?)? - lgamma(&r)?)?;
        // k log p + r log(1 - p) = -k softplus(-l) - r softplus(l)
        let ll = ((&k * softplus(&l.neg()?)?)? + (&r * softplus(&l)?)?)?;
        Ok((log_binom - ll)?)
    }
    fn support(&self) -> Constraint {
        Constraint::NonnegativeInteger
    }
    fn mean(&self) -> Result<Tensor> {
        // r p / (1 - p) = r exp(l)
        Ok((&self.total_count * self.logits.exp()?)?)
    }
    fn variance(&self) -> Result<Tensor> {
        // mean / (1 - p) = r exp(l) (1 + exp(l))
        let e = self.logits.exp()?;
        Ok(((&self.total_count * &e)? * e.affine(1.0, 1.0)?)?)
    }
    /// `-Σ_k p(k) log p(k)` by exact summation over the support (from the mode outwards until
    /// the terms, and the geometric tail they bound, are negligible), on the host in f64;
    /// differentiable in the logits and `total_count` through `dH/dθ = -Σ p(k) s_θ(k) log p(k)`
    /// with the scores `s_l = k - (k + r) σ(l)`, `s_r = ψ(k + r) - ψ(r) + log(1 - p)`.
    fn entropy(&self) -> Result<Tensor> {
        use statrs::function::gamma::digamma;
        let (r, p, l) = (host(&self.total_count)?, host(&self.probs)?, host(&self.logits)?);
        let n = r.len();
        let (mut h, mut gl, mut gr) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let (ri, pi) = (r[i], p[i]);
            let sum = |f: &dyn Fn(f64, f64) -> f64| {
                negative_binomial_sum(ri, pi, l[i], f).ok_or_else(|| Error::Unsupported {
                    dist: "NegativeBinomial",
                    method: "entropy",
                    hint: Some(format!("probs {pi} is too close to 1 to sum the support (over 2e8 terms)")),
                })
            };
            let (psi_r, lq) = (digamma(ri), ops::log_p_q(pi, l[i]).1);
            h.push(sum(&|_, lp| -lp.exp() * lp)?);
            gl.push(sum(&|k, lp| -lp.exp() * (k - (k + ri) * pi) * lp)?);
            gr.push(sum(&|k, lp| -lp.exp() * (digamma(k + ri) - psi_r + lq) * lp)?);
        }
        ops::with_host_grads(h, &self.batch_shape, &[(&self.logits, gl), (&self.total_count, gr)])
    }
    /// `P(X <= x) = I_{1-p}(r, ⌊x⌋ + 1)` (regularized incomplete beta; 0 below 0). Values
    /// only: no gradient.
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("NegativeBinomial", value, &self.batch_shape, &[], self.dtype())?;
        let [k, r, q] = ops::floor_count_q(value, &self.total_count, &self.logits)?;
        let c = betainc(&r, &k.maximum(0.0)?.affine(1.0, 1.0)?, &q)?;
        Ok(k.lt(0.0)?.where_cond(&c.zeros_like()?, &c)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let e = |t: &Tensor| args::expand_param("NegativeBinomial", t, &self.batch_shape, batch_shape);
        Ok(Arc::new(NegativeBinomial {
            total_count: e(&self.total_count)?,
            probs: e(&self.probs)?,
            logits: e(&self.logits)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
