//! The negative binomial distribution: successes before `total_count` failures.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops::probs_to_logits;
use crate::dist::poisson::{host, poisson_draw};
use crate::dist::special::{lgamma, softplus};
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
