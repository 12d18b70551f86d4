//! `replay`: makes sample sites take their values from a recorded trace.

use crate::error::{Error, Result};
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};
use crate::trace::Trace;

/// Gives each latent sample site the value of the same-named site of `trace` (and its infer
/// config), and each plate the indices of the same-named plate of `trace` (so that the model
/// sees the guide's subsample); sites missing from the trace run as usual. A plate given its
/// indices explicitly (`subsample`) keeps them, as an observed site keeps its value.
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
        if !matches!(msg.kind, SiteKind::Sample | SiteKind::Plate) || msg.is_observed {
            return Ok(());
        }
        if msg.kind == SiteKind::Plate {
            return self.replay_plate(msg);
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

impl Replay {
    fn replay_plate(&self, msg: &mut Message) -> Result<()> {
        let Some(site) = self.trace.get(&msg.name) else { return Ok(()) };
        if site.kind != SiteKind::Plate {
            return Err(Error::ModelGuideMismatch(format!(
                "`{}` is a {} site in the replayed trace but a plate here",
                msg.name, site.kind
            )));
        }
        let size = |m: &Message| m.plate.as_ref().map(|f| f.size);
        if size(site) != size(msg) {
            return Err(Error::ModelGuideMismatch(format!(
                "plate `{}` has size {} in the replayed trace but {} here",
                msg.name,
                size(site).unwrap_or_default(),
                size(msg).unwrap_or_default()
            )));
        }
        if let (Some(v), Some(frame)) = (&site.value, msg.plate.as_mut()) {
            frame.subsample_size = v.dim(0)?;
            msg.value = Some(v.clone());
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
