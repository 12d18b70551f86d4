//! ppl-runtime: the runtime of the ppl probabilistic programming language — effect handlers,
//! traces, parameters, distributions and inference on Candle.
//!
//! Models are plain functions that call the [`primitives`]; [`handlers`] change what those calls
//! do (record, replay, condition, scale, ...), and inference is built from handlers.
//!
//! ```
//! use ppl_runtime::{dist::Normal, handlers::{seed, trace}, primitives::{observe, plate, sample}};
//! use candle_core::{Device, Tensor};
//! let data = Tensor::new(&[0.5f32, 1.5, 1.0], &Device::Cpu)?;
//! let model = || -> ppl_runtime::Result<()> {
//!     let mu = sample("mu", Normal::new(0.0, 10.0)?)?;
//!     plate("data", 3, |_| {
//!         observe("x", Normal::new(&mu, 1.0)?, &data)?;
//!         Ok(())
//!     })
//! };
//! let (_, tr) = seed(0, || trace(model))?;
//! assert_eq!(tr.get("x").unwrap().dist.as_ref().unwrap().batch_shape(), &[3]);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

pub mod defaults;
pub mod dist;
pub mod error;
pub mod handlers;
pub mod infer;
pub mod nn;
pub mod optim;
pub mod params;
pub mod primitives;
pub mod rng;
pub mod runtime;
pub mod site;
pub mod trace;

pub use error::{Error, Location, Result};
pub use infer::render::{render_model, render_model_with};
pub use params::ParamStore;
pub use primitives::{
    ObsValue, ParamOptions, PlateOptions, SampleOptions, SeqPlateIndex, deterministic, deterministic_with, factor, factor_with, markov, markov_with, module, observe,
    param, param_with, plate, plate_with, sample, sample_with, seq_plate, seq_plate_iter, seq_plate_iter_with,
    seq_plate_with, SeqPlateIter,
};
pub use primitives::{MarkovSlice, vectorized_markov, vectorized_markov_with};
pub use rng::Rng;
pub use site::{CondIndepFrame, Enumerate, InferConfig, MarkovStep, Message, ParamInit, Site, SiteKind, SiteMeta, VectorizedMarkovStep};
pub use trace::Trace;

/// Items used by the code the `ppl` macros generate. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::Location;
    pub use crate::primitives::*;
    pub use crate::site::{Enumerate, InferConfig, ParamInit, SiteKind, SiteMeta};

    /// Lowercase constructors named like the constraints, for `param!(..., constraint = positive)`.
    pub mod constraint {
        use crate::dist::Constraint;
        /// All reals.
        pub fn real() -> Constraint { Constraint::Real }
        /// `x > 0`.
        pub fn positive() -> Constraint { Constraint::Positive }
        /// `x >= 0`.
        pub fn nonnegative() -> Constraint { Constraint::Nonnegative }
        /// `[0, 1]`.
        pub fn unit_interval() -> Constraint { Constraint::UnitInterval }
        /// The simplex.
        pub fn simplex() -> Constraint { Constraint::Simplex }
        /// Lower-Cholesky factors.
        pub fn lower_cholesky() -> Constraint { Constraint::LowerCholesky }
        /// Cholesky factors of correlation matrices.
        pub fn corr_cholesky() -> Constraint { Constraint::CorrCholesky }
        /// Positive-definite matrices.
        pub fn positive_definite() -> Constraint { Constraint::PositiveDefinite }
        /// Increasing vectors.
        pub fn ordered_vector() -> Constraint { Constraint::OrderedVector }
        /// `{0, 1}`.
        pub fn boolean() -> Constraint { Constraint::Boolean }
        /// `0, 1, 2, ...`.
        pub fn nonnegative_integer() -> Constraint { Constraint::NonnegativeInteger }
        /// `x > lower`.
        pub fn greater_than(lower: f64) -> Constraint { Constraint::GreaterThan(lower) }
        /// `x < upper`.
        pub fn less_than(upper: f64) -> Constraint { Constraint::LessThan(upper) }
        /// `[lower, upper]`.
        pub fn interval(lower: f64, upper: f64) -> Constraint { Constraint::Interval(lower, upper) }
        /// Integers in `lower..=upper`.
        pub fn integer_interval(lower: i64, upper: i64) -> Constraint { Constraint::IntegerInterval(lower, upper) }
    }
}
