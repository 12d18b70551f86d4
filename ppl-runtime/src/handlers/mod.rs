//! Effect handlers, as Pyro's Poutine: each changes what sites inside its scope do, without
//! touching the model.
//!
//! Every handler is a struct implementing [`Handler`] plus a lowercase function that runs a closure
//! under it (`trace(|| model(&x))`). Handlers compose by nesting closures; **the handler applied last
//! (the outermost call) is outermost**: it processes a site after the inner ones, and post-processes
//! it last, seeing the final message. So `trace(|| replay(&guide_tr, || model(&x)))` records the
//! replayed values.

pub mod block;
pub mod condition;
pub mod do_;
pub mod enum_;
pub mod infer_config;
pub mod lift;
pub mod markov;
pub mod mask;
pub mod plate;
pub mod replay;
pub mod scale;
pub mod seed;
pub mod substitute;
pub mod trace;
pub mod uncondition;
pub mod vectorized_markov;

pub use crate::runtime::{Handler, HandlerGuard, HandlerRef, install, with_handler};
pub use block::{Block, block};
pub use condition::{Condition, condition};
pub use do_::{Do, do_};
pub use enum_::{EnumHandler, enum_};
pub use infer_config::{InferConfigHandler, infer_config};
pub use lift::{Lift, lift};
pub use markov::MarkovHandler;
pub use mask::{Mask, mask};
pub use plate::PlateHandler;
pub use replay::{Replay, replay};
pub use scale::{Scale, scale};
pub use seed::{Seed, seed};
pub use substitute::{Substitute, substitute};
pub use trace::{TraceHandler, trace};
pub use uncondition::{Uncondition, uncondition};
pub use vectorized_markov::VectorizedMarkovHandler;

use candle_core::Tensor;
use std::collections::HashMap;

/// Site name → value, as taken by `condition`, `substitute` and `do_`.
pub type Data = HashMap<String, Tensor>;

/// Builds a [`Data`] map from `(name, tensor)` pairs.
pub fn data<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Tensor)>) -> Data {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}
