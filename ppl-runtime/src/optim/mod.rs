//! Optimizers that update the parameters of a [`ParamStore`] in place, in one pass per parameter.
//!
//! Each optimizer is a [`Fused`] engine around an update rule ([`AdamConfig`], [`ClippedAdamConfig`],
//! [`AdamWConfig`], [`SgdConfig`], [`RmsPropConfig`]). On the CPU one Candle `InplaceOp2` kernel
//! reads the gradient and rewrites the parameter and its moment buffers element by element (no
//! tensor is allocated); on other devices, or with `PPL_GENERIC_KERNELS=1`, the same rule runs as
//! a composition of Candle ops and `Var::set`.
//!
//! State (moments, step counts) is created lazily per parameter *name*, so parameters created in
//! the middle of training, or replaced by a load, are picked up. Options may differ per parameter
//! through a closure over the name ([`Fused::per_param`]); a [`Scheduled`] optimizer changes the
//! learning rate over time.
//!
//! ```
//! use ppl_runtime::{optim::{Adam, Optimizer}, params::ParamStore, dist::Constraint};
//! use candle_core::{Device, Tensor};
//! let store = ParamStore::new();
//! store.set("w", &Tensor::new(&[1f32, -2.0], &Device::Cpu)?, Constraint::Real)?;
//! let w = store.get_unconstrained("w").unwrap();
//! let mut adam = Adam::new(0.1);
//! for _ in 0..200 {
//!     let loss = w.as_tensor().sqr()?.sum_all()?;      // minimum at 0
//!     adam.step(&store, &loss.backward()?)?;
//! }
//! assert!(w.as_tensor().abs()?.max(0)?.to_scalar::<f32>()? < 0.05);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

mod kernel;
mod rules;
mod schedulers;

pub use rules::{AdamConfig, AdamWConfig, ClippedAdamConfig, RmsPropConfig, SgdConfig};
pub use schedulers::{ExponentialLr, OneCycleLr, ReduceLrOnPlateau, Schedule, Scheduled, StepLr};

use crate::error::{Error, Result};
use crate::params::ParamStore;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use std::collections::HashMap;

/// An optimizer over the parameters of a [`ParamStore`].
pub trait Optimizer {
    /// Updates, in place, every parameter of `params` that has a gradient in `grads`.
    fn step(&mut self, params: &ParamStore, grads: &GradStore) -> Result<()>;

    /// Tells the optimizer the loss of the step just taken (used by [`ReduceLrOnPlateau`]).
    fn observe_loss(&mut self, _loss: f64) {}

    /// Multiplies every learning rate by `factor` from now on (schedulers set this).
    fn set_lr_factor(&mut self, factor: f64);

    /// The optimizer's state as named tensors, for saving.
    fn state(&self) -> Result<Vec<(String, Tensor)>>;

    /// Restores state written by [`Optimizer::state`]; parameters absent from it start afresh.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

impl<O: Optimizer + ?Sized> Optimizer for Box<O> {
    fn step(&mut self, params: &ParamStore, grads: &GradStore) -> Result<()> {
        (**self).step(params, grads)
    }
    fn observe_loss(&mut self, loss: f64) {
        (**self).observe_loss(loss)
    }
    fn set_lr_factor(&mut self, factor: f64) {
        (**self).set_lr_factor(factor)
    }
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        (**self).state()
    }
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        (**self).load_state(state)
    }
}

/// An elementwise update rule with `SLOTS` state values per parameter element.
pub trait Rule: Clone + 'static {
    /// Name, for errors and kernels.
    const NAME: &'static str;
    /// State values per element (Adam: 2, SGD with momentum: 1).
    const SLOTS: usize;
    /// Per-step constants derived from the rule, the learning-rate factor and the step `t` (1-based).
    type Consts: Copy + Send + Sync;
    /// The constants of step `t`.
    fn consts(&self, lr_factor: f64, t: u64) -> Self::Consts;
    /// Updates one element: returns the new parameter value; `slots` holds its `SLOTS` state values.
    fn update(c: &Self::Consts, p: f64, g: f64, slots: &mut [f64]) -> f64;
    /// The same update as a composition of Candle ops (any device): returns the new parameter and
    /// replaces `slots` (each shaped like the parameter) with their new values.
    fn update_tensors(c: &Self::Consts, p: &Tensor, g: &Tensor, slots: &mut [Tensor]) -> Result<Tensor>;
}

enum Slots {
    /// Interleaved host values, `SLOTS` per element (the CPU kernel's layout).
    Host(Vec<f64>),
    /// One tensor per slot, shaped and typed like the parameter.
    Device(Vec<Tensor>),
}

struct ParamState<C> {
    t: u64,
    dims: Vec<usize>,
    config: C,
    slots: Slots,
}

/// Options per parameter name (see [`Fused::per_param`]).
pub type PerParam<C> = Box<dyn Fn(&str) -> C>;

/// The engine behind every ppl optimizer: lazily created per-parameter state and a fused update.
/// Use it through its aliases [`Adam`], [`ClippedAdam`], [`AdamW`], [`Sgd`], [`RmsProp`].
pub struct Fused<C: Rule> {
    default: C,
    per_param: Option<PerParam<C>>,
    lr_factor: f64,
    force_generic: bool,
    state: HashMap<String, ParamState<C>>,
}

/// Adam (Kingma & Ba), as `torch.optim.Adam`.
pub type Adam = Fused<AdamConfig>;
/// Adam with elementwise gradient clipping and a learning rate decaying by `lrd` each step (Pyro's `ClippedAdam`).
pub type ClippedAdam = Fused<ClippedAdamConfig>;
/// Adam with decoupled weight decay, as `torch.optim.AdamW`.
pub type AdamW = Fused<AdamWConfig>;
/// Stochastic gradient descent with optional (Nesterov) momentum, as `torch.optim.SGD`.
pub type Sgd = Fused<SgdConfig>;
/// RMSprop, as `torch.optim.RMSprop` (not centered).
pub type RmsProp = Fused<RmsPropConfig>;

impl<C: Rule> Fused<C> {
    /// An optimizer applying `config` to every parameter.
    pub fn with_config(config: C) -> Self {
        Fused { default: config, per_param: None, lr_factor: 1.0, force_generic: false, state: HashMap::new() }
    }

    /// Options per parameter: `f(name)` gives the rule of each parameter (called once, when its
    /// state is created).
    ///
    /// ```
    /// use ppl_runtime::optim::{Adam, AdamConfig};
    /// let adam = Adam::new(0.01).per_param(|name| {
    ///     let lr = if name.starts_with("decoder.") { 1e-3 } else { 1e-2 };
    ///     AdamConfig { lr, ..Default::default() }
    /// });
    /// # let _ = adam;
    /// ```
    pub fn per_param(mut self, f: impl Fn(&str) -> C + 'static) -> Self {
        self.per_param = Some(Box::new(f));
        self
    }

    /// Uses the composed-ops path even on the CPU (the path GPUs take); for tests.
    pub fn generic_kernels(mut self, on: bool) -> Self {
        self.force_generic = on;
        self
    }

    /// The number of steps taken for parameter `name` (0 if it has no state yet).
    pub fn steps_of(&self, name: &str) -> u64 {
        self.state.get(name).map_or(0, |s| s.t)
    }

    fn update_one(&mut self, name: &str, var: &Var, grad: &Tensor) -> Result<()> {
        let located = |e: Error| e.at_site(name, None);
        if grad.dims() != var.dims() {
            return Err(located(Error::shape_mismatch(format!("{}: gradient of parameter", C::NAME), var.dims(), grad.dims())));
        }
        let fused = crate::dist::kernels::cpu_kernels(var.device()) && !self.force_generic;
        if self.state.get(name).is_none_or(|st| st.dims != var.dims()) {
            let config = self.per_param.as_ref().map_or_else(|| self.default.clone(), |f| f(name));
            let st = ParamState { t: 0, dims: var.dims().to_vec(), config, slots: Slots::Host(Vec::new()) };
            self.state.insert(name.to_string(), st);
        }
        let st = self.state.get_mut(name).expect("created above");
        st.t += 1;
        let consts = st.config.consts(self.lr_factor, st.t);
        let n = var.elem_count();
        if fused {
            let host = host_slots(&mut st.slots, n, C::SLOTS)?;
            let grad = if grad.dtype() == var.dtype() { grad.clone() } else { grad.to_dtype(var.dtype())? };
            let grad = if grad.is_contiguous() { grad } else { grad.contiguous()? };
            let op = kernel::HostStep::<C>::new(consts, host);
            var.as_tensor().inplace_op2(&grad, &op).map_err(|e| located(e.into()))
        } else {
            let slots = device_slots(&mut st.slots, var.as_tensor(), C::SLOTS)?;
            // Detached: the gradient's own graph (and the parameter's) must not be recorded into
            // the optimizer state, or every step's state would keep all earlier graphs alive.
            let grad = grad.to_dtype(var.dtype())?.detach();
            let new = C::update_tensors(&consts, &var.as_tensor().detach(), &grad, slots).map_err(located)?;
            var.set(&new).map_err(|e| located(e.into()))
        }
    }
}

fn host_slots(slots: &mut Slots, n: usize, k: usize) -> Result<&mut Vec<f64>> {
    if let Slots::Device(ts) = slots {
        let mut inter = vec![0.0; n * k];
        if ts.len() == k && ts.iter().all(|t| t.elem_count() == n) {
            for (j, t) in ts.iter().enumerate() {
                for (i, x) in t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?.into_iter().enumerate() {
                    inter[i * k + j] = x;
                }
            }
        }
        *slots = Slots::Host(inter);
    }
    match slots {
        Slots::Host(v) => {
            if v.len() != n * k {
                *v = vec![0.0; n * k];
            }
            Ok(v)
        }
        Slots::Device(_) => unreachable!("converted above"),
    }
}

fn device_slots<'a>(slots: &'a mut Slots, like: &Tensor, k: usize) -> Result<&'a mut [Tensor]> {
    let n = like.elem_count();
    let ts: Vec<Tensor> = match std::mem::replace(slots, Slots::Host(Vec::new())) {
        Slots::Host(v) if n > 0 && v.len() == n * k => (0..k)
            .map(|j| {
                let col: Vec<f64> = v.iter().skip(j).step_by(k).copied().collect();
                Tensor::from_vec(col, like.dims(), like.device())?.to_dtype(like.dtype())
            })
            .collect::<candle_core::Result<_>>()?,
        Slots::Device(ts) if ts.len() == k && ts.iter().all(|t| t.dims() == like.dims()) => ts
            .iter()
            .map(|t| t.to_device(like.device())?.to_dtype(like.dtype()))
            .collect::<candle_core::Result<_>>()?,
        _ => (0..k).map(|_| like.zeros_like()).collect::<candle_core::Result<_>>()?,
    };
    *slots = Slots::Device(ts);
    match slots {
        Slots::Device(ts) => Ok(ts.as_mut_slice()),
        Slots::Host(_) => unreachable!("set above"),
    }
}

impl<C: Rule> Optimizer for Fused<C> {
    fn step(&mut self, params: &ParamStore, grads: &GradStore) -> Result<()> {
        for (name, var) in params.vars() {
            if let Some(g) = grads.get(var.as_tensor()) {
                self.update_one(&name, &var, g)?;
            }
        }
        Ok(())
    }

    fn set_lr_factor(&mut self, factor: f64) {
        self.lr_factor = factor;
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let dev = candle_core::Device::Cpu;
        let mut out = Vec::new();
        let mut names: Vec<&String> = self.state.keys().collect();
        names.sort();
        for name in names {
            let st = &self.state[name];
            out.push((format!("{name}#t"), Tensor::new(st.t as f64, &dev)?));
            match &st.slots {
                Slots::Host(v) if !v.is_empty() => {
                    let k = C::SLOTS;
                    for j in 0..k {
                        let col: Vec<f64> = v.iter().skip(j).step_by(k).copied().collect();
                        out.push((format!("{name}#{j}"), Tensor::from_vec(col, st.dims.as_slice(), &dev)?));
                    }
                }
                Slots::Device(ts) => {
                    for (j, t) in ts.iter().enumerate() {
                        out.push((format!("{name}#{j}"), t.to_device(&dev)?.to_dtype(DType::F64)?));
                    }
                }
                Slots::Host(_) => {}
            }
        }
        Ok(out)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.state.clear();
        for (key, t) in state {
            let Some(name) = key.strip_suffix("#t") else { continue };
            if name == "__schedule" {
                continue;
            }
            let steps = t.to_dtype(DType::F64)?.to_scalar::<f64>()? as u64;
            let slots: Vec<Tensor> = (0..C::SLOTS)
                .map_while(|j| state.get(&format!("{name}#{j}")).cloned())
                .collect();
            let dims = slots.first().map(|s| s.dims().to_vec()).unwrap_or_default();
            if !slots.is_empty() && slots.len() != C::SLOTS {
                return Err(Error::invalid_arg(
                    C::NAME,
                    "state",
                    format!("parameter `{name}` has {} state tensors, expected {}", slots.len(), C::SLOTS),
                ));
            }
            let config = self.per_param.as_ref().map_or_else(|| self.default.clone(), |f| f(name));
            self.state.insert(name.to_string(), ParamState { t: steps, dims, config, slots: Slots::Device(slots) });
        }
        Ok(())
    }
}
