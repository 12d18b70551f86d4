//! `replay`: makes sample sites take their values from a recorded trace.

use crate::error::{Error, Result};
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};
use crate::trace::Trace;

/// Gives each latent sample site the value of the same-named site of `trace` (and its infer
/// config); sites missing from the trace run as usual.
#[derive(Debug)]
pub struct Replay {
    trace: Trace,
}

impl Replay {
    /// Replays values from `trace`.
    pub fn new(trace: Trace) -> Self {
        Replay { trace }
    }
}

impl Handler for Replay {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind != SiteKind::Sample || msg.is_observed {
            return Ok(());
        }
        if let Some(site) = self.trace.get(&msg.name) {
            if site.kind != SiteKind::Sample {
                return Err(Error::ModelGuideMismatch(format!(
                    "site `{}` is a {} site in the replayed trace but a sample site here",
                    msg.name, site.kind
                )));
            }
            msg.value = site.value.clone();
            msg.infer.merge(&site.infer);
        }
        Ok(())
    }
}

/// Runs `f` with sample sites replayed from `trace`.
///
/// ```
/// use ppl_runtime::{dist::Normal, handlers::{replay, seed, trace}, primitives::sample};
/// let (_, guide_tr) = seed(0, || trace(|| sample("z", Normal::new(3.0, 0.1)?)))?;
/// let z = replay(&guide_tr, || sample("z", Normal::new(0.0, 1.0)?))?;
/// assert_eq!(z.to_scalar::<f32>()?, guide_tr.value("z")?.to_scalar::<f32>()?);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn replay<R>(trace: &Trace, f: impl FnOnce() -> R) -> R {
    with_handler(Replay::new(trace.clone()), f).0
}
