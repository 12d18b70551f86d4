//! Evidence lower bounds: the losses [`Svi`](super::Svi) minimises.
//!
//! Every ELBO is built only from handlers, as Pyro's: trace the guide, replay the model against
//! that trace, and compare the two traces' log-densities. Each returns an [`ElboEstimate`]: the
//! loss (`-ELBO`) and a *surrogate* whose gradient is an unbiased estimate of the loss's gradient
//! (pathwise through reparameterized sites, score-function terms for the others).
//!
//! - [`TraceElbo`]: the standard Monte Carlo ELBO, with baselines for score-function sites;
//! - [`TraceGraphElbo`]: the same loss, each score-function term Rao-Blackwellized to its downstream costs;
//! - [`TraceMeanFieldElbo`]: analytic KL divergences where the KL registry knows the pair;
//! - [`RenyiElbo`]: the Rényi α-divergence bound.
//!
//! Particles run one after the other, or all at once in an outer plate (`vectorize_particles`):
//! every site then gains a leading particle dim left of the model's plates.

pub(crate) mod baseline;
mod mean_field;
pub(crate) mod particles;
mod renyi;
mod trace_elbo;
mod trace_graph;
mod trace_enum;

pub use baseline::{Baseline, BaselineNet};
pub use mean_field::TraceMeanFieldElbo;
pub use renyi::RenyiElbo;
pub use trace_elbo::TraceElbo;
pub use trace_graph::TraceGraphElbo;
pub use trace_enum::TraceEnumElbo;

use crate::error::Result;
use crate::trace::Trace;
use candle_core::Tensor;

/// A model or guide with its arguments already bound, as an ELBO runs it.
pub type Bound<'a> = &'a dyn Fn() -> Result<()>;

/// One stochastic estimate of an ELBO.
#[derive(Debug)]
pub struct ElboEstimate {
    /// The loss: minus the ELBO estimate, averaged over particles.
    pub loss: f64,
    /// A scalar tensor whose gradient with respect to the parameters is an unbiased estimate of
    /// the gradient of the loss (it need not equal the loss).
    pub surrogate: Tensor,
    /// The model trace of the last particle pass (replayed against `guide_trace`).
    pub model_trace: Trace,
    /// The guide trace of the last particle pass.
    pub guide_trace: Trace,
}

/// A variational objective: estimates the loss and a differentiable surrogate from one run of
/// the guide and the model replayed against it (per particle).
///
/// The caller installs the parameter store and the random seed; an ELBO only runs `model` and
/// `guide` under handlers.
pub trait Elbo {
    /// One estimate of the loss and its surrogate.
    fn estimate(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate>;
}

impl<E: Elbo + ?Sized> Elbo for Box<E> {
    fn estimate(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
        (**self).estimate(model, guide)
    }
}
