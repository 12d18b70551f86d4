//! MCMC: NUTS (on nuts-rs, the sampler inside nutpie) and HMC over a model's [potential],
//! the [`Mcmc`] runner (parallel chains, progress bars, thinning) and its output
//! ([`McmcSamples`]: samples per site, extra fields, summary, CmdStan CSV).
//!
//! ```
//! use ppl_runtime::{dist::Normal, infer::{ChainMethod, Mcmc, McmcConfig, Nuts}};
//! use candle_core::{Device, Tensor};
//! let model = |y: &Tensor| -> ppl_runtime::Result<()> {
//!     let mu = ppl_runtime::sample("mu", Normal::new(0.0, 10.0)?)?;
//!     ppl_runtime::plate("data", y.dim(0)?, |_| ppl_runtime::observe("y", Normal::new(&mu, 1.0)?, y).map(|_| ()))
//! };
//! let y = Tensor::new(&[0.9f32, 1.1, 1.0, 1.2], &Device::Cpu)?;
//! let cfg = McmcConfig { num_warmup: 200, num_samples: 200, num_chains: 2, progress_bar: false, ..Default::default() };
//! let samples = Mcmc::new(Nuts::new(model), cfg).run(&y)?;
//! assert_eq!(samples.get("mu").unwrap().dims(), &[2, 200]);
//! let mean = samples.get("mu").unwrap().mean_all()?.to_scalar::<f64>()?;
//! assert!((mean - 1.05).abs() < 0.3);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```
//!
//! [potential]: crate::infer::potential

mod chain;
mod config;
mod hmc;
mod nuts;
mod runner;
mod samples;

pub use chain::{ChainDraws, ChainProgress, DrawStats};
pub use config::{ChainMethod, MassMatrix, McmcConfig};
pub use hmc::{Hmc, HmcConfig};
pub use nuts::{Nuts, NutsConfig};
pub use runner::{Kernel, Mcmc};
pub use samples::{McmcSamples, Summary, SummaryRow};
