//! The multinomial distribution: category counts of `total_count` categorical draws.

use crate::defaults;
use crate::dist::args::{self, Arg};
use crate::dist::categorical::{Categorical, finfo_min};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::binomial::binomial_sum;
use crate::dist::ops::entr;
use crate::dist::poisson::host;
use crate::dist::special::lgamma;
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{D, DType, Device, Tensor};
use rand_distr::Distribution as _;
use std::sync::Arc;

/// Multinomial distribution: counts over `K` categories (the last dim of `probs`/`logits`) of
/// `total_count` independent categorical draws. `event_shape = [K]`, values are float counts
/// summing to `total_count` (an integer shared by the whole batch, as in torch).
///
/// [`support`](Distribution::support) reports `independent(integer_interval(0, n), 1)`, as the
/// constraint set has no multinomial variant; `log_prob` additionally checks that each event
/// sums to `total_count`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Multinomial};
/// use candle_core::{Device, Tensor};
/// let d = Multinomial::new(2, &Tensor::new(&[0.5f32, 0.5], &Device::Cpu)?)?;
/// let lp = d.log_prob(&Tensor::new(&[1f32, 1.0], &Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - 0.5f32.ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Multinomial {
    total_count: u64,
    cat: Categorical,
    event_shape: [usize; 1],
}

impl Multinomial {
    /// Multinomial with `total_count` draws and event probabilities `probs` (rows on the simplex).
    pub fn new(total_count: u64, probs: impl Into<Arg>) -> Result<Self> {
        Ok(Self::wrap(total_count, Categorical::new_named("Multinomial", probs.into())?))
    }

    /// Multinomial with `total_count` draws and unnormalized log-probabilities `logits`.
    pub fn from_logits(total_count: u64, logits: impl Into<Arg>) -> Result<Self> {
        Ok(Self::wrap(total_count, Categorical::from_logits_named("Multinomial", logits.into())?))
    }

    fn wrap(total_count: u64, cat: Categorical) -> Self {
        let k = cat.num_categories();
        Multinomial { total_count, cat, event_shape: [k] }
    }

    /// The number of draws.
    pub fn total_count(&self) -> u64 {
        self.total_count
    }

    /// The probabilities, `batch_shape ++ [K]`.
    pub fn probs(&self) -> &Tensor {
        self.cat.probs()
    }

    /// The normalized log-probabilities, `batch_shape ++ [K]`.
    pub fn logits(&self) -> &Tensor {
        self.cat.logits()
    }

    fn validate_sums(&self, value: &Tensor) -> Result<()> {
        if !defaults::validation_enabled() {
            return Ok(());
        }
        let sums = host(&value.sum(D::Minus1)?)?;
        let n = self.total_count as f64;
        if let Some(i) = sums.iter().position(|&s| s != n) {
            return Err(Error::OutOfSupport {
                dist: "Multinomial",
                support: self.support().to_string(),
                detail: format!("event {i} (flat) sums to {}, not total_count {n}", sums[i]),
            });
        }
        Ok(())
    }
}

impl Distribution for Multinomial {
    fn name(&self) -> &'static str {
        "Multinomial"
    }
    fn batch_shape(&self) -> &[usize] {
        self.cat.batch_shape()
    }
    fn event_shape(&self) -> &[usize] {
        &self.event_shape
    }
    fn dtype(&self) -> DType {
        self.cat.dtype()
    }
    fn device(&self) -> &Device {
        self.cat.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        // Sequential conditional binomials: x_j ~ Bin(n - sum_{i<j} x_i, p_j / (1 - sum_{i<j} p_i)).
        let k = self.event_shape[0];
        let p = host(self.cat.probs())?;
        let nb = p.len() / k;
        let shape = args::concat_shapes(&args::concat_shapes(sample_shape, self.batch_shape()), &[k]);
        let n_events: usize = shape.iter().product::<usize>() / k;
        let mut out = Vec::with_capacity(n_events * k);
        for i in 0..n_events {
            let row = &p[(i % nb) * k..(i % nb + 1) * k];
            let (mut left, mut mass) = (self.total_count, 1.0f64);
            for (j, &pj) in row.iter().enumerate() {
                let x = if j == k - 1 || left == 0 {
                    left
                } else {
                    let q = if mass > 0.0 { (pj / mass).clamp(0.0, 1.0) } else { 1.0 };
                    let b = rand_distr::Binomial::new(left, q).map_err(|e| {
                        Error::invalid_arg(
                            "`Multinomial`.sample",
                            "probs",
                            format!("bad conditional probability {q}: {e}"),
                        )
                    })?;
                    b.sample(rng.inner())
                };
                out.push(x as f64);
                left -= x;
                mass -= pj;
            }
        }
        Ok(Tensor::from_vec(out, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Multinomial", value, self.batch_shape(), &self.event_shape, self.dtype())?;
        args::validate_value("Multinomial", value, &self.support())?;
        self.validate_sums(value)?;
        let x = value.to_dtype(self.dtype())?;
        // -inf logits (ruled-out categories) are clamped so that 0 * logit is 0, not NaN.
        let l = self.cat.logits().clamp(finfo_min(self.dtype()), f64::INFINITY)?;
        let ll = x.broadcast_mul(&l)?.sum(D::Minus1)?;
        let norm = lgamma(&x.affine(1.0, 1.0)?)?.sum(D::Minus1)?;
        let log_n_fact = libm::lgamma(self.total_count as f64 + 1.0);
        Ok(ll.broadcast_sub(&norm)?.affine(1.0, log_n_fact)?)
    }
    fn support(&self) -> Constraint {
        Constraint::IntegerInterval(0, self.total_count as i64).independent(1)
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.cat.probs().affine(self.total_count as f64, 0.0)?)
    }
    fn variance(&self) -> Result<Tensor> {
        let p = self.cat.probs();
        Ok((p * p.affine(-1.0, 1.0)?)?.affine(self.total_count as f64, 0.0)?)
    }
    /// scipy's formula `n Σ_i entr(p_i) - log n! + Σ_i E[log X_i!]` with `X_i ~ Binomial(n, p_i)`,
    /// the expectations by exact summation, on the host in f64; differentiable in the
    /// probabilities (so in logits) through `∂H/∂p_i = -n (log p_i + 1) + E[log X_i! (X_i/p_i -
    /// (n - X_i)/(1 - p_i))]`, summed the same way (0 at `p_i ∈ {0, 1}`, where it is infinite).
    fn entropy(&self) -> Result<Tensor> {
        let k = self.event_shape[0];
        let (p, l) = (host(self.cat.probs())?, host(self.cat.logits())?);
        let n = self.total_count as f64;
        let log_n_fact = libm::lgamma(n + 1.0);
        let mut h = Vec::with_capacity(p.len() / k);
        let mut grad = Vec::with_capacity(p.len());
        for (row, lrow) in p.chunks(k).zip(l.chunks(k)) {
            let mut acc = -log_n_fact;
            for (&pi, &li) in row.iter().zip(lrow) {
                // The normalized log-probability minus the log of the complement is p_i's logit.
                let logit = li - (-pi).ln_1p();
                let sum = |f: &dyn Fn(f64, f64) -> f64| {
                    binomial_sum(n, pi, logit, f).ok_or_else(|| Error::Unsupported {
                        dist: "Multinomial",
                        method: "entropy",
                        hint: Some("total_count is too large to sum the support (over 2e8 terms)".into()),
                    })
                };
                acc += n * entr(pi) + sum(&|x, lp| lp.exp() * libm::lgamma(x + 1.0))?;
                grad.push(if pi > 0.0 && pi < 1.0 {
                    let score = |x: f64| x / pi - (n - x) / (1.0 - pi);
                    -n * (pi.ln() + 1.0) + sum(&|x, lp| lp.exp() * libm::lgamma(x + 1.0) * score(x))?
                } else {
                    0.0
                });
            }
            h.push(acc);
        }
        let probs = self.cat.probs();
        let h = Tensor::from_vec(h, self.batch_shape(), self.device())?.to_dtype(self.dtype())?;
        if !probs.track_op() {
            return Ok(h);
        }
        let g = Tensor::from_vec(grad, probs.dims(), self.device())?.to_dtype(self.dtype())?;
        Ok((h + ((probs - probs.detach())? * g)?.sum(D::Minus1)?)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Self::wrap(self.total_count, self.cat.expand_to(batch_shape)?)))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
