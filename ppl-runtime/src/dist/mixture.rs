//! `MixtureSameFamily`: a finite mixture whose components share one batched distribution.

use crate::dist::args;
use crate::dist::categorical::Categorical;
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{D, DType, Device, Tensor};
use std::sync::Arc;

/// A mixture of `K` components of one family (torch's `MixtureSameFamily`): `mixing` is a
/// [`Categorical`] over `K` whose batch shape broadcasts with `B`, and `component` has batch
/// shape `B ++ [K]`. The mixture has batch shape `B` and the component's event shape.
///
/// `log_prob` is a log-sum-exp over the component dim that stays finite-safe when every
/// component gives `-inf`; mean and variance follow the law of total variance.
///
/// ```
/// use ppl_runtime::dist::{Categorical, Distribution, DistributionExt, MixtureSameFamily, Normal};
/// use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// let mix = Categorical::new(&Tensor::new(&[0.5f32, 0.5], &dev)?)?;
/// let comp = Normal::new(&Tensor::new(&[-1f32, 1.0], &dev)?, 1.0)?.into_ref();
/// let m = MixtureSameFamily::new(mix, comp)?;
/// assert_eq!(m.mean()?.to_scalar::<f32>()?, 0.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MixtureSameFamily {
    mixing: Categorical,
    component: DistRef,
    batch_shape: Vec<usize>,
}

/// `log(sum(exp(x)))` over the last dim, safe for rows whose max is not finite: such rows give
/// their max (`-inf` for all `-inf` rows, not NaN) and pass no gradient, so they cannot poison
/// the gradient of other rows. The max is detached.
pub(crate) fn safe_log_sum_exp_last(x: &Tensor) -> Result<Tensor> {
    let m_raw = x.max_keepdim(D::Minus1)?.detach();
    let finite = m_raw.abs()?.lt(f64::INFINITY)?;
    let m = finite.where_cond(&m_raw, &m_raw.zeros_like()?)?;
    let s = x.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?;
    // log(0) would send 0 * inf = NaN back through dead rows: log 1 there instead, and select.
    let s = finite.where_cond(&s, &s.ones_like()?)?;
    let out = finite.where_cond(&(s.log()? + &m)?, &m_raw)?;
    Ok(out.squeeze(D::Minus1)?)
}

impl MixtureSameFamily {
    /// The mixture of `component` (batch shape `B ++ [K]`) with weights from `mixing` (over `K`).
    pub fn new(mixing: Categorical, component: DistRef) -> Result<Self> {
        let cb = component.batch_shape();
        let k = mixing.num_categories();
        if cb.last() != Some(&k) {
            return Err(Error::ShapeMismatch {
                context: "`MixtureSameFamily`: the rightmost batch dim of `component` must be the number of mixture components".into(),
                expected: format!("[..., {k}]"),
                got: format!("{cb:?}"),
                hint: Some("move the component dim to the right of the batch shape, before any event dims".into()),
            });
        }
        if mixing.dtype() != component.dtype() {
            return Err(Error::DTypeMismatch {
                context: "`MixtureSameFamily`".into(),
                a: "mixing".into(),
                a_dtype: mixing.dtype(),
                b: "component".into(),
                b_dtype: component.dtype(),
            });
        }
        let cb = &cb[..cb.len() - 1];
        let batch_shape = args::broadcast_shapes(mixing.batch_shape(), cb).ok_or_else(|| Error::ShapeMismatch {
            context:
                "`MixtureSameFamily`: batch shapes of `mixing` and `component` (less its last dim) do not broadcast"
                    .into(),
            expected: format!("{cb:?}"),
            got: format!("{:?}", mixing.batch_shape()),
            hint: None,
        })?;
        let mixing =
            if mixing.batch_shape() == batch_shape.as_slice() { mixing } else { mixing.expand_to(&batch_shape)? };
        let full = args::concat_shapes(&batch_shape, &[k]);
        let component = if component.batch_shape() == full.as_slice() { component } else { component.expand(&full)? };
        Ok(MixtureSameFamily { mixing, component, batch_shape })
    }

    /// The mixing distribution over components.
    pub fn mixture_distribution(&self) -> &Categorical {
        &self.mixing
    }

    /// The batched component distribution.
    pub fn component_distribution(&self) -> &DistRef {
        &self.component
    }

    /// Mixing probabilities shaped `batch_shape ++ [K] ++ [1; event_rank]`, to weight component moments.
    fn weights(&self) -> Result<Tensor> {
        let mut p = self.mixing.probs().clone();
        for _ in 0..self.event_shape().len() {
            p = p.unsqueeze(D::Minus1)?;
        }
        Ok(p)
    }
}

impl Distribution for MixtureSameFamily {
    fn name(&self) -> &'static str {
        "MixtureSameFamily"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        self.component.event_shape()
    }
    fn dtype(&self) -> DType {
        self.component.dtype()
    }
    fn device(&self) -> &Device {
        self.component.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let idx = self.mixing.sample_indices(rng, sample_shape)?; // S ++ B
        let x = self.component.sample(rng, sample_shape)?; // S ++ B ++ [K] ++ E
        let ev = self.event_shape().to_vec();
        let d = idx.rank();
        let mut ishape = args::concat_shapes(idx.dims(), &[1]);
        ishape.extend(std::iter::repeat_n(1, ev.len()));
        let target = args::concat_shapes(&args::concat_shapes(idx.dims(), &[1]), &ev);
        let idx = idx.reshape(ishape)?.broadcast_as(target)?.contiguous()?;
        Ok(x.contiguous()?.gather(&idx, d)?.squeeze(d)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        let ev = self.event_shape().len();
        args::check_value_shape(self.name(), value, &self.batch_shape, self.event_shape(), value.dtype())?;
        // Insert the component dim just left of the event dims, then mix in log space.
        let x = value.unsqueeze(value.rank() - ev)?;
        let lp = self.component.log_prob(&x)?; // S ++ B ++ [K]
        safe_log_sum_exp_last(&lp.broadcast_add(self.mixing.logits())?)
    }
    fn support(&self) -> Constraint {
        self.component.support()
    }
    fn mean(&self) -> Result<Tensor> {
        let w = self.weights()?;
        Ok(self.component.mean()?.broadcast_mul(&w)?.sum(self.batch_shape.len())?)
    }
    fn variance(&self) -> Result<Tensor> {
        // Var = E[Var | k] + Var[E | k]
        let w = self.weights()?;
        let d = self.batch_shape.len();
        let (m_k, v_k) = (self.component.mean()?, self.component.variance()?);
        let m = m_k.broadcast_mul(&w)?.sum_keepdim(d)?;
        let within = v_k.broadcast_mul(&w)?.sum(d)?;
        let between = m_k.broadcast_sub(&m)?.sqr()?.broadcast_mul(&w)?.sum(d)?;
        Ok((within + between)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let k = self.mixing.num_categories();
        let mixing = self.mixing.expand_to(batch_shape)?;
        let component = self.component.expand(&args::concat_shapes(batch_shape, &[k]))?;
        Ok(Arc::new(MixtureSameFamily::new(mixing, component)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
