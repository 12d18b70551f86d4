//! `seed`: carries a seeded random number generator for the sites inside it.

use crate::rng::Rng;
use crate::runtime::{Handler, with_handler};
use crate::site::RngHandle;
use std::cell::RefCell;
use std::rc::Rc;

/// Supplies the generator from which sites inside draw their values; the innermost `seed` wins.
#[derive(Debug, Clone)]
pub struct Seed {
    rng: RngHandle,
}

impl Seed {
    /// A handler with a generator seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Seed { rng: Rc::new(RefCell::new(Rng::seed_from_u64(seed))) }
    }

    /// A handler drawing from `rng`.
    pub fn from_rng(rng: Rng) -> Self {
        Seed { rng: Rc::new(RefCell::new(rng)) }
    }
}

impl Handler for Seed {
    fn rng(&self) -> Option<RngHandle> {
        Some(self.rng.clone())
    }
}

/// Runs `f` with random draws from a generator seeded by `seed`: the same seed gives the same values.
///
/// ```
/// use ppl_runtime::{dist::Normal, handlers::seed, primitives::sample};
/// let draw = |s| seed(s, || sample("z", Normal::new(0.0, 1.0)?)?.to_scalar::<f32>().map_err(ppl_runtime::Error::from));
/// assert_eq!(draw(7)?, draw(7)?);
/// assert_ne!(draw(7)?, draw(8)?);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn seed<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    with_handler(Seed::new(seed), f).0
}
