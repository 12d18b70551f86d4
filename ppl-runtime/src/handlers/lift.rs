//! `lift`: turns param sites into sample sites from given priors.

use crate::dist::DistRef;
use crate::error::Result;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};
use std::collections::HashMap;

/// Replaces each param site that has a prior by a latent sample site from that prior.
#[derive(Debug)]
pub struct Lift {
    priors: HashMap<String, DistRef>,
    default: Option<DistRef>,
}

impl Lift {
    /// Lifts the params named in `priors`.
    pub fn new(priors: HashMap<String, DistRef>) -> Self {
        Lift { priors, default: None }
    }

    /// Lifts every param site to `prior`.
    pub fn all(prior: DistRef) -> Self {
        Lift { priors: HashMap::new(), default: Some(prior) }
    }
}

impl Handler for Lift {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind != SiteKind::Param {
            return Ok(());
        }
        if let Some(prior) = self.priors.get(&msg.name).or(self.default.as_ref()) {
            msg.kind = SiteKind::Sample;
            msg.dist = Some(prior.clone());
            msg.param = None;
            msg.value = None;
            msg.is_observed = false;
        }
        Ok(())
    }
}

/// Runs `f` with the param sites that have priors sampled from them.
///
/// ```
/// use ppl_runtime::{dist::{DistributionExt, Normal}, handlers::{lift, trace, Lift}, primitives::param, SiteKind};
/// let (_, tr) = trace(|| lift(Lift::all(Normal::new(0.0, 1.0)?.into_ref()), || param("w", 0.5)))?;
/// assert_eq!(tr.get("w").unwrap().kind, SiteKind::Sample);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn lift<R>(lift: Lift, f: impl FnOnce() -> R) -> R {
    with_handler(lift, f).0
}
