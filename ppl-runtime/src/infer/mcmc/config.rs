//! Settings of an MCMC run that every kernel shares.

use candle_core::DType;

/// How the chains of one run are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChainMethod {
    /// Every chain on its own thread at once (4 chains on 2 cores take about twice the wall time
    /// of one chain).
    #[default]
    Parallel,
    /// One chain after the other on the calling thread. Gives the same draws as `Parallel`.
    Sequential,
}

/// The shape of the mass matrix a kernel adapts during warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MassMatrix {
    /// A diagonal mass matrix (Stan's `diag_e`).
    #[default]
    Diagonal,
    /// A dense mass matrix (Stan's `dense_e`). NUTS realizes it as nuts-rs's low-rank metric with
    /// every eigenvalue kept.
    Dense,
    /// nuts-rs's diagonal plus low-rank correction (eigenvalues outside `[1/2, 2]` kept); NUTS only.
    LowRank,
}

/// Settings of [`Mcmc`](crate::infer::Mcmc), with Stan's defaults.
#[derive(Clone, Debug)]
pub struct McmcConfig {
    /// Warmup (adaptation) iterations per chain, discarded. Default: 1000.
    pub num_warmup: usize,
    /// Kept iterations per chain (before thinning). Default: 1000.
    pub num_samples: usize,
    /// Number of chains. Default: 4.
    pub num_chains: usize,
    /// Keep every `thinning`-th draw. Default: 1.
    pub thinning: usize,
    /// Seed of the whole run; chain `c` derives its own streams from it. Default: 0.
    pub seed: u64,
    /// Parallel (default) or sequential chains.
    pub chain_method: ChainMethod,
    /// Draw a progress bar per chain on stderr (hidden when stderr is not a terminal). Default: true.
    pub progress_bar: bool,
    /// Dtype the potential computes in; the model's float arguments and observed values are
    /// converted to it once. Default: `F64`.
    pub dtype: DType,
    /// Tries of the init strategy before giving up. Default: 100.
    pub max_init_tries: usize,
}

impl Default for McmcConfig {
    fn default() -> Self {
        McmcConfig {
            num_warmup: 1000,
            num_samples: 1000,
            num_chains: 4,
            thinning: 1,
            seed: 0,
            chain_method: ChainMethod::Parallel,
            progress_bar: true,
            dtype: DType::F64,
            max_init_tries: 100,
        }
    }
}
