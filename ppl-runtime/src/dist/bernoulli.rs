//! The Bernoulli distribution, parameterized by `probs` or `logits`.

use crate::dist::{kernels, ops};
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution, sum_rightmost};
use crate::dist::special::softplus;
use crate::error::Result;
use crate::nn::fused;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Bernoulli distribution over `{0, 1}` (values are floats, as in torch).
///
/// Kept in logit form internally, so `log_prob` is stable for probabilities near 0 and 1.
#[derive(Clone, Debug)]
pub struct Bernoulli {
    logits: Tensor,
    batch_shape: Vec<usize>,
}

impl Bernoulli {
    /// Bernoulli with success probability `probs` in `[0, 1]`.
    pub fn new(probs: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Bernoulli", vec![("probs", probs.into())])?;
        let p = &r.tensors[0];
        args::validate_param("Bernoulli", "probs", p, &Constraint::UnitInterval)?;
        Ok(Bernoulli { logits: ops::probs_to_logits(p)?, batch_shape: r.shape })
    }

    /// Bernoulli with log-odds `logits`.
    pub fn from_logits(logits: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Bernoulli", vec![("logits", logits.into())])?;
        args::validate_param("Bernoulli", "logits", &r.tensors[0], &Constraint::Real)?;
        Ok(Bernoulli { logits: r.tensors[0].clone(), batch_shape: r.shape })
    }

    /// The log-odds.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The success probabilities.
    pub fn probs(&self) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.logits)?)
    }
}

impl Distribution for Bernoulli {
    fn name(&self) -> &'static str {
        "Bernoulli"
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
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let u = rng.uniform_tensor(&shape, self.dtype(), self.device())?;
        let p = self.probs()?.detach();
        Ok(u.broadcast_lt(&p)?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        self.log_prob_event(value, 0)
    }
    /// `x·l - softplus(l)`, summed over the rightmost `event_dims` dims in the same pass on the
    /// CPU ([`crate::nn::fused::bernoulli_logits_log_prob`]); Candle ops elsewhere.
    fn log_prob_event(&self, value: &Tensor, event_dims: usize) -> Result<Tensor> {
        args::check_value_shape("Bernoulli", value, &self.batch_shape, &[], self.dtype())?;
        if !kernels::quick_binary(value) {
            args::validate_value("Bernoulli", value, &Constraint::Boolean)?;
        }
        let value = value.to_dtype(self.dtype())?;
        if kernels::cpu_kernels(value.device()) {
            return fused::bernoulli_logits_log_prob(&self.logits, &value, event_dims);
        }
        // x * l - softplus(l)
        let sp = softplus(&self.logits)?;
        sum_rightmost("Bernoulli", value.broadcast_mul(&self.logits)?.broadcast_sub(&sp)?, event_dims)
    }
    fn support(&self) -> Constraint {
        Constraint::Boolean
    }
    fn has_enumerate_support(&self) -> bool {
        true
    }
    fn enumerate_support(&self, expand: bool) -> Result<Tensor> {
        let rank = self.batch_shape.len();
        let mut shape = vec![2usize];
        shape.extend(std::iter::repeat_n(1, rank));
        let v = Tensor::new(&[0f64, 1.0], self.device())?.to_dtype(self.dtype())?.reshape(shape)?;
        if expand {
            Ok(v.broadcast_as(args::concat_shapes(&[2], &self.batch_shape))?.contiguous()?)
        } else {
            Ok(v)
        }
    }
    fn mean(&self) -> Result<Tensor> {
        self.probs()
    }
    fn variance(&self) -> Result<Tensor> {
        let p = self.probs()?;
        Ok((&p * p.affine(-1.0, 1.0)?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // H = softplus(l) - p * l
        let p = self.probs()?;
        Ok((softplus(&self.logits)? - (p * &self.logits)?)?)
    }
    /// `0` below 0, `1 - p` on `[0, 1)`, `1` from 1 on.
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Bernoulli", value, &self.batch_shape, &[], self.dtype())?;
        let x = value.to_dtype(self.dtype())?;
        let shape = args::broadcast_shapes(x.dims(), &self.batch_shape).unwrap_or_default();
        let x = x.broadcast_as(shape.as_slice())?;
        let q = candle_nn::ops::sigmoid(&self.logits.neg()?)?.broadcast_as(shape.as_slice())?;
        let c = x.ge(1.0)?.where_cond(&q.ones_like()?, &q)?;
        Ok(x.lt(0.0)?.where_cond(&q.zeros_like()?, &c)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Bernoulli { logits: args::expand_param("Bernoulli", &self.logits, &self.batch_shape, batch_shape)?, batch_shape: batch_shape.to_vec() }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
