//! The binomial distribution: successes in `total_count` Bernoulli trials.

use crate::defaults;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops::{self, probs_to_logits};
use crate::dist::poisson::host;
use crate::dist::special::{betainc, lgamma, softplus};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use rand_distr::Distribution as _;
use std::sync::Arc;

/// Binomial distribution over `0..=total_count` with success probability `probs` (or log-odds
/// `logits`); values are float counts (as in torch). `total_count` may be a tensor of
/// nonnegative integers, broadcast with the probabilities.
///
/// ```
/// use ppl_runtime::dist::{Binomial, Distribution};
/// let d = Binomial::new(3.0, 0.5)?;
/// let lp = d.log_prob(&candle_core::Tensor::new(1f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - (3.0f32 / 8.0).ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Binomial {
    total_count: Tensor,
    probs: Tensor,
    logits: Tensor,
    batch_shape: Vec<usize>,
}

/// Checks (when validation is on) that every count in `value` is at most the matching
/// `total_count` (both already broadcast to one shape); names the first offending element.
pub(crate) fn validate_le_total(dist: &'static str, value: &Tensor, total: &Tensor) -> Result<()> {
    if !defaults::validation_enabled() {
        return Ok(());
    }
    let (v, n) = (host(value)?, host(total)?);
    let bad: Vec<usize> = (0..v.len()).filter(|&i| v[i] > n[i]).collect();
    if let Some(&i) = bad.first() {
        let more = if bad.len() > 1 { format!(" ({} of {} fail)", bad.len(), v.len()) } else { String::new() };
        return Err(Error::OutOfSupport {
            dist,
            support: "integer_interval(0, total_count)".into(),
            detail: format!("flat element {i} is {} > total_count {}{more}", v[i], n[i]),
        });
    }
    Ok(())
}

/// `Σ_k f(k, log p(k))` over the support of `Binomial(n, p)` (`l` the logit of `p`), exact up to
/// rounding; `None` if the support is too wide to sum.
pub(crate) fn binomial_sum(n: f64, p: f64, l: f64, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
    let (lp, lq) = ops::log_p_q(p, l);
    if n == 0.0 || p == 0.0 || p == 1.0 {
        let k = if p == 1.0 { n } else { 0.0 };
        return Some(f(k, 0.0));
    }
    let m = ((n + 1.0) * p).floor().clamp(0.0, n);
    let lgam = |x: f64| libm::lgamma_r(x).0;
    let lp_mode = lgam(n + 1.0) - lgam(m + 1.0) - lgam(n - m + 1.0) + m * lp + (n - m) * lq;
    ops::sum_unimodal(m, lp_mode, 0.0, |k| ((n - k) / (k + 1.0)).ln() + l, f)
}

impl Binomial {
    fn too_wide(&self, method: &'static str) -> Error {
        Error::Unsupported { dist: "Binomial", method, hint: Some("the support is too wide to sum (over 2e8 terms)".into()) }
    }

    /// Binomial with `total_count` trials (nonnegative integers: a number, or a float or
    /// integer tensor) and success probability `probs` in `[0, 1]`.
    pub fn new(total_count: impl Into<Arg>, probs: impl Into<Arg>) -> Result<Self> {
        let probs = probs.into();
        let total_count = args::count_arg(total_count.into(), &probs)?;
        let r = args::resolve("Binomial", vec![("total_count", total_count), ("probs", probs)])?;
        args::validate_param("Binomial", "total_count", &r.tensors[0], &Constraint::NonnegativeInteger)?;
        args::validate_param("Binomial", "probs", &r.tensors[1], &Constraint::UnitInterval)?;
        let logits = probs_to_logits(&r.tensors[1])?;
        let mut t = r.tensors.into_iter();
        Ok(Binomial { total_count: t.next().unwrap(), probs: t.next().unwrap(), logits, batch_shape: r.shape })
    }

    /// Binomial with `total_count` trials (as in [`Binomial::new`]) and success log-odds `logits`.
    pub fn from_logits(total_count: impl Into<Arg>, logits: impl Into<Arg>) -> Result<Self> {
        let logits = logits.into();
        let total_count = args::count_arg(total_count.into(), &logits)?;
        let r = args::resolve("Binomial", vec![("total_count", total_count), ("logits", logits)])?;
        args::validate_param("Binomial", "total_count", &r.tensors[0], &Constraint::NonnegativeInteger)?;
        args::validate_param("Binomial", "logits", &r.tensors[1], &Constraint::Real)?;
        let probs = candle_nn::ops::sigmoid(&r.tensors[1])?;
        let mut t = r.tensors.into_iter();
        Ok(Binomial { total_count: t.next().unwrap(), logits: t.next().unwrap(), probs, batch_shape: r.shape })
    }

    /// The number of trials.
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

impl Distribution for Binomial {
    fn name(&self) -> &'static str {
        "Binomial"
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
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let n = host(&self.total_count.broadcast_as(shape.as_slice())?)?;
        let p = host(&self.probs.broadcast_as(shape.as_slice())?)?;
        let mut out = Vec::with_capacity(n.len());
        for (&n, &p) in n.iter().zip(&p) {
            let b = rand_distr::Binomial::new(n as u64, p.clamp(0.0, 1.0)).map_err(|e| {
                Error::invalid_arg(
                    "`Binomial`.sample",
                    "probs",
                    format!("cannot sample with total_count {n}, probs {p}: {e}"),
                )
            })?;
            out.push(b.sample(rng.inner()) as f64);
        }
        Ok(Tensor::from_vec(out, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Binomial", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Binomial", value, &Constraint::NonnegativeInteger)?;
        let k = value.to_dtype(self.dtype())?;
        let shape = args::broadcast_shapes(k.dims(), &self.batch_shape).unwrap_or_default();
        let k = k.broadcast_as(shape.as_slice())?;
        let n = self.total_count.broadcast_as(shape.as_slice())?;
        let l = self.logits.broadcast_as(shape.as_slice())?;
        validate_le_total("Binomial", &k, &n)?;
        let nmk = (&n - &k)?;
        let log_binom =
            ((lgamma(&n.affine(1.0, 1.0)?)? - lgamma(&k.affine(1.0, 1.0)?)?)? - lgamma(&nmk.affine(1.0, 1.0)?)?)?;
        // k log p + (n - k) log(1 - p) = -k softplus(-l) - (n - k) softplus(l): no cancellation.
        let ll = ((&k * softplus(&l.neg()?)?)? + (nmk * softplus(&l)?)?)?;
        Ok((log_binom - ll)?)
    }
    fn support(&self) -> Constraint {
        match host(&self.total_count) {
            Ok(n) if !n.is_empty() && n.iter().all(|&x| x == n[0]) => Constraint::IntegerInterval(0, n[0] as i64),
            _ => Constraint::NonnegativeInteger,
        }
    }
    fn has_enumerate_support(&self) -> bool {
        true
    }
    fn enumerate_support(&self, expand: bool) -> Result<Tensor> {
        let n = host(&self.total_count)?;
        let Some(&n0) = n.first().filter(|&&n0| n.iter().all(|&x| x == n0)) else {
            return Err(Error::Unsupported {
                dist: "Binomial",
                method: "enumerate_support",
                hint: Some("total_count must be the same for all batch elements".into()),
            });
        };
        let m = n0 as usize + 1;
        let mut shape = vec![m];
        shape.extend(std::iter::repeat_n(1, self.batch_shape.len()));
        let v = Tensor::arange(0u32, m as u32, self.device())?.to_dtype(self.dtype())?.reshape(shape)?;
        if expand { Ok(v.broadcast_as(args::concat_shapes(&[m], &self.batch_shape))?.contiguous()?) } else { Ok(v) }
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((&self.total_count * &self.probs)?)
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(((&self.total_count * &self.probs)? * self.probs.affine(-1.0, 1.0)?)?)
    }
    /// `-Σ_k p(k) log p(k)` by exact summation over the support (from the mode outwards until
    /// the terms are negligible), on the host in f64; differentiable in the logits (so in
    /// `probs`) through `dH/dl = -Σ p(k) (k - n σ(l)) log p(k)`, summed the same way.
    fn entropy(&self) -> Result<Tensor> {
        let (n, p, l) = (host(&self.total_count)?, host(&self.probs)?, host(&self.logits)?);
        let (mut h, mut g) = (Vec::with_capacity(n.len()), Vec::with_capacity(n.len()));
        for i in 0..n.len() {
            let sum = |f: &dyn Fn(f64, f64) -> f64| binomial_sum(n[i], p[i], l[i], f).ok_or_else(|| self.too_wide("entropy"));
            let np = n[i] * p[i];
            h.push(sum(&|_, lp| -lp.exp() * lp)?);
            g.push(sum(&|k, lp| -lp.exp() * (k - np) * lp)?);
        }
        ops::with_host_grads(h, &self.batch_shape, &[(&self.logits, g)])
    }
    /// `P(X <= x) = I_{1-p}(n - ⌊x⌋, ⌊x⌋ + 1)` (regularized incomplete beta; 0 below 0, 1 from
    /// `n` on). Values only: no gradient.
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Binomial", value, &self.batch_shape, &[], self.dtype())?;
        let [k, n, q] = ops::floor_count_q(value, &self.total_count, &self.logits)?;
        // Arguments kept valid where the answer is 0 or 1 anyway.
        let kc = k.maximum(0.0)?.minimum(&n.affine(1.0, -1.0)?.maximum(0.0)?)?;
        let a = (&n - &kc)?.maximum(1.0)?;
        let c = betainc(&a, &kc.affine(1.0, 1.0)?, &q)?;
        let c = k.ge(&n)?.where_cond(&c.ones_like()?, &c)?;
        Ok(k.lt(0.0)?.where_cond(&c.zeros_like()?, &c)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let e = |t: &Tensor| args::expand_param("Binomial", t, &self.batch_shape, batch_shape);
        Ok(Arc::new(Binomial {
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
