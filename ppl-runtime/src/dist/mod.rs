//! Distributions, constraints, transforms and special functions: pure math on Candle tensors.
//!
//! Nothing here knows about handlers or inference; randomness is passed in as an
//! [`Rng`](crate::rng::Rng). Conventions follow `torch.distributions`.

pub mod args;
pub mod constraints;
pub mod linalg;
mod distribution;
pub mod special;
pub mod transforms;

mod bernoulli;
mod independent;
mod masked;
mod normal;
mod unit;

pub use args::Arg;
pub use bernoulli::Bernoulli;
pub use constraints::Constraint;
pub use distribution::{DistRef, DistRefExt, Distribution, DistributionExt, IntoDist};
pub use independent::Independent;
pub use masked::Masked;
pub use normal::Normal;
pub use unit::Unit;
pub use transforms::{Transform, TransformRef, biject_to};

#[cfg(test)]
mod tests;
