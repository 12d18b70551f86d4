//! `markov`: a loop whose step `t` depends only on the last `history` steps (Pyro's
//! `pyro.markov`). Sites inside record their step ([`MarkovStep`]), so the enum handler can
//! recycle the tensor dims of enumerated variables that no later site may depend on: a hidden
//! Markov model of length `T` enumerates with `history + 1` dims, whatever `T`.

use crate::error::Result;
use crate::runtime::{self, Handler};
use crate::site::{MarkovStep, Message};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

thread_local! {
    /// Identifies markov loops; only equality matters, so it never needs resetting.
    static NEXT_CONTEXT: Cell<u64> = const { Cell::new(0) };
}

/// Pushes one markov step onto the `markov_scope` of every site inside it.
#[derive(Clone, Copy, Debug)]
pub struct MarkovHandler {
    /// The step recorded on sites.
    pub step: MarkovStep,
}

impl Handler for MarkovHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        // Inner handlers process first: keep the scope ordered outermost first.
        msg.infer.markov_scope.insert(0, self.step);
        Ok(())
    }
}

/// Runs `body(t)` for `t` in `0..steps` as a Markov chain of order `history`: sites of step `t`
/// may depend on sites of steps `t - history ..= t` only. Under enumeration this lets the dims
/// of older enumerated variables be reused, so the number of enum dims does not grow with
/// `steps`. Returns the bodies' results in order.
///
/// ```
/// use ppl_runtime::{dist::Categorical, handlers::trace, primitives::{markov, sample}};
/// use candle_core::{Device, Tensor};
/// let probs = Tensor::new(&[[0.9f32, 0.1], [0.2, 0.8]], &Device::Cpu)?;
/// let (_, tr) = trace(|| {
///     let mut x = Tensor::new(0u32, &Device::Cpu)?;
///     markov(5, |t| {
///         x = sample(format!("x_{t}"), Categorical::new(&probs.index_select(&x.reshape(1)?, 0)?.squeeze(0)?)?)?;
///         Ok(())
///     })
/// })?;
/// assert_eq!(tr.get("x_3").unwrap().infer.markov_scope[0].step, 3);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn markov<R>(steps: usize, body: impl FnMut(usize) -> Result<R>) -> Result<Vec<R>> {
    markov_with(steps, 1, body)
}

/// [`markov`] of order `history` (how many earlier steps a step may depend on; at least 1 to be
/// useful, 0 declares the steps independent).
pub fn markov_with<R>(steps: usize, history: usize, mut body: impl FnMut(usize) -> Result<R>) -> Result<Vec<R>> {
    let context = NEXT_CONTEXT.with(|c| {
        let id = c.get();
        c.set(id + 1);
        id
    });
    let mut out = Vec::with_capacity(steps);
    for step in 0..steps {
        let handler = MarkovHandler { step: MarkovStep { context, step, history } };
        let _guard = runtime::install(Rc::new(RefCell::new(handler)));
        out.push(body(step)?);
    }
    Ok(out)
}
