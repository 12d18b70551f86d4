//! `scale`: multiplies the log-densities of sites by a factor.

use crate::error::{Error, Result};
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};

/// Multiplies the log-density of every sample and factor site by `factor`.
#[derive(Debug, Clone)]
pub struct Scale {
    factor: f64,
}

impl Scale {
    /// Scales by `factor`, which must be positive and finite.
    pub fn new(factor: f64) -> Result<Self> {
        if !(factor > 0.0 && factor.is_finite()) {
            return Err(Error::invalid_arg("scale", "factor", format!("must be positive and finite, got {factor}")));
        }
        Ok(Scale { factor })
    }
}

impl Handler for Scale {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if matches!(msg.kind, SiteKind::Sample | SiteKind::Factor) {
            msg.scale *= self.factor;
        }
        Ok(())
    }
}

/// Runs `f` with every log-density scaled by `factor` (positive and finite).
///
/// ```
/// use ppl_runtime::{dist::Normal, handlers::{scale, trace}, primitives::sample};
/// let (_, tr) = trace(|| scale(10.0, || sample("z", Normal::new(0.0, 1.0)?)))?;
/// assert_eq!(tr.get("z").unwrap().scale, 10.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn scale<R>(factor: f64, f: impl FnOnce() -> Result<R>) -> Result<R> {
    with_handler(Scale::new(factor)?, f).0
}
