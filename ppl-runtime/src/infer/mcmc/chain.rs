//! What one chain produces (draws and per-draw statistics), and the bookkeeping every kernel
//! shares: warmup, thinning, progress reports.

use crate::infer::mcmc::config::McmcConfig;

/// Statistics of one draw (Stan's `lp__`, `accept_stat__`, `stepsize__`, `treedepth__`,
/// `n_leapfrog__`, `divergent__`, `energy__`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DrawStats {
    /// Whether the trajectory diverged.
    pub diverging: bool,
    /// NUTS tree depth (0 for HMC).
    pub tree_depth: u64,
    /// Whether the tree hit `max_tree_depth`.
    pub max_depth_reached: bool,
    /// Leapfrog steps taken.
    pub num_steps: u64,
    /// Mean Metropolis acceptance probability over the trajectory.
    pub accept_prob: f64,
    /// Step size used.
    pub step_size: f64,
    /// Hamiltonian (potential + kinetic energy) of the draw.
    pub energy: f64,
    /// Log-density of the draw (unconstrained, with `log |det J|`).
    pub lp: f64,
}

/// The kept draws of one chain.
#[derive(Clone, Debug, Default)]
pub struct ChainDraws {
    /// Kept draws, unconstrained, row-major `[draws, dim]`.
    pub positions: Vec<f64>,
    /// Statistics of each kept draw.
    pub stats: Vec<DrawStats>,
    /// Divergences during warmup.
    pub warmup_divergences: usize,
    /// Gradient evaluations of the whole chain (initialization and warmup included).
    pub num_gradients: u64,
    /// Step size after adaptation.
    pub step_size: f64,
    /// The adapted inverse mass matrix when the kernel exposes it: the diagonal (`dim`
    /// numbers) or the dense matrix (`dim * dim`, row-major).
    pub inverse_mass_matrix: Option<Vec<f64>>,
}

/// A progress report of one chain.
#[derive(Clone, Copy, Debug)]
pub struct ChainProgress {
    /// Iterations done (warmup included).
    pub draw: usize,
    /// Whether the chain is still in warmup.
    pub tuning: bool,
    /// Current step size.
    pub step_size: f64,
    /// Mean acceptance probability so far.
    pub mean_accept: f64,
    /// Divergences so far (warmup included).
    pub divergences: usize,
}

/// Collects the draws of one chain: drops warmup, thins, reports progress.
pub(crate) struct Recorder<'a> {
    num_warmup: usize,
    thinning: usize,
    pub out: ChainDraws,
    accept_sum: f64,
    divergences: usize,
    report: &'a mut dyn FnMut(ChainProgress),
}

impl<'a> Recorder<'a> {
    pub fn new(cfg: &McmcConfig, dim: usize, report: &'a mut dyn FnMut(ChainProgress)) -> Self {
        let keep = cfg.num_samples.div_ceil(cfg.thinning.max(1));
        let out = ChainDraws {
            positions: Vec::with_capacity(keep * dim),
            stats: Vec::with_capacity(keep),
            ..Default::default()
        };
        Recorder {
            num_warmup: cfg.num_warmup,
            thinning: cfg.thinning.max(1),
            out,
            accept_sum: 0.0,
            divergences: 0,
            report,
        }
    }

    /// Records iteration `i` (warmup first).
    pub fn record(&mut self, i: usize, position: &[f64], stats: DrawStats) {
        let tuning = i < self.num_warmup;
        if stats.diverging {
            self.divergences += 1;
            if tuning {
                self.out.warmup_divergences += 1;
            }
        }
        self.accept_sum += stats.accept_prob;
        if !tuning && (i - self.num_warmup).is_multiple_of(self.thinning) {
            self.out.positions.extend_from_slice(position);
            self.out.stats.push(stats);
        }
        if i % 10 == 9 || i + 1 == self.num_warmup {
            (self.report)(ChainProgress {
                draw: i + 1,
                tuning,
                step_size: stats.step_size,
                mean_accept: self.accept_sum / (i + 1) as f64,
                divergences: self.divergences,
            });
        }
    }
}
