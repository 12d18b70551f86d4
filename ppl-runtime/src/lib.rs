//! ppl-runtime: effect handlers, traces, parameters, distributions and inference on Candle.
pub mod defaults;
pub mod dist;
pub mod error;
pub mod rng;

pub use error::{Error, Location, Result};
