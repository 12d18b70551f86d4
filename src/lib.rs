//! # ppl — deep universal probabilistic programming for Rust
//!
//! Models are ordinary Rust functions with `sample`, `param` and `plate` statements; effect
//! handlers (as Pyro's Poutine) let inference algorithms trace, replay, condition, scale and
//! enumerate them without touching them; Candle supplies tensors, autodiff and devices.
//!
//! This crate is the facade: it re-exports the runtime ([`ppl_runtime`]) and the macros
//! ([`ppl_macros`]), so users depend on `ppl` alone and write `use ppl::prelude::*;`.
//!
//! ```
//! use ppl::prelude::*;
//!
//! let data = Tensor::new(&[0.5f32, 1.5, 1.0], &Device::Cpu)?;
//! let model = || -> Result<()> {
//!     let mu = ppl::sample("mu", Normal::new(0.0, 10.0)?)?;
//!     ppl::plate("data", 3, |_| {
//!         ppl::observe("x", Normal::new(&mu, 1.0)?, &data)?;
//!         Ok(())
//!     })
//! };
//! let (_, tr) = handlers::seed(0, || handlers::trace(model))?;
//! println!("{}", tr.format_shapes());
//! # Ok::<(), ppl::Error>(())
//! ```

pub use ppl_macros::*;
pub use ppl_runtime::*;

pub mod datasets;

/// Re-exports of Candle, so users need not depend on it to build tensors.
pub use candle_core;
pub use candle_nn;

/// Everything a model or an inference script usually needs.
pub mod prelude {
    pub use crate::dist::{Constraint, DistRef, DistRefExt, Distribution, DistributionExt};
    pub use crate::dist::*;
    pub use crate::handlers;
    pub use crate::infer::*;
    pub use crate::optim::*;
    pub use crate::{Error, ParamOptions, ParamStore, PlateOptions, Result, SampleOptions, Trace};
    pub use candle_core::{D, DType, Device, Tensor, Var};
    #[allow(unused_imports)]
    pub use ppl_macros::*;
}

/// The README's examples, compiled and run as doc tests so that the README stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
