//! `substitute`: gives sample and param sites fixed values, without observing them.

use crate::error::Result;
use crate::handlers::Data;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};

/// Sets the value of each sample or param site named in `data`; the site stays latent. A plate
/// named in `data` uses the given tensor as its indices (unless its body was given explicit
/// `subsample` indices).
#[derive(Debug)]
pub struct Substitute {
    data: Data,
}

impl Substitute {
    /// Substitutes values from `data`.
    pub fn new(data: Data) -> Self {
        Substitute { data }
    }
}

impl Handler for Substitute {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        let Some(v) = self.data.get(&msg.name) else { return Ok(()) };
        match msg.kind {
            SiteKind::Sample | SiteKind::Param => msg.value = Some(v.clone()),
            SiteKind::Plate if !msg.is_observed => {
                if let Some(frame) = msg.plate.as_mut() {
                    frame.subsample_size = v.dims().first().copied().unwrap_or(0);
                }
                msg.value = Some(v.clone());
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs `f` with the sample and param sites named in `data` set to those values.
///
/// ```
/// use ppl_runtime::{handlers::{data, substitute, trace}, primitives::param};
/// let w0 = candle_core::Tensor::new(2f32, &candle_core::Device::Cpu)?;
/// // No parameter store is needed: the substituted value is used as is.
/// let (w, tr) = trace(|| substitute(data([("w", w0)]), || param("w", 0.0)))?;
/// assert_eq!(w.to_scalar::<f32>()?, 2.0);
/// assert!(!tr.get("w").unwrap().is_observed);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn substitute<R>(data: Data, f: impl FnOnce() -> R) -> R {
    with_handler(Substitute::new(data), f).0
}
