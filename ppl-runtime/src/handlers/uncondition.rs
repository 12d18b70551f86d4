//! `uncondition`: turns observed sites back into latent ones that are sampled.

use crate::error::Result;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};

/// Makes every observed sample site latent: its value is drawn instead of observed.
#[derive(Debug, Default, Clone)]
pub struct Uncondition;

impl Handler for Uncondition {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind == SiteKind::Sample && msg.is_observed {
            msg.is_observed = false;
            msg.value = None;
            msg.done = false;
        }
        Ok(())
    }
}

/// Runs `f` with every observation ignored and sampled instead.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::Normal, handlers::{trace, uncondition}, primitives::observe};
/// let x = Tensor::new(100f32, &Device::Cpu)?;
/// let (v, tr) = trace(|| uncondition(|| observe("x", Normal::new(0.0, 1.0)?, &x)))?;
/// assert!(!tr.get("x").unwrap().is_observed);
/// assert!(v.to_scalar::<f32>()?.abs() < 10.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn uncondition<R>(f: impl FnOnce() -> R) -> R {
    with_handler(Uncondition, f).0
}
