//! The primitives a model is written with: `sample`, `param`, `plate`, `factor`,
//! `deterministic` and `module`. Each builds a [`Message`] and sends it through the handler stack.
//!
//! The `sample!`/`param!`/`plate!`/... macros expand to the `*_with` forms, passing the site's
//! static metadata so that errors quote its source location.

use crate::dist::{Constraint, DistRef, IntoDist};
use crate::error::{Error, Result};
use crate::handlers::plate::PlateHandler;
use crate::runtime::{self, apply_stack};
use crate::site::{InferConfig, Message, ParamInit, ParamSpec, SiteKind, SiteMeta};
use candle_core::{DType, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

/// Options of a sample site.
#[derive(Clone, Debug, Default)]
pub struct SampleOptions {
    /// Observed value: the site is conditioned on it.
    pub obs: Option<Tensor>,
    /// A 0/1 mask broadcastable to the batch shape.
    pub mask: Option<Tensor>,
    /// Inference configuration.
    pub infer: Option<InferConfig>,
    /// Static metadata from the macros.
    pub meta: Option<&'static SiteMeta>,
}

/// Draws (or observes) the random variable `name` from `dist`, as Pyro's `pyro.sample`.
pub fn sample_with(name: impl Into<String>, dist: impl IntoDist, opts: SampleOptions) -> Result<Tensor> {
    let mut msg = Message::new(name.into(), SiteKind::Sample);
    let dist: DistRef = dist.into_dist();
    msg.meta = opts.meta;
    if let Some(obs) = opts.obs {
        if obs.dtype() != dist.dtype() && obs.dtype().is_float() {
            return Err(Error::DTypeMismatch {
                context: format!("`{}` observation", dist.name()),
                a: "distribution".into(),
                a_dtype: dist.dtype(),
                b: "obs".into(),
                b_dtype: obs.dtype(),
            }
            .at_site(&msg.name, msg.location()));
        }
        msg.value = Some(obs);
        msg.is_observed = true;
    }
    msg.dist = Some(dist);
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
/// assert_eq!(tr.log_prob_sum()?.unwrap().to_scalar::<f32>()?, -2.5);
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
/// or the subsample.
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
    let indices = subsample_indices(&name, size, &opts).map_err(located)?;
    let (dim, _dim_guard) = runtime::allocate_dim(&name, opts.dim).map_err(located)?;
    let handler = PlateHandler::new(name.clone(), Some(dim), size, indices.dim(0)?);
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
    let indices = subsample_indices(&name, size, &opts)?;
    let idx: Vec<u32> = indices.to_vec1()?;
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
/// next index, and the sites sampled until the next step lie in that iteration's frame.
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
    let indices: Vec<u32> = subsample_indices(&name, size, &opts)?.to_vec1()?;
    Ok(SeqPlateIter { name, size, indices, pos: 0, frame: None })
}

/// The iterator of [`seq_plate_iter`]; its current frame is uninstalled at the next step and
/// when the iterator is dropped (e.g. on `break`).
pub struct SeqPlateIter {
    name: String,
    size: usize,
    indices: Vec<u32>,
    pos: usize,
    frame: Option<runtime::HandlerGuard>,
}

impl Iterator for SeqPlateIter {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.frame = None;
        let &index = self.indices.get(self.pos)?;
        let mut handler = PlateHandler::new(self.name.clone(), None, self.size, self.indices.len());
        handler.counter = self.pos;
        self.frame = Some(runtime::install(Rc::new(RefCell::new(handler))));
        self.pos += 1;
        Some(index as usize)
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

fn subsample_indices(name: &str, size: usize, opts: &PlateOptions) -> Result<Tensor> {
    let device = crate::defaults::current().device;
    let plate_err = |message: String| Error::Plate { plate: name.to_string(), message };
    match (&opts.subsample, opts.subsample_size) {
        (Some(idx), ss) => {
            if idx.rank() != 1 {
                return Err(plate_err(format!("`subsample` must be a 1-d index tensor, got shape {:?}", idx.dims())));
            }
            if let Some(ss) = ss
                && ss != idx.dim(0)?
            {
                return Err(plate_err(format!("`subsample_size` is {ss} but `subsample` has {} indices", idx.dim(0)?)));
            }
            let v: Vec<i64> = idx.to_dtype(DType::I64)?.to_vec1()?;
            if let Some(bad) = v.iter().find(|&&i| i < 0 || i as usize >= size) {
                return Err(plate_err(format!("subsample index {bad} is out of range for a plate of size {size}")));
            }
            Ok(idx.to_dtype(DType::U32)?)
        }
        (None, Some(ss)) if ss > size => {
            Err(plate_err(format!("`subsample_size` {ss} is larger than the plate's size {size}")))
        }
        (None, Some(0)) => Err(plate_err("`subsample_size` must be at least 1".into())),
        (None, Some(ss)) if ss < size => {
            // A uniform random subset without replacement (partial Fisher–Yates), from the seeded RNG.
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
        _ => Ok(Tensor::arange(0u32, size as u32, &device)?),
    }
}
