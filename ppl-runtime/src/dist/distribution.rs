//! The [`Distribution`] trait every ppl distribution implements.

use crate::dist::constraints::Constraint;
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// A shared, type-erased distribution, as stored in traces and messages.
pub type DistRef = Arc<dyn Distribution>;

/// A probability distribution over tensors, in the conventions of `torch.distributions`.
///
/// Shapes: a value has shape `sample_shape ++ batch_shape ++ event_shape`; `log_prob` sums over
/// the event dims and returns a tensor of shape `sample_shape ++ batch_shape`.
///
/// Distributions are pure math: they know nothing of handlers or inference, and randomness is
/// passed in as an [`Rng`].
///
/// A distribution is a snapshot of its parameters: it may cache values derived from them (such
/// as log-normalizers) on first use. Build a new one after changing a parameter's `Var` in place
/// (`Var::set`, an optimizer step), as every run of a model does.
pub trait Distribution: Debug + Send + Sync + 'static {
    /// The distribution's name, e.g. `"Normal"`, used in error messages.
    fn name(&self) -> &'static str;

    /// Shape of the independent (batched) draws.
    fn batch_shape(&self) -> &[usize];

    /// Shape of one event (empty for scalar distributions).
    fn event_shape(&self) -> &[usize];

    /// Dtype of values and log-densities.
    fn dtype(&self) -> DType;

    /// Device of values and log-densities.
    fn device(&self) -> &Device;

    /// Draws a sample of shape `sample_shape ++ batch_shape ++ event_shape`, with no gradient.
    ///
    /// The default detaches [`Distribution::rsample`]; distributions that are not
    /// reparameterizable implement this method instead.
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        Ok(self.rsample(rng, sample_shape)?.detach())
    }

    /// Whether [`Distribution::rsample`] gives reparameterized (pathwise-differentiable) draws.
    fn has_rsample(&self) -> bool {
        false
    }

    /// Draws a reparameterized sample through which gradients flow to the parameters.
    fn rsample(&self, _rng: &mut Rng, _sample_shape: &[usize]) -> Result<Tensor> {
        Err(Error::Unsupported {
            dist: self.name(),
            method: "rsample",
            hint: Some("the distribution is not reparameterizable; use `sample` and a score-function estimator".into()),
        })
    }

    /// Log-density (or log-mass) of `value`, summed over event dims.
    fn log_prob(&self, value: &Tensor) -> Result<Tensor>;

    /// [`Distribution::log_prob`] further summed over its rightmost `event_dims` dims: what
    /// `Independent(self, event_dims)` returns. Distributions with a fused CPU kernel (Normal,
    /// Bernoulli, Categorical) override it to do both in one pass.
    fn log_prob_event(&self, value: &Tensor, event_dims: usize) -> Result<Tensor> {
        sum_rightmost(self.name(), self.log_prob(value)?, event_dims)
    }

    /// The support of the distribution.
    fn support(&self) -> Constraint;

    /// Whether [`Distribution::enumerate_support`] is available.
    fn has_enumerate_support(&self) -> bool {
        false
    }

    /// All values of a finite discrete support, along a new leftmost dim: shape
    /// `[n] ++ batch_shape ++ event_shape` when `expand`, else `[n] ++ [1; batch_rank] ++ event_shape`.
    fn enumerate_support(&self, _expand: bool) -> Result<Tensor> {
        Err(self.unsupported("enumerate_support"))
    }

    /// The mean.
    fn mean(&self) -> Result<Tensor> {
        Err(self.unsupported("mean"))
    }

    /// The variance.
    fn variance(&self) -> Result<Tensor> {
        Err(self.unsupported("variance"))
    }

    /// The differential (or Shannon) entropy, of shape `batch_shape`.
    fn entropy(&self) -> Result<Tensor> {
        Err(self.unsupported("entropy"))
    }

    /// The cumulative distribution function.
    fn cdf(&self, _value: &Tensor) -> Result<Tensor> {
        Err(self.unsupported("cdf"))
    }

    /// The inverse cumulative distribution function.
    fn icdf(&self, _value: &Tensor) -> Result<Tensor> {
        Err(self.unsupported("icdf"))
    }

    /// The same distribution with parameters broadcast to `batch_shape`.
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef>;

    /// `self` as `Any`, so that the KL registry can find the concrete type.
    fn as_any(&self) -> &dyn Any;

    /// Whether this distribution is discrete (its support is a set of integers or booleans).
    fn is_discrete(&self) -> bool {
        self.support().is_discrete()
    }

    /// Builds the [`Error::Unsupported`] for `method`.
    fn unsupported(&self, method: &'static str) -> Error {
        Error::Unsupported { dist: self.name(), method, hint: None }
    }
}

/// `t` with its rightmost `n` dims summed away; an error naming `dist` when `t` has fewer.
pub(crate) fn sum_rightmost(dist: &'static str, t: Tensor, n: usize) -> Result<Tensor> {
    if n > t.rank() {
        return Err(Error::invalid_arg(
            format!("`{dist}`.log_prob_event"),
            "event_dims",
            format!("is {n}, but the log-density has only {} dims (shape {:?})", t.rank(), t.dims()),
        ));
    }
    if n == 0 {
        return Ok(t);
    }
    let r = t.rank();
    Ok(t.sum((r - n..r).collect::<Vec<_>>())?)
}

/// Methods for every distribution that build wrapped distributions.
pub trait DistributionExt: Distribution + Sized {
    /// Reinterprets the rightmost `n` batch dims as event dims (Pyro's `.to_event(n)`).
    fn to_event(self, n: usize) -> Result<crate::dist::Independent> {
        crate::dist::Independent::new(Arc::new(self), n)
    }

    /// Masks `log_prob` by a boolean tensor broadcastable to the batch shape (Pyro's `.mask(m)`).
    fn mask(self, mask: &Tensor) -> Result<crate::dist::Masked> {
        crate::dist::Masked::new(Arc::new(self), mask)
    }

    /// Boxes the distribution into a shared [`DistRef`].
    fn into_ref(self) -> DistRef {
        Arc::new(self)
    }
}

impl<D: Distribution> DistributionExt for D {}

/// The same wrappers for an already shared distribution.
pub trait DistRefExt {
    /// See [`DistributionExt::to_event`].
    fn to_event(&self, n: usize) -> Result<crate::dist::Independent>;
    /// See [`DistributionExt::mask`].
    fn mask(&self, mask: &Tensor) -> Result<crate::dist::Masked>;
}

impl DistRefExt for DistRef {
    fn to_event(&self, n: usize) -> Result<crate::dist::Independent> {
        crate::dist::Independent::new(self.clone(), n)
    }
    fn mask(&self, mask: &Tensor) -> Result<crate::dist::Masked> {
        crate::dist::Masked::new(self.clone(), mask)
    }
}

/// Anything that can be used as a site's distribution: a concrete distribution or a [`DistRef`].
pub trait IntoDist {
    /// Converts into a shared distribution.
    fn into_dist(self) -> DistRef;
}

impl<D: Distribution> IntoDist for D {
    fn into_dist(self) -> DistRef {
        Arc::new(self)
    }
}

impl IntoDist for DistRef {
    fn into_dist(self) -> DistRef {
        self
    }
}

impl IntoDist for &DistRef {
    fn into_dist(self) -> DistRef {
        self.clone()
    }
}
