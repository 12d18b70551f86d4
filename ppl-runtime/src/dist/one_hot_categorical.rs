//! The one-hot categorical distribution: a [`Categorical`] whose values are one-hot vectors.

use crate::dist::args::{self, Arg};
use crate::dist::categorical::Categorical;
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{D, DType, Device, Tensor};
use std::sync::Arc;

/// One-hot categorical distribution: values are float one-hot vectors of length `K` (the last
/// dim of `probs`/`logits`), so `event_shape = [K]` and `batch_shape = probs.dims()[..-1]`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, OneHotCategorical};
/// use candle_core::{Device, Tensor};
/// let d = OneHotCategorical::new(&Tensor::new(&[0.25f32, 0.75], &Device::Cpu)?)?;
/// let lp = d.log_prob(&Tensor::new(&[0f32, 1.0], &Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - 0.75f32.ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OneHotCategorical {
    cat: Categorical,
    event_shape: [usize; 1],
}

impl OneHotCategorical {
    /// One-hot categorical with event probabilities `probs` (each row on the simplex).
    pub fn new(probs: impl Into<Arg>) -> Result<Self> {
        Ok(Self::wrap(Categorical::new_named("OneHotCategorical", probs.into())?))
    }

    /// One-hot categorical with unnormalized log-probabilities `logits`.
    pub fn from_logits(logits: impl Into<Arg>) -> Result<Self> {
        Ok(Self::wrap(Categorical::from_logits_named("OneHotCategorical", logits.into())?))
    }

    fn wrap(cat: Categorical) -> Self {
        let k = cat.num_categories();
        OneHotCategorical { cat, event_shape: [k] }
    }

    /// The underlying categorical over indices.
    pub fn categorical(&self) -> &Categorical {
        &self.cat
    }

    /// The probabilities, `batch_shape ++ [K]`.
    pub fn probs(&self) -> &Tensor {
        self.cat.probs()
    }

    /// The normalized log-probabilities, `batch_shape ++ [K]`.
    pub fn logits(&self) -> &Tensor {
        self.cat.logits()
    }

    fn one_hot(&self, idx: &Tensor) -> Result<Tensor> {
        let k = self.event_shape[0];
        let eye = Tensor::eye(k, self.dtype(), self.device())?;
        let shape = args::concat_shapes(idx.dims(), &[k]);
        Ok(eye.index_select(&idx.flatten_all()?, 0)?.reshape(shape)?)
    }
}

impl Distribution for OneHotCategorical {
    fn name(&self) -> &'static str {
        "OneHotCategorical"
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
        let idx = self.cat.sample_indices(rng, sample_shape)?;
        self.one_hot(&idx)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape(self.name(), value, self.batch_shape(), &self.event_shape, self.dtype())?;
        args::validate_value(self.name(), value, &Constraint::OneHot)?;
        // The hot position, rather than sum(value * logits), which is NaN at -inf logits.
        let idx = value.argmax_keepdim(D::Minus1)?.squeeze(D::Minus1)?;
        self.cat.log_prob_indices(&idx)
    }
    fn support(&self) -> Constraint {
        Constraint::OneHot
    }
    fn has_enumerate_support(&self) -> bool {
        true
    }
    fn enumerate_support(&self, expand: bool) -> Result<Tensor> {
        let k = self.event_shape[0];
        let rank = self.batch_shape().len();
        let mut shape = vec![k];
        shape.extend(std::iter::repeat_n(1, rank));
        shape.push(k);
        let v = Tensor::eye(k, self.dtype(), self.device())?.reshape(shape)?;
        if expand {
            let full = args::concat_shapes(&args::concat_shapes(&[k], self.batch_shape()), &[k]);
            Ok(v.broadcast_as(full)?.contiguous()?)
        } else {
            Ok(v)
        }
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.cat.probs().clone())
    }
    fn variance(&self) -> Result<Tensor> {
        let p = self.cat.probs();
        Ok((p * p.affine(-1.0, 1.0)?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        self.cat.entropy()
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Self::wrap(self.cat.expand_to(batch_shape)?)))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
