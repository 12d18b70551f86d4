//! `condition`: turns sample sites into observed sites with given values.

use crate::error::Result;
use crate::handlers::Data;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};

/// Observes each sample site named in `data` at the given value.
#[derive(Debug)]
pub struct Condition {
    data: Data,
}

impl Condition {
    /// Conditions on `data`.
    pub fn new(data: Data) -> Self {
        Condition { data }
    }
}

impl Handler for Condition {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind == SiteKind::Sample
            && let Some(v) = self.data.get(&msg.name)
        {
            msg.value = Some(v.clone());
            msg.is_observed = true;
        }
        Ok(())
    }
}

/// Runs `f` with the sites named in `data` observed at those values.
///
/// ```
/// use ppl_runtime::{handlers::{condition, data, trace}, primitives::sample, dist::Normal};
/// let x = candle_core::Tensor::new(1.5f32, &candle_core::Device::Cpu)?;
/// let (_, tr) = trace(|| condition(data([("z", x.clone())]), || sample("z", Normal::new(0.0, 1.0)?)))?;
/// assert!(tr.get("z").unwrap().is_observed);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn condition<R>(data: Data, f: impl FnOnce() -> R) -> R {
    with_handler(Condition::new(data), f).0
}
