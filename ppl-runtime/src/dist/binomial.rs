//! The binomial distribution: successes in `total_count` Bernoulli trials.

use crate::defaults;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops::probs_to_logits;
use crate::dist::poisson::host;
use crate::dist::special::{lgamma, softplus};
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

impl Binomial {
    /// Binomial with `total_count` trials (nonnegative integers) and success probability `probs` in `[0, 1]`.
    pub fn new(total_count: impl Into<Arg>, probs: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Binomial", vec![("total_count", total_count.into()), ("probs", probs.into())])?;
        args::validate_param("Binomial", "total_count", &r.tensors[0], &Constraint::NonnegativeInteger)?;
        args::validate_param("Binomial", "probs", &r.tensors[1], &Constraint::UnitInterval)?;
        let logits = probs_to_logits(&r.tensors[1])?;
        let mut t = r.tensors.into_iter();
        Ok(Binomial { total_count: t.next().unwrap(), probs: t.next().unwrap(), logits, batch_shape: r.shape })
    }

    /// Binomial with `total_count` trials and success log-odds `logits`.
    pub fn from_logits(total_count: impl Into<Arg>, logits: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Binomial", vec![("total_count", total_count.into()), ("logits", logits.into())])?;
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
