//! `trace`: records every site that reaches it into a [`Trace`].

use crate::error::Result;
use crate::runtime::{Handler, with_handler};
use crate::site::Message;
use crate::trace::Trace;

/// Records each site it sees (after inner handlers have run) into a [`Trace`].
#[derive(Debug, Default)]
pub struct TraceHandler {
    /// The sites recorded so far.
    pub trace: Trace,
}

impl Handler for TraceHandler {
    fn postprocess(&mut self, msg: &mut Message) -> Result<()> {
        self.trace.add(msg.to_site())
    }
}

/// Runs `f` and returns its result with the trace of every site it ran.
///
/// ```
/// use ppl_runtime::{handlers::trace, primitives::sample, dist::Normal};
/// let (_, tr) = trace(|| sample("z", Normal::new(0.0, 1.0)?))?;
/// assert!(tr.contains("z"));
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn trace<R>(f: impl FnOnce() -> Result<R>) -> Result<(R, Trace)> {
    let (out, h) = with_handler(TraceHandler::default(), f);
    Ok((out?, h.trace))
}
