//! The geometric distribution: the number of failures before the first success.

use crate::dist::ops;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::special::{expm1, softplus};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Geometric distribution (torch convention): the number of failures `0, 1, 2, ...` before the
/// first success in Bernoulli trials with success probability `probs` in `(0, 1]`.
///
/// Kept in logit form, so `log_prob = -k softplus(l) - softplus(-l)` is stable near 0 and 1.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Geometric};
/// let d = Geometric::new(0.5)?;
/// let lp = d.log_prob(&candle_core::Tensor::new(1f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - 0.25f32.ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Geometric {
    logits: Tensor,
    batch_shape: Vec<usize>,
}

impl Geometric {
    /// Geometric with success probability `probs` in `(0, 1]`.
    pub fn new(probs: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Geometric", vec![("probs", probs.into())])?;
        let p = &r.tensors[0];
        args::validate_param("Geometric", "probs", p, &Constraint::UnitInterval)?;
        args::validate_param("Geometric", "probs", p, &Constraint::Positive)?;
        Ok(Geometric { logits: ops::probs_to_logits(p)?, batch_shape: r.shape })
    }

    /// Geometric with success log-odds `logits`.
    pub fn from_logits(logits: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Geometric", vec![("logits", logits.into())])?;
        args::validate_param("Geometric", "logits", &r.tensors[0], &Constraint::Real)?;
        Ok(Geometric { logits: r.tensors[0].clone(), batch_shape: r.shape })
    }

    /// The success log-odds.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The success probabilities.
    pub fn probs(&self) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.logits)?)
    }
}

impl Distribution for Geometric {
    fn name(&self) -> &'static str {
        "Geometric"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.logits.dtype()
    }
    fn device(&self) -> &Device {
        self.logits.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        // Inversion: floor(log u / log(1 - p)), with -log(1 - p) = softplus(l).
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let u = rng.uniform_tensor(&shape, DType::F64, self.device())?;
        let sp = softplus(&self.logits.detach().to_dtype(DType::F64)?)?;
        Ok(u.log()?.neg()?.broadcast_div(&sp)?.floor()?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Geometric", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Geometric", value, &Constraint::NonnegativeInteger)?;
        let k = value.to_dtype(self.dtype())?;
        // k log(1 - p) + log p = -k softplus(l) - softplus(-l)
        let a = k.broadcast_mul(&softplus(&self.logits)?)?;
        Ok(a.neg()?.broadcast_sub(&softplus(&self.logits.neg()?)?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::NonnegativeInteger
    }
    fn mean(&self) -> Result<Tensor> {
        // (1 - p) / p = exp(-l)
        Ok(self.logits.neg()?.exp()?)
    }
    fn variance(&self) -> Result<Tensor> {
        // (1 - p) / p^2 = exp(-l) (1 + exp(-l))
        let e = self.logits.neg()?.exp()?;
        Ok((&e * e.affine(1.0, 1.0)?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // Bernoulli entropy / p, with H_bern = softplus(l) - p l.
        let p = self.probs()?;
        let h = (softplus(&self.logits)? - (&p * &self.logits)?)?;
        Ok((h / p)?)
    }
    /// `P(X <= x) = 1 - (1 - p)^(floor(x) + 1)` for `x >= 0`, else 0.
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        let v = value.to_dtype(self.dtype())?;
        let n = v.floor()?.affine(1.0, 1.0)?;
        // -expm1(-(floor(x) + 1) softplus(l))
        let c = expm1(&n.broadcast_mul(&softplus(&self.logits)?)?.neg()?)?.neg()?;
        let neg = v.lt(0.0)?.broadcast_as(c.dims())?;
        Ok(neg.where_cond(&c.zeros_like()?, &c)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Geometric {
            logits: args::expand_param("Geometric", &self.logits, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
