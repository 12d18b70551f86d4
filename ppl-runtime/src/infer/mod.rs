//! Inference algorithms, built only from handlers: stochastic variational inference (ELBOs,
//! [`Svi`](svi::Svi)), MCMC (HMC/NUTS over a flat unconstrained potential), predictive
//! sampling, importance sampling, diagnostics and initialisation strategies.

pub mod autoguide;
pub mod checks;
pub mod diagnostics;
pub mod discrete;
pub mod elbo;
pub mod enum_;
pub mod importance;
pub mod init;
pub mod mcmc;
pub mod potential;
pub mod predictive;
pub mod program;
pub mod render;
pub mod svi;

pub use autoguide::*;
pub use diagnostics::*;
pub use discrete::*;
pub use elbo::*;
pub use enum_::{ConfigEnumerate, ConfigEnumerateMarker, config_enumerate, config_enumerate_with};
pub use importance::*;
pub use init::*;
pub use mcmc::*;
pub use potential::*;
pub use predictive::*;
pub use program::*;
pub use render::*;
pub use svi::*;
