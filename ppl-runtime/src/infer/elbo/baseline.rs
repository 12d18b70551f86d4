//! Baselines: variance reduction for score-function gradient terms.

use super::particles::{Axis, needs_score, per_particle, scalar};
use crate::error::Result;
use crate::site::Site;
use crate::trace::Trace;
use candle_core::Tensor;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// A network baseline: predicts the cost from the guide trace.
pub type BaselineNet = Rc<dyn Fn(&Trace) -> Result<Tensor>>;

/// The baseline subtracted from the cost in a site's score-function term
/// `log q(z) * (cost - baseline)`; it lowers the variance of the gradient without biasing it.
#[derive(Clone)]
pub enum Baseline {
    /// No baseline.
    None,
    /// A decaying running average of the cost, `b ← beta·b + (1 − beta)·cost`, updated after each
    /// step (the value used by a step never depends on that step's draws). Pyro's `baseline_beta`.
    Average {
        /// The decay; Pyro's default is 0.90.
        beta: f64,
    },
    /// A user network predicting the cost from the guide trace (a scalar, or one value per
    /// vectorized particle). It runs inside the parameter store's scope, so parameters it reads
    /// with `param` are trained with the rest: `(baseline − cost)²` is added to the loss.
    Network(BaselineNet),
}

impl Baseline {
    /// A network baseline from a closure over the guide trace.
    pub fn network(f: impl Fn(&Trace) -> Result<Tensor> + 'static) -> Baseline {
        Baseline::Network(Rc::new(f))
    }
}

impl Default for Baseline {
    /// A decaying average with `beta = 0.9`.
    fn default() -> Self {
        Baseline::Average { beta: 0.9 }
    }
}

impl fmt::Debug for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Baseline::None => f.write_str("None"),
            Baseline::Average { beta } => write!(f, "Average {{ beta: {beta} }}"),
            Baseline::Network(_) => f.write_str("Network(..)"),
        }
    }
}

/// `log q(z)` as a score function wants it: neither scaled by subsampling nor masked. The value
/// was drawn from the whole unmasked distribution, so the score is that density's; the costs it
/// multiplies carry the scale and the mask (scaling the score too would count the subsampling
/// scale twice).
pub(crate) fn score_log_prob(z: &Site) -> Result<Tensor> {
    if z.mask.is_none()
        && let Some(lq) = z.log_prob_unscaled()?
    {
        return Ok(lq.clone());
    }
    z.dist()?.log_prob(z.value()?)
}

/// Per-site baselines and the running averages they keep.
#[derive(Clone, Debug, Default)]
pub(crate) struct Baselines {
    pub default: Baseline,
    pub per_site: HashMap<String, Baseline>,
    averages: HashMap<String, f64>,
    pending: Vec<(String, f64, f64)>,
}

impl Baselines {
    /// The score-function terms (summed over particles) of every guide site that needs one, with
    /// `cost` the detached per-particle value the site's gradient multiplies; `None` when no site
    /// needs one.
    pub fn score_terms(&mut self, guide: &Trace, axis: Axis, cost: &Tensor) -> Result<Option<Tensor>> {
        self.score_terms_where(guide, axis, cost, |_| true)
    }

    /// [`Baselines::score_terms`] of the sites that need one and that `keep` accepts.
    pub fn score_terms_where(
        &mut self,
        guide: &Trace,
        axis: Axis,
        cost: &Tensor,
        keep: impl Fn(&Site) -> bool,
    ) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for site in guide.nodes().filter(|s| needs_score(s) && keep(s)) {
            let lq = per_particle(&score_log_prob(site)?, axis)?;
            let term = self.term(&site.name, &lq, cost, guide).map_err(|e| e.at_site(&site.name, site.location()))?;
            total = Some(match total {
                None => term,
                Some(t) => (t + term)?,
            });
        }
        Ok(total)
    }

    /// The score-function term `Σ_particles lq · (cost − baseline)` of the site `name`, whose
    /// log-density per particle is `lq` (plus the network baseline's own loss).
    pub fn term(&mut self, name: &str, lq: &Tensor, cost: &Tensor, guide: &Trace) -> Result<Tensor> {
        let baseline = self.per_site.get(name).unwrap_or(&self.default).clone();
        Ok(match baseline {
            Baseline::None => lq.broadcast_mul(cost)?.sum_all()?,
            Baseline::Average { beta } => {
                let m = scalar(&cost.mean_all()?)?;
                let b = self.averages.get(name).copied().unwrap_or(0.0);
                self.pending.push((name.to_string(), beta, m));
                lq.broadcast_mul(&(cost - b)?)?.sum_all()?
            }
            Baseline::Network(net) => {
                let b = net(guide)?;
                let diff = cost.broadcast_sub(&b.to_dtype(cost.dtype())?)?;
                let score = lq.broadcast_mul(&diff.detach())?.sum_all()?;
                // Trains the network towards the cost; the cost carries no gradient.
                (score - diff.sqr()?.sum_all()?)?
            }
        })
    }

    /// Applies the running-average updates gathered since the last call (skipped when the cost
    /// was not finite, so a failed step leaves no trace).
    pub fn commit(&mut self) {
        for (name, beta, cost) in self.pending.drain(..) {
            if !cost.is_finite() {
                continue;
            }
            let b = self.averages.entry(name).or_insert(cost);
            *b = beta * *b + (1.0 - beta) * cost;
        }
    }

    /// Forgets gathered updates.
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}
