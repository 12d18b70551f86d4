//! The [`Mcmc`] runner: casts the model's arguments once, fixes the layout, runs the chains of a
//! kernel on parallel threads (or one after the other) with a progress bar each, and gathers
//! their draws into [`McmcSamples`].

use crate::defaults::{self, Defaults};
use crate::error::{Error, Result};
use crate::handlers::{seed, trace};
use crate::infer::InitStrategy;
use crate::infer::init::InitHandler;
use crate::infer::mcmc::chain::{ChainDraws, ChainProgress};
use crate::infer::mcmc::config::{ChainMethod, McmcConfig};
use crate::infer::mcmc::samples::McmcSamples;
use crate::infer::potential::{CastArgs, Layout, catch_panic};
use crate::infer::program::Program;
use crate::rng::Rng;
use crate::runtime::with_handler;
use candle_core::{DType, Device};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Instant;

/// A Markov kernel that [`Mcmc`] runs chain by chain ([`Nuts`](crate::infer::Nuts),
/// [`Hmc`](crate::infer::Hmc)). Chains run on their own threads, so kernels are `Sync`.
pub trait Kernel<A: ?Sized>: Sync {
    /// Short name, e.g. `"nuts"`.
    fn name(&self) -> &'static str;

    /// The tree-depth limit, for kernels that have one.
    fn max_tree_depth(&self) -> Option<u64> {
        None
    }

    /// The layout of the model's latent sites (from one traced run, on the calling thread).
    fn layout(&self, args: &A) -> Result<Layout>;

    /// Runs chain number `chain` (seeded from `cfg.seed` and `chain`) and returns its kept draws.
    /// `report` receives progress every few draws.
    fn run_chain(
        &self,
        args: &A,
        layout: &Layout,
        chain: usize,
        cfg: &McmcConfig,
        report: &mut dyn FnMut(ChainProgress),
    ) -> Result<ChainDraws>;
}

/// The layout of `model`: one run with every latent site at an unconstrained-zero value (no
/// random draws of the model's own, observed values converted to the thread's dtype).
pub(crate) fn model_layout<A: ?Sized, M, P: Program<A, M>>(model: &P, args: &A) -> Result<Layout> {
    let handler = InitHandler::new(InitStrategy::Feasible, Rng::seed_from_u64(0));
    let (_, tr) = catch_panic(|| seed(0, || with_handler(handler, || trace(|| model.run(args))).0))?;
    Layout::from_trace(&tr)
}

/// The generator of chain `chain` of a run seeded with `seed`.
pub(crate) fn chain_rng(seed: u64, chain: usize) -> Rng {
    Rng::seed_from_u64(seed ^ (chain as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The dtype and device the chain on this thread computes in (set by the runner).
pub(crate) fn chain_setting() -> (DType, Device) {
    let d = defaults::current();
    (d.dtype, d.device)
}

/// Runs a kernel's chains and gathers the draws (Pyro's `MCMC`).
///
/// `Mcmc::new(Nuts::new(model), McmcConfig::default()).run(&args)` takes the model's arguments
/// as `Svi` does. Chains run on parallel threads by default (`ChainMethod::Sequential` runs them
/// in turn, with identical draws), each seeded from `config.seed` and its index.
pub struct Mcmc<K> {
    kernel: K,
    config: McmcConfig,
}

impl<K> Mcmc<K> {
    /// A runner of `kernel` with `config`.
    pub fn new(kernel: K, config: McmcConfig) -> Self {
        Mcmc { kernel, config }
    }

    /// The settings.
    pub fn config(&self) -> &McmcConfig {
        &self.config
    }

    /// The kernel.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Casts the float tensors of `args` to `config.dtype` once (see
    /// [`CastArgs`]) and samples.
    pub fn run<A: CastArgs + Sync>(&self, args: &A) -> Result<McmcSamples>
    where
        K: Kernel<A>,
    {
        let cast = args.cast_args(self.config.dtype)?;
        self.run_uncast(&cast)
    }

    /// Samples with `args` as they are: tensors the model computes with must already have
    /// `config.dtype` (observed values are still converted).
    pub fn run_uncast<A: ?Sized + Sync>(&self, args: &A) -> Result<McmcSamples>
    where
        K: Kernel<A>,
    {
        let cfg = &self.config;
        if cfg.num_chains == 0 || cfg.num_samples == 0 || cfg.thinning == 0 {
            return Err(Error::invalid_arg(
                "Mcmc",
                "config",
                format!(
                    "`num_chains`, `num_samples` and `thinning` must be positive, got {}, {} and {}",
                    cfg.num_chains, cfg.num_samples, cfg.thinning
                ),
            ));
        }
        if !cfg.dtype.is_float() {
            return Err(Error::invalid_arg("Mcmc", "dtype", format!("expected a float dtype, got {:?}", cfg.dtype)));
        }
        let start = Instant::now();
        let chain_defaults = Defaults { dtype: cfg.dtype, ..defaults::current() };
        let layout = {
            let _d = defaults::set_defaults(chain_defaults.clone());
            self.kernel.layout(args)?
        };
        let multi = MultiProgress::with_draw_target(if cfg.progress_bar {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let total = (cfg.num_warmup + cfg.num_samples) as u64;
        let style = ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bars: Vec<ProgressBar> = (0..cfg.num_chains)
            .map(|c| {
                let b = multi.add(ProgressBar::new(total));
                b.set_style(style.clone());
                b.set_prefix(format!("chain {}", c + 1));
                b
            })
            .collect();
        let run_one = |c: usize| -> Result<ChainDraws> {
            let _d = defaults::set_defaults(chain_defaults.clone());
            let bar = &bars[c];
            let mut report = |p: ChainProgress| {
                bar.set_position(p.draw as u64);
                bar.set_message(format!(
                    "{} step {:.3} acc {:.2} div {}",
                    if p.tuning { "warmup" } else { "sample" },
                    p.step_size,
                    p.mean_accept,
                    p.divergences
                ));
            };
            let out = self.kernel.run_chain(args, &layout, c, cfg, &mut report);
            bar.finish();
            out
        };
        let results: Vec<Result<ChainDraws>> = match cfg.chain_method {
            ChainMethod::Sequential => (0..cfg.num_chains).map(run_one).collect(),
            ChainMethod::Parallel => std::thread::scope(|s| {
                let handles: Vec<_> = (0..cfg.num_chains).map(|c| s.spawn(move || run_one(c))).collect();
                handles
                    .into_iter()
                    .enumerate()
                    .map(|(c, h)| {
                        h.join().unwrap_or_else(|panic| {
                            let msg = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            Err(Error::invalid_arg("Mcmc", "chain", format!("chain {} panicked: {msg}", c + 1)))
                        })
                    })
                    .collect()
            }),
        };
        let chains = results.into_iter().collect::<Result<Vec<_>>>()?;
        McmcSamples::new(
            layout,
            chains,
            cfg,
            self.kernel.name(),
            self.kernel.max_tree_depth(),
            &chain_defaults.device,
            start.elapsed(),
        )
    }
}
