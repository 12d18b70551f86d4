//! `vectorized_markov`: a first-order Markov chain written once and run twice (Pyro's
//! `pyro.vectorized_markov` with `history = 1`): once for `t = 0`, then once for every
//! `t = 1..size` at the same time, along a vectorized *time plate*. Under enumeration the chain is
//! summed out by a parallel scan over the time plate (see `infer::enum_::scan`), so a hidden
//! Markov model of any length enumerates with two dims per state variable and memory linear in
//! its length.

use crate::error::{Error, Result};
use crate::handlers::plate::PlateHandler;
use crate::primitives::PlateOptions;
use crate::runtime::{self, Handler};
use crate::site::{Message, SiteKind, VectorizedMarkovStep};
use candle_core::Tensor;
use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::rc::Rc;

thread_local! {
    /// Identifies vectorized markov loops; only equality matters, so it never needs resetting.
    static NEXT_CONTEXT: Cell<u64> = const { Cell::new(0) };
}

/// Records the loop and run on every sample and factor site inside it; a loop nested inside
/// another vectorized loop is an error.
#[derive(Clone, Debug)]
pub struct VectorizedMarkovHandler {
    /// The step recorded on sites.
    pub step: VectorizedMarkovStep,
}

impl Handler for VectorizedMarkovHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if !matches!(msg.kind, SiteKind::Sample | SiteKind::Factor) {
            return Ok(());
        }
        if let Some(inner) = &msg.infer.vectorized_markov
            && inner.context != self.step.context
        {
            return Err(Error::Enumeration(format!(
                "the vectorized_markov loop `{}` is nested inside the vectorized_markov loop `{}`; only one loop \
                 may be vectorized over time: make the inner one a sequential `markov`",
                inner.name, self.step.name
            ))
            .at_site(&msg.name, msg.meta.map(|m| m.location)));
        }
        msg.infer.vectorized_markov = Some(self.step.clone());
        Ok(())
    }
}

/// The step a [`vectorized_markov`] body receives: `t = 0`, or every `t` in `1..size` at once.
/// Prints as `0` or `1..size`, so `format!("x_{t}")` names the two runs' sites `x_0` and
/// `x_1..size`.
#[derive(Clone, Debug)]
pub struct MarkovSlice {
    range: Range<usize>,
    indices: Tensor,
}

impl MarkovSlice {
    /// Whether this is the run at `t = 0` (no previous state).
    pub fn is_first(&self) -> bool {
        self.range.start == 0
    }

    /// The time indices of this run (U32, 1-d): `[0]`, or `1..size` along the time plate. Index
    /// per-time data with it (`y.index_select(t.indices(), dim)`): the first run's size 1 at the
    /// time plate's dim broadcasts.
    pub fn indices(&self) -> &Tensor {
        &self.indices
    }

    /// The time indices of this run: `0..1` or `1..size`.
    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }
}

impl std::fmt::Display for MarkovSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_first() { write!(f, "0") } else { write!(f, "{}..{}", self.range.start, self.range.end) }
    }
}

/// A first-order Markov chain over `size` time steps, vectorized over time (Pyro's
/// `vectorized_markov` with `history = 1`). `body` runs twice: with `t = 0` (no plate), then with
/// `t` standing for `1..size` at once, inside a vectorized plate named `name` of `size - 1`
/// elements (skipped when `size == 1`). Returns the bodies' results in order.
///
/// In the second run the previous state is the first run's value: keep it in a variable
/// (`x_prev`) and use it as is. Under enumeration its dim then stands for "the state at `t - 1`"
/// at every `t`, and the second run's enumerated sites for "the state at `t`": the `k`-th site
/// enumerated by the first run directly in the loop's plates is paired with the `k`-th site the
/// second run enumerates directly in the time plate (same support size; a mismatch is an error
/// naming the loop and the sites). Enumerated sites in plates opened inside the body are summed
/// out per time step and may not carry state. The chain is summed out by a parallel scan over
/// the time plate (log₂ `size` levels of batched log-space matrix products), so the number of
/// enum dims does not depend on `size` and memory grows linearly with it.
///
/// Supported by [`TraceEnumElbo`](crate::infer::TraceEnumElbo) (model-side enumeration), the
/// enumerated NUTS/HMC potential and [`infer_discrete`](crate::infer::infer_discrete) (Viterbi
/// decoding or posterior draws of the whole chain: the second run's sites get values over the
/// time plate). Only `history = 1`.
///
/// The loop is a model for enumerated states: run without enumeration (prior draws,
/// `Predictive`), the second run draws every `x_t` given `x_0`, not a chain; simulate with
/// [`markov`](crate::primitives::markov), or decode with `infer_discrete`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::{Categorical, Normal}, handlers::trace};
/// use ppl_runtime::primitives::{observe, sample, vectorized_markov};
/// let (dev, y) = (Device::Cpu, Tensor::new(&[0.1f32, 1.9, 2.2, -0.3], &Device::Cpu)?);
/// let trans = Tensor::new(&[[0.9f32, 0.1], [0.2, 0.8]], &dev)?;
/// let (_, tr) = trace(|| {
///     let mut x = Tensor::new(0u32, &dev)?;
///     vectorized_markov("time", 4, |t| {
///         let probs = trans.index_select(&x.flatten_all()?, 0)?.reshape(x.dims().iter().copied().chain([2]).collect::<Vec<_>>())?;
///         x = sample(format!("x_{t}"), Categorical::new(&probs)?)?;
///         observe(format!("y_{t}"), Normal::new(&(x.to_dtype(candle_core::DType::F32)? * 2.0)?, 1.0)?, &y.index_select(t.indices(), 0)?)
///     })
/// })?;
/// assert_eq!(tr.value("x_0")?.dims(), &[] as &[usize]);
/// assert_eq!(tr.value("x_1..4")?.dims(), &[3]); // t = 1, 2, 3 along the time plate
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn vectorized_markov<R>(
    name: impl Into<String>,
    size: usize,
    body: impl FnMut(&MarkovSlice) -> Result<R>,
) -> Result<Vec<R>> {
    vectorized_markov_with(name, size, PlateOptions::default(), body)
}

/// [`vectorized_markov`] with plate options for its time plate: `dim` (the time plate's tensor
/// dim, reserved for both runs) and `meta`. The time plate cannot be subsampled (every step is
/// needed to chain the steps together): `subsample` or a `subsample_size` below `size` is an
/// error naming the loop.
pub fn vectorized_markov_with<R>(
    name: impl Into<String>,
    size: usize,
    opts: PlateOptions,
    mut body: impl FnMut(&MarkovSlice) -> Result<R>,
) -> Result<Vec<R>> {
    let name = name.into();
    let located = |e: Error| match opts.meta {
        Some(m) => e.at_site(&name, Some(m.location)),
        None => e,
    };
    if opts.subsample.is_some() || opts.subsample_size.is_some_and(|n| n < size) {
        return Err(located(Error::Plate {
            plate: name.clone(),
            message: "is the time plate of a vectorized_markov loop, which cannot be subsampled: every time step is \
                      needed to chain the steps together; subsample a plate outside the loop (e.g. over sequences)"
                .into(),
        }));
    }
    if size == 0 {
        return Ok(Vec::new());
    }
    let context = NEXT_CONTEXT.with(|c| {
        let id = c.get();
        c.set(id + 1);
        id
    });
    // Reserve the time plate's dim for both runs, so plates opened in the body get the same
    // dims in each.
    let (dim, _dim_guard) = runtime::allocate_dim(&name, opts.dim).map_err(located)?;
    let device = crate::defaults::current().device;
    let mut out = Vec::with_capacity(2);
    {
        let step = VectorizedMarkovStep { name: name.clone(), context, first: true };
        let _g = runtime::install(Rc::new(RefCell::new(VectorizedMarkovHandler { step })));
        let slice = MarkovSlice { range: 0..1, indices: Tensor::new(&[0u32], &device)? };
        out.push(body(&slice)?);
    }
    if size > 1 {
        let step = VectorizedMarkovStep { name: name.clone(), context, first: false };
        let _g = runtime::install(Rc::new(RefCell::new(VectorizedMarkovHandler { step })));
        let _p = runtime::install(Rc::new(RefCell::new(PlateHandler::new(name.clone(), Some(dim), size - 1, size - 1))));
        let slice = MarkovSlice { range: 1..size, indices: Tensor::arange(1u32, size as u32, &device)? };
        out.push(body(&slice)?);
    }
    Ok(out)
}
