//! `do_`: interventions (Pearl's do-operator). Named `do_` because `do` is a Rust keyword.

use crate::error::Result;
use crate::handlers::Data;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};

/// Fixes each sample site named in `data` to the given value *without* conditioning on it:
/// the site contributes no log-density, and downstream sites see the intervened value.
#[derive(Debug)]
pub struct Do {
    data: Data,
}

impl Do {
    /// Intervenes with `data`.
    pub fn new(data: Data) -> Self {
        Do { data }
    }
}

impl Handler for Do {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind == SiteKind::Sample
            && let Some(v) = self.data.get(&msg.name)
        {
            msg.value = Some(v.clone());
            msg.intervened = true;
            msg.is_observed = false;
            msg.done = true;
        }
        Ok(())
    }
}

/// Runs `f` with the sites named in `data` intervened on.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::Normal, handlers::{data, do_, trace}, primitives::sample};
/// let two = Tensor::new(2f32, &Device::Cpu)?;
/// let (y, tr) = trace(|| do_(data([("x", two)]), || {
///     let x = sample("x", Normal::new(0.0, 1.0)?)?;
///     sample("y", Normal::new(&x, 0.001)?)
/// }))?;
/// assert!((y.to_scalar::<f32>()? - 2.0).abs() < 0.01);
/// assert!(tr.get("x").unwrap().intervened);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn do_<R>(data: Data, f: impl FnOnce() -> R) -> R {
    with_handler(Do::new(data), f).0
}
