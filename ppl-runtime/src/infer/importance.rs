//! [`Importance`]: importance sampling with the guide (or the prior) as proposal.

use super::elbo::particles::scalar;
use super::program::Program;
use super::svi::{ErasedProgram, entropy_seed, erase, mix};
use crate::error::{Error, Result};
use crate::handlers::{Seed, replay, trace};
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::runtime::with_handler;
use crate::site::SiteKind;
use candle_core::Tensor;
use std::collections::HashMap;

/// Importance sampling (Pyro's `Importance`): draws latents from a proposal — a guide, or the
/// model's prior — and weights each draw by `log p(x, z) − log q(z)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::Normal, infer::Importance, primitives::{observe, sample}, Result};
/// // z ~ N(0, 1), y ~ N(z, 1): the evidence of y = 0.5 is N(0.5; 0, √2).
/// let model = |y: &Tensor| -> Result<()> {
///     let z = sample("z", Normal::new(0.0, 1.0)?)?;
///     observe("y", Normal::new(&z, 1.0)?, y).map(|_| ())
/// };
/// let y = Tensor::new(0.5f32, &Device::Cpu)?;
/// let post = Importance::prior(model, 4000).seed(0).run(&y)?;
/// let exact = -0.5 * (2.0 * std::f64::consts::PI * 2.0).ln() - 0.25 / 4.0;
/// assert!((post.log_evidence() - exact).abs() < 4.0 * post.log_evidence_se());
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub struct Importance<A: ?Sized> {
    model: Box<dyn ErasedProgram<A>>,
    guide: Option<Box<dyn ErasedProgram<A>>>,
    num_samples: usize,
    seed: u64,
    params: ParamStore,
}

/// Weighted samples from [`Importance::run`].
#[derive(Clone, Debug)]
pub struct ImportanceResult {
    /// The log-weight of each draw, `log p(x, z) − log q(z)`.
    pub log_weights: Vec<f64>,
    /// The latent sites of the model, each stacked along a leading dim (one row per draw).
    pub samples: HashMap<String, Tensor>,
}

impl<A: ?Sized> Importance<A> {
    /// The guide as proposal, with the parameters of `params` (e.g. `svi.params()`).
    pub fn new<M, MM, G, GM>(model: M, guide: G, params: &ParamStore, num_samples: usize) -> Self
    where
        M: Program<A, MM> + 'static,
        MM: 'static,
        G: Program<A, GM> + 'static,
        GM: 'static,
    {
        Importance { model: erase(model), guide: Some(erase(guide)), num_samples, seed: entropy_seed(), params: params.clone() }
    }

    /// The model's prior as proposal: the weights are the likelihoods.
    pub fn prior<M: Program<A, MM> + 'static, MM: 'static>(model: M, num_samples: usize) -> Self {
        Importance { model: erase(model), guide: None, num_samples, seed: entropy_seed(), params: ParamStore::new() }
    }

    /// Seeds the draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Draws `num_samples` weighted samples.
    pub fn run(&self, args: &A) -> Result<ImportanceResult> {
        if self.num_samples == 0 {
            return Err(Error::invalid_arg("Importance", "num_samples", "must be at least 1"));
        }
        let mut log_weights = Vec::with_capacity(self.num_samples);
        let mut rows: HashMap<String, Vec<Tensor>> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        for i in 0..self.num_samples {
            let rng = Rng::seed_from_u64(mix(self.seed ^ mix(i as u64)));
            let go = || -> Result<(f64, crate::trace::Trace)> {
                let run_model = || self.model.run_erased(args);
                match &self.guide {
                    Some(guide) => {
                        let ((), gtr) = trace(|| guide.run_erased(args))?;
                        let ((), mtr) = trace(|| replay(&gtr, run_model))?;
                        Ok((scalar(&(mtr.log_prob_sum()? - gtr.log_prob_sum()?)?)?, mtr))
                    }
                    None => {
                        let ((), mtr) = trace(run_model)?;
                        let lw = mtr.log_prob_sum_filtered(|s| s.is_observed || s.kind == SiteKind::Factor)?;
                        Ok((scalar(&lw)?, mtr))
                    }
                }
            };
            let (lw, mtr) = with_handler(Seed::from_rng(rng), || self.params.scope(go)).0?;
            if i == 0 {
                names = mtr.latent_sites().map(|s| s.name.clone()).collect();
            }
            for name in &names {
                let v = mtr.value(name)?.detach();
                rows.entry(name.clone()).or_default().push(v);
            }
            log_weights.push(lw);
        }
        let samples = rows
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), Tensor::stack(&v, 0).map_err(|e| Error::from(e).at_site(&k, None))?)))
            .collect::<Result<_>>()?;
        Ok(ImportanceResult { log_weights, samples })
    }
}

impl ImportanceResult {
    fn max(&self) -> f64 {
        self.log_weights.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// The weights normalized to sum to one.
    pub fn normalized_weights(&self) -> Vec<f64> {
        let m = self.max();
        let w: Vec<f64> = self.log_weights.iter().map(|l| (l - m).exp()).collect();
        let s: f64 = w.iter().sum();
        w.into_iter().map(|x| x / s).collect()
    }

    /// The effective sample size `1 / Σ w̄²` of the normalized weights.
    pub fn ess(&self) -> f64 {
        1.0 / self.normalized_weights().iter().map(|w| w * w).sum::<f64>()
    }

    /// The log-evidence estimate `log (1/N Σ exp(log w))`.
    pub fn log_evidence(&self) -> f64 {
        let m = self.max();
        let n = self.log_weights.len() as f64;
        m + (self.log_weights.iter().map(|l| (l - m).exp()).sum::<f64>() / n).ln()
    }

    /// The standard error of [`log_evidence`](Self::log_evidence) by the delta method:
    /// `sd(w) / (√N · mean(w))`.
    pub fn log_evidence_se(&self) -> f64 {
        let m = self.max();
        let w: Vec<f64> = self.log_weights.iter().map(|l| (l - m).exp()).collect();
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        var.sqrt() / (n.sqrt() * mean)
    }

    /// The weighted mean of a latent site over the draws.
    pub fn mean(&self, site: &str) -> Result<Tensor> {
        let s = self
            .samples
            .get(site)
            .ok_or_else(|| Error::invalid_arg("ImportanceResult::mean", "site", format!("no latent site `{site}`")))?;
        let w = self.normalized_weights();
        let mut shape = vec![w.len()];
        shape.extend(std::iter::repeat_n(1, s.rank() - 1));
        let w = Tensor::from_vec(w, shape, s.device())?.to_dtype(s.dtype())?;
        Ok(s.broadcast_mul(&w)?.sum(0)?)
    }
}
