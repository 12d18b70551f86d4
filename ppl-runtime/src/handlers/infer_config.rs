//! `infer_config`: sets the inference configuration of sites by a function.

use crate::error::Result;
use crate::runtime::{Handler, with_handler};
use crate::site::{InferConfig, Message, SiteKind};

/// A function choosing the inference configuration of a site.
pub type ConfigFn = Box<dyn Fn(&Message) -> Option<InferConfig>>;

/// Merges `config(msg)` into the infer config of every sample site.
pub struct InferConfigHandler {
    config: ConfigFn,
}

impl InferConfigHandler {
    /// Configures sites by `config`.
    pub fn new(config: impl Fn(&Message) -> Option<InferConfig> + 'static) -> Self {
        InferConfigHandler { config: Box::new(config) }
    }
}

impl Handler for InferConfigHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind == SiteKind::Sample
            && let Some(c) = (self.config)(msg)
        {
            msg.infer.merge(&c);
        }
        Ok(())
    }
}

/// Runs `f` with sample sites configured by `config`.
///
/// ```
/// use ppl_runtime::{dist::Bernoulli, handlers::{infer_config, trace}, primitives::sample, Enumerate, InferConfig};
/// let enumerate = |_: &ppl_runtime::Message| Some(InferConfig::new().enumerate(Enumerate::Parallel));
/// let (_, tr) = trace(|| infer_config(enumerate, || sample("c", Bernoulli::new(0.5)?)))?;
/// assert_eq!(tr.get("c").unwrap().infer.enumerate, Some(Enumerate::Parallel));
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn infer_config<R>(config: impl Fn(&Message) -> Option<InferConfig> + 'static, f: impl FnOnce() -> R) -> R {
    with_handler(InferConfigHandler::new(config), f).0
}
