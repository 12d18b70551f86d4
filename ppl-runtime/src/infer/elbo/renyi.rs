//! `RenyiElbo`: the Rényi α-divergence variational bound.

use super::baseline::Baselines;
use super::particles::{Axis, Particles, elbo_per_particle, needs_score, per_particle, scalar};
use super::{Bound, Elbo, ElboEstimate};
use crate::error::{Error, Result};
use candle_core::{D, Tensor};

/// The variational Rényi bound (Li & Turner, 2016; Pyro's `RenyiELBO`):
/// `1/(1−α) · log( 1/K · Σ_k exp((1−α)·(log p(x, z_k) − log q(z_k))) )` over `K` particles.
///
/// `α = 0` with many particles gives the importance-weighted bound (IWAE), tighter than the ELBO;
/// as `α → 1` it tends to the ELBO (use [`TraceElbo`](super::TraceElbo) for `α = 1`). Gradients
/// are pathwise for reparameterized sites; other latent guide sites add the score-function term
/// `(bound − baseline) · Σ_k log q(z_k)` (with Pyro's default decaying-average baseline).
///
/// ```
/// use ppl_runtime::infer::RenyiElbo;
/// let iwae = RenyiElbo::new(0.0).num_particles(8).vectorize_particles(true);
/// # let _ = iwae;
/// ```
#[derive(Clone, Debug)]
pub struct RenyiElbo {
    alpha: f64,
    particles: Particles,
    baselines: Baselines,
}

impl RenyiElbo {
    /// The bound of order `alpha` (must not be 1) with 2 particles.
    pub fn new(alpha: f64) -> Self {
        RenyiElbo { alpha, particles: Particles { num: 2, ..Default::default() }, baselines: Baselines::default() }
    }

    /// Draws `n` particles per step (default 2).
    pub fn num_particles(mut self, n: usize) -> Self {
        self.particles.num = n;
        self
    }

    /// Runs all particles in one pass in an outer plate (default false).
    pub fn vectorize_particles(mut self, on: bool) -> Self {
        self.particles.vectorize = on;
        self
    }
}

impl Elbo for RenyiElbo {
    fn estimate(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
        if self.alpha == 1.0 || !self.alpha.is_finite() {
            return Err(Error::invalid_arg(
                "RenyiElbo",
                "alpha",
                format!("must be finite and differ from 1 (use `TraceElbo` for alpha = 1), got {}", self.alpha),
            ));
        }
        let mut elbos: Vec<Tensor> = Vec::new();
        let mut log_q: Option<Tensor> = None;
        let mut last = None;
        self.particles.run(model, guide, |pass| {
            let e = elbo_per_particle(&pass)?;
            elbos.push(if pass.axis == Axis::Single { e.reshape(1)? } else { e });
            for site in pass.guide.nodes().filter(|s| needs_score(s)) {
                if let Some(lq) = site.log_prob()? {
                    let t = per_particle(lq, pass.axis)?.sum_all()?;
                    log_q = Some(match log_q.take() {
                        None => t,
                        Some(a) => (a + t)?,
                    });
                }
            }
            last = Some(pass);
            Ok(())
        })?;
        let Some(pass) = last else { return Err(Error::invalid_arg("RenyiElbo", "num_particles", "must be at least 1")) };
        let e = Tensor::cat(&elbos, 0)?;
        let k = e.dim(0)? as f64;
        let a1 = 1.0 - self.alpha;
        let log_w = e.affine(a1, 0.0)?;
        // log-mean-exp with a detached maximum, so an extreme particle cannot overflow.
        let max = log_w.detach().max_keepdim(D::Minus1)?;
        let lme = ((log_w.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()? + max)? - k.ln())?;
        let bound = lme.affine(1.0 / a1, 0.0)?.squeeze(0)?;
        let weights = log_w.broadcast_sub(&lme)?.exp()?.detach();
        let mut surrogate = (weights * &e)?.sum_all()?.affine(1.0 / k, 0.0)?;
        let bound_value = scalar(&bound)?;
        if let Some(lq) = log_q {
            // Score-function term of the whole bound, with a decaying-average baseline.
            let cost = bound.detach();
            let score = self.baselines.term("__renyi_score", &lq, &cost, &pass.guide)?;
            surrogate = (surrogate + score)?;
        }
        if bound_value.is_finite() {
            self.baselines.commit();
        } else {
            self.baselines.discard();
        }
        Ok(ElboEstimate { loss: -bound_value, surrogate: surrogate.neg()?, model_trace: pass.model, guide_trace: pass.guide })
    }
}

