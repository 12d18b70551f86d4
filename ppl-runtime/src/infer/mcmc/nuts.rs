//! The No-U-Turn sampler on nuts-rs (the sampler inside nutpie): ppl supplies the potential as
//! a `CpuLogpFunc`, nuts-rs runs the trajectories and the warmup adaptation.
//!
//! nuts-rs adapts differently from Stan's windowed scheme: the step size by dual averaging
//! towards `target_accept_prob`, the mass matrix from exponentially weighted running variances
//! of the draws *and their gradients* (nutpie's scheme), updated at every draw with short early
//! windows that grow, the last 15% of warmup adapting only the step size.
//!
//! References: Hoffman & Gelman (2014), *The No-U-Turn Sampler*, JMLR 15; Betancourt (2017),
//! *A Conceptual Introduction to Hamiltonian Monte Carlo*, arXiv:1701.02434; Seyboldt et al.,
//! nutpie (<https://github.com/pymc-devs/nutpie>).

use crate::error::{Error, Result};
use crate::infer::init::{InitStrategy, initial_position};
use crate::infer::mcmc::chain::{ChainDraws, ChainProgress, DrawStats, Recorder};
use crate::infer::mcmc::config::{MassMatrix, McmcConfig};
use crate::infer::mcmc::runner::{Kernel, chain_rng, chain_setting, model_layout};
use crate::infer::potential::{Layout, ModelPotential, Potential, is_recoverable};
use crate::infer::program::Program;
use nuts_rs::{Chain, CpuLogpFunc, CpuMath, CpuMathError, DiagNutsSettings, HasDims, LowRankNutsSettings, Settings};
use std::collections::HashMap;
use std::marker::PhantomData;

/// Settings of the NUTS kernel (Stan's defaults).
#[derive(Clone, Debug)]
pub struct NutsConfig {
    /// Maximum tree depth: at most `2^max_tree_depth - 1` leapfrog steps per draw. Default: 10.
    pub max_tree_depth: u64,
    /// Target mean acceptance probability of step-size adaptation. Default: 0.8.
    pub target_accept_prob: f64,
    /// Diagonal (default), dense or low-rank mass matrix.
    pub mass_matrix: MassMatrix,
    /// Where chains start. Default: [`init_to_uniform`](crate::infer::init_to_uniform)`(2.0)`.
    pub init_strategy: InitStrategy,
    /// An energy error above this counts as a divergence. Default: 1000 (Stan's).
    pub max_energy_error: f64,
}

impl Default for NutsConfig {
    fn default() -> Self {
        NutsConfig {
            max_tree_depth: 10,
            target_accept_prob: 0.8,
            mass_matrix: MassMatrix::Diagonal,
            init_strategy: InitStrategy::default(),
            max_energy_error: 1000.0,
        }
    }
}

/// The No-U-Turn sampler over a model's potential (multinomial NUTS with adapted step size and
/// mass matrix, from nuts-rs). Run it with [`Mcmc`](crate::infer::Mcmc).
pub struct Nuts<P, M = ()> {
    model: P,
    config: NutsConfig,
    _marker: PhantomData<fn() -> M>,
}

impl<P, M> Nuts<P, M> {
    /// NUTS over `model` with the default [`NutsConfig`].
    pub fn new(model: P) -> Self {
        Self::with_config(model, NutsConfig::default())
    }

    /// NUTS over `model` with `config`.
    pub fn with_config(model: P, config: NutsConfig) -> Self {
        Nuts { model, config, _marker: PhantomData }
    }

    /// The settings.
    pub fn config(&self) -> &NutsConfig {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &P {
        &self.model
    }
}

/// A potential error carried through nuts-rs: recoverable ones become divergences.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct PotentialError(Error);

impl nuts_rs::LogpError for PotentialError {
    fn is_recoverable(&self) -> bool {
        is_recoverable(&self.0)
    }
}

/// A [`Potential`] as nuts-rs's `CpuLogpFunc`.
struct LogpAdapter<'p, T: Potential> {
    potential: &'p mut T,
}

impl<T: Potential> HasDims for LogpAdapter<'_, T> {
    fn dim_sizes(&self) -> HashMap<String, u64> {
        HashMap::from([("unconstrained_parameter".to_string(), self.potential.dim() as u64)])
    }
}

impl<T: Potential> CpuLogpFunc for LogpAdapter<'_, T> {
    type LogpError = PotentialError;
    type FlowParameters = ();
    type ExpandedVector = ();

    fn dim(&self) -> usize {
        self.potential.dim()
    }

    fn logp(&mut self, position: &[f64], gradient: &mut [f64]) -> std::result::Result<f64, PotentialError> {
        self.potential.log_density(position, gradient).map_err(PotentialError)
    }

    fn expand_vector<R: nuts_rs::rand::Rng + ?Sized>(
        &mut self,
        _rng: &mut R,
        _array: &[f64],
    ) -> std::result::Result<(), CpuMathError> {
        Ok(())
    }
}

/// The ppl error inside a nuts-rs error (an `anyhow::Error`), or the nuts-rs error as text.
fn from_nuts(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Error {
    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
    match e.downcast::<nuts_rs::NutsError>() {
        Ok(n) => match *n {
            nuts_rs::NutsError::LogpFailure(inner) | nuts_rs::NutsError::BadInitGrad(inner) => {
                match inner.downcast::<PotentialError>() {
                    Ok(p) => p.0,
                    Err(other) => Error::invalid_arg("NUTS", "sampler", other.to_string()),
                }
            }
            other => Error::invalid_arg("NUTS", "sampler", other.to_string()),
        },
        Err(e) => Error::invalid_arg("NUTS", "sampler", e.to_string()),
    }
}

/// nuts-rs settings of type `$ty` (diagonal or low-rank; their adaptation types differ, so a
/// generic function cannot set both) from ppl's configs.
macro_rules! nuts_settings {
    ($ty:ty, $cfg:expr, $c:expr) => {{
        let mut s = <$ty>::default();
        s.num_tune = $cfg.num_warmup as u64;
        s.num_draws = $cfg.num_samples as u64;
        s.num_chains = 1;
        s.seed = $cfg.seed;
        s.maxdepth = $c.max_tree_depth;
        s.max_energy_error = $c.max_energy_error;
        s.store_divergences = false;
        s.adapt_options.step_size_settings.target_accept = $c.target_accept_prob;
        s
    }};
}

/// Runs one nuts-rs chain with `settings` from `init`, recording every draw.
macro_rules! drive_chain {
    ($settings:expr, $adapter:expr, $rng:expr, $init:expr, $cfg:expr, $recorder:expr) => {{
        let total = $cfg.num_warmup + $cfg.num_samples;
        let mut chain = $settings.new_chain(0, CpuMath::new($adapter), $rng).map_err(from_nuts)?;
        chain.set_position($init).map_err(from_nuts)?;
        for i in 0..total {
            let (position, _, stats, progress) = chain.expanded_draw().map_err(from_nuts)?;
            let draw = DrawStats {
                diverging: progress.diverging,
                tree_depth: stats.depth,
                max_depth_reached: stats.maxdepth_reached,
                num_steps: stats.adapt.step_size.n_steps,
                accept_prob: stats.adapt.step_size.mean_tree_accept,
                step_size: progress.step_size,
                energy: stats.point.energy,
                lp: stats.point.logp,
            };
            $recorder.record(i, &position, draw);
        }
        $recorder.out.step_size = $recorder.out.stats.last().map(|s| s.step_size).unwrap_or(f64::NAN);
    }};
}

impl<A, M, P> Kernel<A> for Nuts<P, M>
where
    A: ?Sized + Sync,
    P: Program<A, M> + Sync,
{
    fn name(&self) -> &'static str {
        "nuts"
    }

    fn max_tree_depth(&self) -> Option<u64> {
        Some(self.config.max_tree_depth)
    }

    fn layout(&self, args: &A) -> Result<Layout> {
        model_layout(&self.model, args)
    }

    #[allow(clippy::field_reassign_with_default)] // nuts-rs settings have no constructor
    fn run_chain(
        &self,
        args: &A,
        layout: &Layout,
        chain: usize,
        cfg: &McmcConfig,
        report: &mut dyn FnMut(ChainProgress),
    ) -> Result<ChainDraws> {
        let (dtype, device) = chain_setting();
        let mut pot = ModelPotential::with_layout(&self.model, args, layout.clone(), dtype, &device);
        let mut rng = chain_rng(cfg.seed, chain);
        let (init, _, _) = initial_position(
            &mut pot,
            layout,
            &self.model,
            args,
            &self.config.init_strategy,
            &mut rng,
            cfg.max_init_tries,
        )?;
        let mut recorder = Recorder::new(cfg, layout.dim(), report);
        let c = &self.config;
        match c.mass_matrix {
            MassMatrix::Diagonal => {
                let s = nuts_settings!(DiagNutsSettings, cfg, c);
                let adapter = LogpAdapter { potential: &mut pot };
                drive_chain!(s, adapter, rng.inner(), &init, cfg, recorder);
            }
            MassMatrix::Dense | MassMatrix::LowRank => {
                let mut s = nuts_settings!(LowRankNutsSettings, cfg, c);
                if c.mass_matrix == MassMatrix::Dense {
                    s.adapt_options.mass_matrix_options.eigval_cutoff = 1.0;
                }
                let adapter = LogpAdapter { potential: &mut pot };
                drive_chain!(s, adapter, rng.inner(), &init, cfg, recorder);
            }
        }
        let mut out = recorder.out;
        out.num_gradients = pot.num_evaluations();
        Ok(out)
    }
}
