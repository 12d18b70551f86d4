//! The zero-inflated Poisson distribution, as in Pyro.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::poisson::{Poisson, host, poisson_draw};
use crate::dist::special::log1p;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Zero-inflated Poisson (Pyro's `ZeroInflatedPoisson`): with probability `gate` the value is a
/// structural zero, otherwise it is drawn from `Poisson(rate)`. Values are float counts.
///
/// `P(0) = gate + (1 - gate) e^{-rate}` and `P(k) = (1 - gate) Poisson(k; rate)` for `k > 0`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, ZeroInflatedPoisson};
/// let d = ZeroInflatedPoisson::new(0.5, 1.0)?;
/// let lp = d.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - (0.5 + 0.5 * (-1f32).exp()).ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ZeroInflatedPoisson {
    gate: Tensor,
    rate: Tensor,
    base: Poisson,
    batch_shape: Vec<usize>,
}

impl ZeroInflatedPoisson {
    /// Zero-inflated Poisson with zero-inflation probability `gate` in `[0, 1]` and `rate >= 0`.
    pub fn new(gate: impl Into<Arg>, rate: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("ZeroInflatedPoisson", vec![("gate", gate.into()), ("rate", rate.into())])?;
        args::validate_param("ZeroInflatedPoisson", "gate", &r.tensors[0], &Constraint::UnitInterval)?;
        args::validate_param("ZeroInflatedPoisson", "rate", &r.tensors[1], &Constraint::Nonnegative)?;
        Self::build(r.tensors[0].clone(), r.tensors[1].clone(), r.shape)
    }

    /// Zero-inflated Poisson with the gate given as log-odds `gate_logits`.
    pub fn from_gate_logits(gate_logits: impl Into<Arg>, rate: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("ZeroInflatedPoisson", vec![("gate_logits", gate_logits.into()), ("rate", rate.into())])?;
        args::validate_param("ZeroInflatedPoisson", "gate_logits", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("ZeroInflatedPoisson", "rate", &r.tensors[1], &Constraint::Nonnegative)?;
        Self::build(candle_nn::ops::sigmoid(&r.tensors[0])?, r.tensors[1].clone(), r.shape)
    }

    fn build(gate: Tensor, rate: Tensor, batch_shape: Vec<usize>) -> Result<Self> {
        let base = Poisson::new(&rate)?;
        Ok(ZeroInflatedPoisson { gate, rate, base, batch_shape })
    }

    /// The zero-inflation probability.
    pub fn gate(&self) -> &Tensor {
        &self.gate
    }

    /// The Poisson rate.
    pub fn rate(&self) -> &Tensor {
        &self.rate
    }
}

impl Distribution for ZeroInflatedPoisson {
    fn name(&self) -> &'static str {
        "ZeroInflatedPoisson"
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
        let gate = host(&self.gate.broadcast_as(shape.as_slice())?)?;
        let rate = host(&self.rate.broadcast_as(shape.as_slice())?)?;
        let mut out = Vec::with_capacity(gate.len());
        for (&g, &r) in gate.iter().zip(&rate) {
            let zero = rng.uniform_open01() < g;
            out.push(if zero { 0.0 } else { poisson_draw("ZeroInflatedPoisson", rng.inner(), r)? });
        }
        Ok(Tensor::from_vec(out, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape(self.name(), value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value(self.name(), value, &Constraint::NonnegativeInteger)?;
        let lp = self.base.log_prob(value)?; // broadcast shape
        let gate = self.gate.broadcast_as(lp.dims())?;
        // log(1 - gate) + log Poisson(k), and log(gate + (1 - gate) e^{-rate}) at k = 0.
        let lp = (log1p(&gate.neg()?)? + lp)?;
        let at_zero = (gate + lp.exp()?)?.log()?;
        let is_zero = value.to_dtype(self.dtype())?.eq(0.0)?.broadcast_as(lp.dims())?;
        Ok(is_zero.where_cond(&at_zero, &lp)?)
    }
    fn support(&self) -> Constraint {
        Constraint::NonnegativeInteger
    }
    fn mean(&self) -> Result<Tensor> {
        Ok((self.gate.affine(-1.0, 1.0)? * &self.rate)?)
    }
    fn variance(&self) -> Result<Tensor> {
        // (1 - g) r (1 + g r)
        let m = self.mean()?;
        Ok((m * (&self.gate * &self.rate)?.affine(1.0, 1.0)?)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let e = |t: &Tensor| args::expand_param("ZeroInflatedPoisson", t, &self.batch_shape, batch_shape);
        Ok(Arc::new(Self::build(e(&self.gate)?, e(&self.rate)?, batch_shape.to_vec())?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
