//! The primitives a model is written with: `sample`, `param`, `plate`, `factor`,
//! `deterministic` and `module`. Each builds a [`Message`] and sends it through the handler stack.
//!
//! The `sample!`/`param!`/`plate!`/... macros expand to the `*_with` forms, passing the site's
//! static metadata so that errors quote its source location.

use crate::dist::{Constraint, DistRef, IntoDist};
use crate::error::{Error, Result};
use crate::handlers::plate::{PlateHandler, SeqActive};
use crate::runtime::{self, apply_stack};
use crate::site::{CondIndepFrame, InferConfig, Message, ParamInit, ParamSpec, SiteKind, SiteMeta};
use candle_core::{DType, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

pub use crate::handlers::markov::{markov, markov_with};
pub use crate::handlers::vectorized_markov::{MarkovSlice, vectorized_markov, vectorized_markov_with};

/// A value that may be given as an observation: a `Tensor` or `&Tensor` (observed), or an
/// `Option` of one (`None`: the site is latent) — Pyro's `obs=None` idiom, so that one model
/// serves fitting (`Some(&y)`) and prediction (`None`).
pub trait ObsValue {
    /// The observation, if any.
    fn obs_value(&self) -> Option<Tensor>;
}

impl ObsValue for Tensor {
    fn obs_value(&self) -> Option<Tensor> {
        Some(self.clone())
    }
}

impl ObsValue for Option<Tensor> {
    fn obs_value(&self) -> Option<Tensor> {
        self.clone()
    }
}

impl ObsValue for Option<&Tensor> {
    fn obs_value(&self) -> Option<Tensor> {
        self.cloned()
    }
}

impl<T: ObsValue + ?Sized> ObsValue for &T {
    fn obs_value(&self) -> Option<Tensor> {
        (**self).obs_value()
    }
}

/// Options of a sample site.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::Normal, handlers::trace, primitives::{sample_with, SampleOptions}};
/// let y = Tensor::new(0.5f32, &Device::Cpu)?;
/// let model = |y: Option<&Tensor>| sample_with("y", Normal::new(0.0, 1.0)?, SampleOptions::new().obs(y));
/// let (_, fit) = trace(|| model(Some(&y)))?;
/// let (_, predict) = trace(|| model(None))?;
/// assert!(fit.get("y").unwrap().is_observed && !predict.get("y").unwrap().is_observed);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct SampleOptions {
    /// Observed value: the site is conditioned on it (`None`: latent).
    pub obs: Option<Tensor>,
    /// A 0/1 mask broadcastable to the batch shape.
    pub mask: Option<Tensor>,
    /// Inference configuration.
    pub infer: Option<InferConfig>,
    /// Static metadata from the macros.
    pub meta: Option<&'static SiteMeta>,
}

impl SampleOptions {
    /// No observation, mask or configuration.
    pub fn new() -> SampleOptions {
        SampleOptions::default()
    }

    /// Observes `obs`: a `Tensor`, a `&Tensor`, or an `Option` of one (`None` leaves the site latent).
    pub fn obs(mut self, obs: impl ObsValue) -> SampleOptions {
        self.obs = obs.obs_value();
        self
    }

    /// Masks the site's log-density by `mask` (a u8 tensor of 0s and 1s).
    pub fn mask(mut self, mask: &Tensor) -> SampleOptions {
        self.mask = Some(mask.clone());
        self
    }

    /// Sets the site's inference configuration.
    pub fn infer(mut self, infer: InferConfig) -> SampleOptions {
        self.infer = Some(infer);
        self
    }
}

/// Draws (or observes) the random variable `name` from `dist`, as Pyro's `pyro.sample`.
///
/// An observation whose float dtype differs from the distribution's is an error naming both;
/// it is checked after the handlers' `process`, so a handler may convert the value first.
pub fn sample_with(name: impl Into<String>, dist: impl IntoDist, opts: SampleOptions) -> Result<Tensor> {
    let mut msg = Message::new(name.into(), SiteKind::Sample);
    let dist: DistRef = dist.into_dist();
    msg.meta = opts.meta;
    if let Some(obs) = opts.obs {
        msg.value = Some(obs);
        msg.is_observed = true;
    }
    msg.dist = Some(dist);
    if let Some(mask) = &opts.mask {
        crate::site::check_mask(mask, crate::defaults::validation_enabled())
            .map_err(|e| e.at_site(&msg.name, msg.location()))?;
    }
    msg.mask = opts.mask;
    if let Some(infer) = opts.infer {
        msg.infer = infer;
    }
    apply_stack(&mut msg)?;
    let name = msg.name;
    msg.value.ok_or_else(|| Error::invalid_arg("sample", "value", "no value after the handler stack").at_site(&name, None))
}

/// Draws the latent random variable `name` from `dist`.
pub fn sample(name: impl Into<String>, dist: impl IntoDist) -> Result<Tensor> {
    sample_with(name, dist, SampleOptions::default())
}

/// Observes `value` at site `name` under `dist`.
pub fn observe(name: impl Into<String>, dist: impl IntoDist, value: &Tensor) -> Result<Tensor> {
    sample_with(name, dist, SampleOptions { obs: Some(value.clone()), ..Default::default() })
}

/// Options of a param site.
#[derive(Clone, Debug)]
pub struct ParamOptions {
    /// The constraint of the parameter's value. Default: real.
    pub constraint: Constraint,
    /// Rightmost dims forming one event (for `lift` and autoguides).
    pub event_dim: Option<usize>,
    /// Static metadata from the macros.
    pub meta: Option<&'static SiteMeta>,
}

impl Default for ParamOptions {
    fn default() -> Self {
        ParamOptions { constraint: Constraint::Real, event_dim: None, meta: None }
    }
}

/// The learnable parameter `name`, created from `init` the first time (Pyro's `pyro.param`).
/// Needs a parameter store in scope ([`ParamStore::scope`](crate::params::ParamStore::scope)).
pub fn param_with<'a>(name: impl Into<String>, init: impl Into<ParamInit<'a>>, opts: ParamOptions) -> Result<Tensor> {
    let mut msg = Message::new(name.into(), SiteKind::Param);
    msg.meta = opts.meta;
    msg.param = Some(ParamSpec { constraint: opts.constraint, event_dim: opts.event_dim, init: Some(init.into()) });
    apply_stack(&mut msg)?;
    let location = msg.location();
    msg.value.ok_or_else(|| Error::NoParamStore.at_site(&msg.name, location))
}

/// The real-valued learnable parameter `name`.
pub fn param<'a>(name: impl Into<String>, init: impl Into<ParamInit<'a>>) -> Result<Tensor> {
    param_with(name, init, ParamOptions::default())
}

/// Adds `log_weight` to the model's log-density (Pyro's `pyro.factor`).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{handlers::trace, primitives::factor};
/// let (_, tr) = trace(|| factor("penalty", &Tensor::new(-2.5f32, &Device::Cpu)?))?;
/// assert_eq!(tr.log_prob_sum()?.to_scalar::<f32>()?, -2.5);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn factor_with(name: impl Into<String>, log_weight: &Tensor, meta: Option<&'static SiteMeta>) -> Result<()> {
    let mut msg = Message::new(name.into(), SiteKind::Factor);
    msg.meta = meta;
    msg.dist = Some(crate::dist::Unit::new(log_weight)?.into_dist());
    msg.value = Some(log_weight.clone());
    msg.is_observed = true;
    apply_stack(&mut msg)
}

/// Adds `log_weight` to the model's log-density.
pub fn factor(name: impl Into<String>, log_weight: &Tensor) -> Result<()> {
    factor_with(name, log_weight, None)
}

/// Records `value` under `name` in traces (Pyro's `pyro.deterministic`), and returns it (or
/// the value a handler substituted).
pub fn deterministic_with(name: impl Into<String>, value: &Tensor, meta: Option<&'static SiteMeta>) -> Result<Tensor> {
    let mut msg = Message::new(name.into(), SiteKind::Deterministic);
    msg.meta = meta;
    msg.value = Some(value.clone());
    apply_stack(&mut msg)?;
    Ok(msg.value.unwrap_or_else(|| value.clone()))
}

/// Records `value` under `name` in traces.
pub fn deterministic(name: impl Into<String>, value: &Tensor) -> Result<Tensor> {
    deterministic_with(name, value, None)
}

/// Registers every `Var` of a candle-nn `VarMap` as a parameter named `{name}.{key}`, so that
/// optimizers see a network's weights (Pyro's `pyro.module`). A parameter already in the store
/// (for example loaded from disk) is copied into the module's `Var`.
pub fn module(name: &str, vars: &candle_nn::VarMap) -> Result<()> {
    let mut items: Vec<(String, candle_core::Var)> = {
        let data = vars.data().lock().map_err(|_| Error::invalid_arg("module", "vars", "the VarMap's lock is poisoned"))?;
        data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    items.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in items {
        param_with(format!("{name}.{k}"), ParamInit::Var(v), ParamOptions::default())?;
    }
    Ok(())
}

/// Options of a plate.
#[derive(Clone, Debug, Default)]
pub struct PlateOptions {
    /// Draw a random subset of this many indices per run; log-densities are scaled by size / subsample_size.
    pub subsample_size: Option<usize>,
    /// Use these indices (a 1-d integer tensor) as the subsample.
    pub subsample: Option<Tensor>,
    /// The (negative) tensor dim of the plate; allocated from the right when `None`.
    pub dim: Option<isize>,
    /// Static metadata from the macros.
    pub meta: Option<&'static SiteMeta>,
}

/// A vectorized plate of `size` conditionally independent elements (Pyro's `pyro.plate`).
///
/// Sample sites inside get the plate's frame and are broadcast so that their batch shape has
/// the (subsample) size at the plate's dim. `body` receives the index tensor (U32): `0..size`,
/// or the subsample. Param and deterministic sites inside get the frame too; a param with an
/// `event_dim` whose size at the plate's dim is the plate's full size is a *local* parameter:
/// inside a subsampled plate its value is indexed by the subsample (as in Pyro).
///
/// The plate sends a message of kind [`SiteKind::Plate`] (named after the plate, value: the
/// indices) through the handler stack before its body runs: `trace` records the subsample, and
/// `replay` gives the plate the replayed trace's indices (so a model replayed against a guide
/// sees the guide's subsample).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use ppl_runtime::{dist::Normal, handlers::{seed, trace}, primitives::{observe, plate_with, PlateOptions}};
/// let data = Tensor::zeros(1000, DType::F32, &Device::Cpu)?;
/// let opts = PlateOptions { subsample_size: Some(100), ..Default::default() };
/// let (_, tr) = seed(0, || trace(|| plate_with("data", 1000, opts, |idx| {
///     observe("x", Normal::new(0.0, 1.0)?, &data.index_select(idx, 0)?)
/// })))?;
/// let x = tr.get("x").unwrap();
/// assert_eq!(x.value.as_ref().unwrap().dims(), &[100]);
/// assert_eq!(x.scale, 10.0); // log-densities count for the full data set
/// assert_eq!(tr.value("data")?.dims(), &[100]); // the subsample, recorded as a plate site
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn plate_with<R>(
    name: impl Into<String>,
    size: usize,
    opts: PlateOptions,
    body: impl FnOnce(&Tensor) -> Result<R>,
) -> Result<R> {
    let name = name.into();
    let located = |e: Error| match opts.meta {
        Some(m) => e.at_site(&name, Some(m.location)),
        None => e,
    };
    let (dim, _dim_guard) = runtime::allocate_dim(&name, opts.dim).map_err(located)?;
    let indices = plate_indices(&name, size, Some(dim), &opts)?;
    let handler = PlateHandler::new(name.clone(), Some(dim), size, indices.dim(0)?).with_indices(indices.clone());
    let _g = runtime::install(Rc::new(RefCell::new(handler)));
    body(&indices)
}

/// A vectorized plate of `size` elements with default options.
pub fn plate<R>(name: impl Into<String>, size: usize, body: impl FnOnce(&Tensor) -> Result<R>) -> Result<R> {
    plate_with(name, size, PlateOptions::default(), body)
}

/// A sequential plate: runs `body` once per index (of `0..size`, or of the subsample), each
/// iteration conditionally independent of the others; returns the results in order.
pub fn seq_plate_with<R>(
    name: impl Into<String>,
    size: usize,
    opts: PlateOptions,
    mut body: impl FnMut(usize) -> Result<R>,
) -> Result<Vec<R>> {
    let name = name.into();
    if opts.dim.is_some() {
        return Err(Error::Plate { plate: name, message: "a sequential plate has no tensor `dim`".into() });
    }
    let idx: Vec<u32> = plate_indices(&name, size, None, &opts)?.to_vec1()?;
    let mut out = Vec::with_capacity(idx.len());
    for (counter, &i) in idx.iter().enumerate() {
        let mut handler = PlateHandler::new(name.clone(), None, size, idx.len());
        handler.counter = counter;
        let _g = runtime::install(Rc::new(RefCell::new(handler)));
        out.push(body(i as usize)?);
    }
    Ok(out)
}

/// A sequential plate as an iterator (Pyro's `for i in pyro.plate(...)`): each step yields the
/// next index as a [`SeqPlateIndex`], and the sites sampled while that index is alive lie in
/// its iteration's frame.
///
/// ```
/// use ppl_runtime::{dist::Normal, handlers::trace, primitives::{sample, seq_plate_iter}};
/// let (_, tr) = trace(|| {
///     for i in seq_plate_iter("steps", 3)? {
///         sample(format!("z_{i}"), Normal::new(0.0, 1.0)?)?;
///     }
///     Ok(())
/// })?;
/// assert_eq!(tr.get("z_2").unwrap().cond_indep_stack[0].counter, 2);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn seq_plate_iter(name: impl Into<String>, size: usize) -> Result<SeqPlateIter> {
    seq_plate_iter_with(name, size, PlateOptions::default())
}

/// [`seq_plate_iter`] with options (subsampling; a sequential plate has no `dim`).
pub fn seq_plate_iter_with(name: impl Into<String>, size: usize, opts: PlateOptions) -> Result<SeqPlateIter> {
    let name = name.into();
    if opts.dim.is_some() {
        return Err(Error::Plate { plate: name, message: "a sequential plate has no tensor `dim`".into() });
    }
    let indices: Vec<u32> = plate_indices(&name, size, None, &opts)?.to_vec1()?;
    // One handler for the whole iteration; it gives each site the frame of the earliest index
    // still alive, so the frame follows the item even when the items are collected first.
    let active = SeqActive::default();
    let handler = PlateHandler::new(name, None, size, indices.len()).sequential(active.clone());
    let guard = Rc::new(runtime::install(Rc::new(RefCell::new(handler))));
    Ok(SeqPlateIter { indices, pos: 0, active, guard })
}

/// The iterator of [`seq_plate_iter`]. Its handler stays installed while the iterator or any
/// index it yielded is alive.
pub struct SeqPlateIter {
    indices: Vec<u32>,
    pos: usize,
    active: SeqActive,
    guard: Rc<runtime::HandlerGuard>,
}

/// One index of a [`seq_plate_iter`]: while it is alive, sites lie in its iteration's frame
/// (when several are alive — items collected first — in the earliest one's). Dereferences to
/// the index (`*i`), and prints as it.
pub struct SeqPlateIndex {
    index: usize,
    counter: usize,
    active: SeqActive,
    _guard: Rc<runtime::HandlerGuard>,
}

impl SeqPlateIndex {
    /// The index into the plate (`0..size`, or an element of the subsample).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The iteration number (0, 1, ...).
    pub fn counter(&self) -> usize {
        self.counter
    }
}

impl std::ops::Deref for SeqPlateIndex {
    type Target = usize;
    fn deref(&self) -> &usize {
        &self.index
    }
}

impl std::fmt::Display for SeqPlateIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.index.fmt(f)
    }
}

impl std::fmt::Debug for SeqPlateIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqPlateIndex").field("index", &self.index).field("counter", &self.counter).finish()
    }
}

impl Drop for SeqPlateIndex {
    fn drop(&mut self) {
        self.active.end(self.counter);
    }
}

impl Iterator for SeqPlateIter {
    type Item = SeqPlateIndex;

    fn next(&mut self) -> Option<SeqPlateIndex> {
        let &index = self.indices.get(self.pos)?;
        let counter = self.pos;
        self.pos += 1;
        self.active.begin(counter);
        Some(SeqPlateIndex { index: index as usize, counter, active: self.active.clone(), _guard: self.guard.clone() })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.indices.len() - self.pos;
        (n, Some(n))
    }
}

impl ExactSizeIterator for SeqPlateIter {}

/// A sequential plate with default options.
pub fn seq_plate<R>(name: impl Into<String>, size: usize, body: impl FnMut(usize) -> Result<R>) -> Result<Vec<R>> {
    seq_plate_with(name, size, PlateOptions::default(), body)
}

/// Sends the plate's message through the stack and returns the (checked, U32) indices it comes
/// back with: the given `subsample` (observed: never replayed), `0..size`, or — when a handler
/// sets none — a random subset drawn by the default behaviour.
fn plate_indices(name: &str, size: usize, dim: Option<isize>, opts: &PlateOptions) -> Result<Tensor> {
    let plate_err = |message: String| Error::Plate { plate: name.to_string(), message };
    let located = |e: Error| match opts.meta {
        Some(m) => e.at_site(name, Some(m.location)),
        None => e,
    };
    let mut msg = Message::new(name.to_string(), SiteKind::Plate);
    msg.meta = opts.meta;
    let subsample_size = match (&opts.subsample, opts.subsample_size) {
        (Some(idx), ss) => {
            let idx = check_indices(name, size, idx).map_err(located)?;
            if let Some(ss) = ss
                && ss != idx.dim(0)?
            {
                return Err(located(plate_err(format!(
                    "`subsample_size` is {ss} but `subsample` has {} indices",
                    idx.dim(0)?
                ))));
            }
            let n = idx.dim(0)?;
            msg.value = Some(idx);
            msg.is_observed = true;
            n
        }
        (None, Some(ss)) if ss > size => {
            return Err(located(plate_err(format!("`subsample_size` {ss} is larger than the plate's size {size}"))));
        }
        (None, Some(0)) => return Err(located(plate_err("`subsample_size` must be at least 1".into()))),
        (None, Some(ss)) if ss < size => ss,
        _ => {
            let device = crate::defaults::current().device;
            msg.value = Some(Tensor::arange(0u32, size as u32, &device)?);
            size
        }
    };
    msg.plate = Some(CondIndepFrame { name: name.to_string(), dim, size, subsample_size, counter: 0 });
    let ours = msg.value.as_ref().map(Tensor::id);
    apply_stack(&mut msg)?;
    let idx = msg.value.ok_or_else(|| located(plate_err("no indices after the handler stack".into())))?;
    if Some(idx.id()) == ours {
        return Ok(idx); // checked above, or `0..size`
    }
    check_indices(name, size, &idx).map_err(located)
}

/// The default behaviour of a plate site without indices: a uniform random subset of
/// `subsample_size` of `0..size` without replacement (partial Fisher–Yates), from the seeded RNG.
pub(crate) fn draw_subsample(size: usize, subsample_size: usize) -> Result<Tensor> {
    let device = crate::defaults::current().device;
    let ss = subsample_size.min(size);
    let picked = runtime::with_rng(|rng| {
        let mut all: Vec<u32> = (0..size as u32).collect();
        for i in 0..ss {
            let j = i + (rng.uniform_open01() * (size - i) as f64) as usize;
            all.swap(i, j.min(size - 1));
        }
        all.truncate(ss);
        all
    });
    Ok(Tensor::from_vec(picked, ss, &device)?)
}

/// Subsample indices must be a 1-d tensor of integers in `0..size` (an integer dtype, or a
/// float dtype holding whole numbers); returns them as U32.
fn check_indices(name: &str, size: usize, idx: &Tensor) -> Result<Tensor> {
    let plate_err = |message: String| Error::Plate { plate: name.to_string(), message };
    if idx.rank() != 1 {
        return Err(plate_err(format!("`subsample` must be a 1-d index tensor, got shape {:?}", idx.dims())));
    }
    if idx.dtype() == DType::U32 && !crate::defaults::validation_enabled() {
        return Ok(idx.clone());
    }
    if idx.dtype().is_float() {
        let v: Vec<f64> = idx.to_dtype(DType::F64)?.to_vec1()?;
        if let Some(bad) = v.iter().find(|x| x.fract() != 0.0 || !x.is_finite()) {
            return Err(plate_err(format!(
                "subsample indices must be whole numbers: expected an integer tensor (U32 or I64), got {:?} holding {bad}",
                idx.dtype()
            )));
        }
    }
    let v: Vec<i64> = idx.to_dtype(DType::I64)?.to_vec1()?;
    if let Some(bad) = v.iter().find(|&&i| i < 0 || i as usize >= size) {
        return Err(plate_err(format!("subsample index {bad} is out of range for a plate of size {size}")));
    }
    Ok(idx.to_dtype(DType::U32)?)
}
