//! `TraceElbo`: the Monte Carlo ELBO with pathwise and score-function gradients.

use super::baseline::{Baseline, Baselines};
use super::particles::{Particles, Totals, elbo_per_particle};
use super::{Bound, Elbo, ElboEstimate};
use crate::error::Result;

/// The standard ELBO, `E_q[log p(x, z) − log q(z)]`, estimated from `num_particles` draws of the
/// guide (Pyro's `Trace_ELBO`).
///
/// Gradients flow pathwise through sites drawn with `rsample`; every other latent guide site
/// (discrete distributions, or a site with `InferConfig::reparameterize(false)`) adds a
/// score-function term `log q(z) · (ELBO − baseline)` with the ELBO detached. Baselines default
/// to a decaying average of the ELBO ([`Baseline::Average`] with `beta = 0.9`); set one per site
/// with [`TraceElbo::baseline`]. Plate scales and masks apply to every term through the sites'
/// log-densities.
///
/// ```
/// use ppl_runtime::infer::{Baseline, TraceElbo};
/// let elbo = TraceElbo::default().num_particles(16).vectorize_particles(true).baseline("z", Baseline::Average { beta: 0.95 });
/// # let _ = elbo;
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceElbo {
    pub(crate) particles: Particles,
    pub(crate) baselines: Baselines,
}

impl TraceElbo {
    /// Draws `n` particles per step (default 1).
    pub fn num_particles(mut self, n: usize) -> Self {
        self.particles.num = n;
        self
    }

    /// Runs all particles in one pass, in an outer plate left of the model's plates (default false).
    pub fn vectorize_particles(mut self, on: bool) -> Self {
        self.particles.vectorize = on;
        self
    }

    /// The number of nested plates of the model and guide, which places the particle plate; found
    /// by running both once when not given.
    pub fn max_plate_nesting(mut self, k: usize) -> Self {
        self.particles.max_plate_nesting = Some(k);
        self
    }

    /// The baseline of the score-function term of site `name`.
    pub fn baseline(mut self, name: impl Into<String>, baseline: Baseline) -> Self {
        self.baselines.per_site.insert(name.into(), baseline);
        self
    }

    /// The baseline of every score-function site without its own (default: `Average { beta: 0.9 }`).
    pub fn default_baseline(mut self, baseline: Baseline) -> Self {
        self.baselines.default = baseline;
        self
    }
}

impl Elbo for TraceElbo {
    fn estimate(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
        let mut totals = Totals::default();
        let baselines = &mut self.baselines;
        self.particles.run(model, guide, |pass| {
            let e = elbo_per_particle(&pass)?;
            let score = baselines.score_terms(&pass.guide, pass.axis, &e.detach())?;
            totals.add(&e, score, pass)
        })?;
        totals.finish(self.particles.num, &mut self.baselines, "TraceElbo")
    }
}
