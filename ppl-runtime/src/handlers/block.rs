//! `block`: hides sites from the handlers outside it.

use crate::error::Result;
use crate::runtime::{Handler, with_handler};
use crate::site::Message;
use std::collections::HashSet;

/// Which sites a [`Block`] hides.
pub enum BlockSpec {
    /// Hide every site.
    All,
    /// Hide only these names.
    Hide(HashSet<String>),
    /// Hide everything but these names.
    Expose(HashSet<String>),
    /// Hide the sites for which the predicate holds.
    Predicate(Box<dyn Fn(&Message) -> bool>),
}

/// Stops the sites it hides from reaching outer handlers (they still run and get values).
pub struct Block {
    spec: BlockSpec,
}

impl Block {
    /// Hides every site.
    pub fn all() -> Self {
        Block { spec: BlockSpec::All }
    }
    /// Hides the named sites.
    pub fn hide<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Block { spec: BlockSpec::Hide(names.into_iter().map(Into::into).collect()) }
    }
    /// Hides every site except the named ones.
    pub fn expose<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Block { spec: BlockSpec::Expose(names.into_iter().map(Into::into).collect()) }
    }
    /// Hides the sites for which `pred` holds.
    pub fn hide_fn(pred: impl Fn(&Message) -> bool + 'static) -> Self {
        Block { spec: BlockSpec::Predicate(Box::new(pred)) }
    }

    fn hides(&self, msg: &Message) -> bool {
        match &self.spec {
            BlockSpec::All => true,
            BlockSpec::Hide(names) => names.contains(&msg.name),
            BlockSpec::Expose(names) => !names.contains(&msg.name),
            BlockSpec::Predicate(p) => p(msg),
        }
    }
}

impl Handler for Block {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if self.hides(msg) {
            msg.stop = true;
        }
        Ok(())
    }
}

/// Runs `f` with the sites `block` hides invisible to outer handlers.
///
/// ```
/// use ppl_runtime::{dist::Normal, handlers::{block, trace, Block}, primitives::sample};
/// let (_, tr) = trace(|| {
///     block(Block::hide(["hidden"]), || sample("hidden", Normal::new(0.0, 1.0)?))?;
///     sample("seen", Normal::new(0.0, 1.0)?)
/// })?;
/// assert!(!tr.contains("hidden") && tr.contains("seen"));
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn block<R>(block: Block, f: impl FnOnce() -> R) -> R {
    with_handler(block, f).0
}
