//! The potential of a model (NumPyro's `initialize_model` / `potential_fn`): the joint
//! log-density over one flat, unconstrained `f64` vector, with its gradient by Candle autodiff.
//!
//! One traced run fixes the [`Layout`]: every continuous latent sample site gets an offset in the
//! flat vector, its constrained shape, and the bijection `biject_to(support)` from the reals onto
//! its support. [`ModelPotential`] then evaluates
//!
//! `log p(x) = Σ_sites log p(site | ..) + Σ_latent log |det J(x_site)|`
//!
//! by running the model with each latent value substituted from `x`; observed sites, factors,
//! plates, `scale` and `mask` count exactly as in a trace. Samplers see only the [`Potential`]
//! trait, so a faster potential (a recorded tape, hand-fused likelihoods) can replace this one
//! without touching them.
//!
//! # Dtype
//!
//! The potential runs in `f64` by default, whatever the thread's default dtype: scalar
//! parameters (`Normal::new(0.0, 5.0)`) are made in the potential's dtype, and an observed value
//! of another float dtype is converted once (the conversion is cached per site). Tensors that the
//! model *computes with* (covariates, known standard errors) must have the potential's dtype
//! too: the MCMC runner casts the model's arguments once through [`CastArgs`] (implemented for
//! tensors, tuples, `Vec`, arrays, `Option`, `HashMap`, references-free plain data); implement it
//! for your own argument struct, or run in the data's dtype with `McmcConfig::dtype`.
//!
//! ```
//! use ppl_runtime::{dist::Normal, infer::{Layout, ModelPotential, Potential}};
//! use candle_core::{DType, Device};
//! // log p(mu) = log N(mu | 0, 1) + log N(1.5 | mu, 1): the gradient at mu = 0 is 1.5.
//! let model = |y: &f64| -> ppl_runtime::Result<()> {
//!     let mu = ppl_runtime::sample("mu", Normal::new(0.0, 1.0)?)?;
//!     ppl_runtime::observe("y", Normal::new(&mu, 1.0)?, &candle_core::Tensor::new(*y, mu.device())?)?;
//!     Ok(())
//! };
//! let mut pot = ModelPotential::new(&model, &1.5, DType::F64, &Device::Cpu)?;
//! assert_eq!(pot.dim(), 1);
//! let mut grad = [0.0];
//! let lp = pot.log_density(&[0.0], &mut grad)?;
//! assert!((grad[0] - 1.5).abs() < 1e-12);
//! assert!((lp - (-(2.0 * std::f64::consts::PI).ln() - 1.125)).abs() < 1e-12);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

use crate::defaults;
use crate::dist::{Constraint, TransformRef, biject_to};
use crate::error::{Error, Result};
use crate::handlers::enum_::EnumHandler;
use crate::handlers::{Data, seed, trace};
use crate::infer::enum_::build;
use crate::infer::enum_::contract::Semiring;
use crate::infer::program::Program;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};
use crate::trace::Trace;
use candle_core::{DType, Device, Tensor, TensorId, Var};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// A log-density over a flat unconstrained vector and its gradient: all that a gradient-based
/// sampler (NUTS, HMC) sees of a model.
pub trait Potential {
    /// Number of unconstrained coordinates.
    fn dim(&self) -> usize;

    /// Writes `∇ log p(position)` into `grad` and returns `log p(position)` (the negative
    /// potential energy). A [recoverable](is_recoverable) error (a non-finite log-density, a
    /// parameter outside its constraint at an extreme point) makes a sampler record a
    /// divergence; any other error stops it.
    fn log_density(&mut self, position: &[f64], grad: &mut [f64]) -> Result<f64>;

    /// How many times [`Potential::log_density`] has run (gradient evaluations).
    fn num_evaluations(&self) -> u64;
}

/// Whether a sampler may treat `err` as a divergence and go on: a non-finite log-density, or a
/// distribution argument or value outside its constraint (which happens at extreme points).
pub fn is_recoverable(err: &Error) -> bool {
    matches!(
        err.root(),
        Error::NonFiniteLogDensity { .. } | Error::InvalidParameter { .. } | Error::OutOfSupport { .. }
    )
}

/// Where one latent site lives in the flat unconstrained vector.
#[derive(Clone, Debug)]
pub struct SiteLayout {
    /// The site's name.
    pub name: String,
    /// Offset of its first coordinate in the flat vector.
    pub offset: usize,
    /// Shape of the constrained value (as the model sees it).
    pub shape: Vec<usize>,
    /// Shape of the unconstrained value.
    pub unconstrained_shape: Vec<usize>,
    /// The support of the site's distribution.
    pub support: Constraint,
    /// `biject_to(support)`: unconstrained → constrained.
    pub transform: TransformRef,
}

impl SiteLayout {
    /// Number of unconstrained coordinates.
    pub fn numel(&self) -> usize {
        self.unconstrained_shape.iter().product()
    }

    /// The constrained value for the unconstrained coordinates `x` (whose leading dims, before
    /// `unconstrained_shape`, are batch dims), and `log |det J|` summed over all but those
    /// leading `batch` dims.
    pub fn constrain(&self, x: &Tensor, batch: usize) -> Result<(Tensor, Tensor)> {
        let y = self.transform.forward(x)?;
        let ladj = self.transform.log_abs_det_jacobian(x, &y)?;
        let keep = batch;
        let ladj = if ladj.rank() > keep { ladj.flatten_from(keep)?.sum(keep)? } else { ladj };
        Ok((y, ladj))
    }
}

/// Runs `f`, turning a panic inside it into an error (so a model that panics stops its chain
/// with an error instead of tearing down the run).
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Err(Error::invalid_arg("MCMC", "model", format!("the model panicked: {msg}")))
        }
    }
}

/// Whether `biject_to(c)` is the identity (no transform, no Jacobian).
fn is_real(c: &Constraint) -> bool {
    match c {
        Constraint::Real | Constraint::RealVector => true,
        Constraint::Independent(base, _) => is_real(base),
        _ => false,
    }
}

/// The continuous latent sites of a model, laid out in one flat unconstrained vector, in the
/// order the model first ran them. Shared by MCMC and the autoguides.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    sites: Vec<SiteLayout>,
    index: HashMap<String, usize>,
    dim: usize,
    /// `Some(max_plate_nesting)` when the model has enumerated discrete sites, which the
    /// potential sums out.
    enumerate: Option<usize>,
}

impl Layout {
    /// The layout of the latent sample sites of `trace` (not observed, not intervened).
    /// Enumerated sites (`enumerate = parallel` with a finite support) are left out: the
    /// potential sums them out. Any other discrete latent site is an error naming it.
    pub fn from_trace(trace: &Trace) -> Result<Layout> {
        let mut layout = Layout::default();
        for site in trace.latent_sites() {
            let dist = site.dist()?;
            let located = |e: Error| e.at_site(&site.name, site.location());
            let support = dist.support();
            if site.infer.enumerate == Some(crate::site::Enumerate::Sequential) {
                return Err(located(Error::Enumeration(
                    "the site is marked `enumerate = sequential`, which only TraceEnumElbo does (one run per value); \
                     for MCMC mark it `enumerate = parallel`"
                        .into(),
                )));
            }
            if site.infer.enumerate.is_some() && dist.has_enumerate_support() {
                layout.enumerate = Some(crate::infer::enum_::plate_nesting(trace));
                continue;
            }
            if support.is_discrete() || site.infer.enumerate.is_some() {
                return Err(located(Error::Unsupported {
                    dist: dist.name(),
                    method: "MCMC over a discrete latent site",
                    hint: Some(format!(
                        "the latent site has the discrete support `{support}`; HMC/NUTS need continuous latent \
                         sites: observe it, enumerate it (`enumerate = parallel` or `config_enumerate(model)`; finite \
                         supports only), or sum it out by hand with `factor`"
                    )),
                }));
            }
            let value = site.value()?;
            let transform = biject_to(&support).map_err(located)?;
            let shape = value.dims().to_vec();
            let unconstrained_shape = transform.inverse_shape(&shape).map_err(located)?;
            let s = SiteLayout {
                name: site.name.clone(),
                offset: layout.dim,
                shape,
                unconstrained_shape,
                support,
                transform,
            };
            layout.dim += s.numel();
            layout.index.insert(s.name.clone(), layout.sites.len());
            layout.sites.push(s);
        }
        Ok(layout)
    }

    /// Total number of unconstrained coordinates.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `Some(max_plate_nesting)` when the model has enumerated discrete sites (summed out by
    /// the potential, not part of the flat vector).
    pub fn enumerated(&self) -> Option<usize> {
        self.enumerate
    }

    /// The sites in flat-vector order.
    pub fn sites(&self) -> &[SiteLayout] {
        &self.sites
    }

    /// The site named `name`.
    pub fn get(&self, name: &str) -> Option<&SiteLayout> {
        self.index.get(name).map(|&i| &self.sites[i])
    }

    /// Index of site `name` in [`Layout::sites`].
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The flat unconstrained vector of constrained site values (`biject_to(support)⁻¹`); every
    /// site of the layout must be in `values`.
    pub fn unconstrain(&self, values: &Data) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.dim);
        for s in &self.sites {
            let v = values.get(&s.name).ok_or_else(|| {
                Error::invalid_arg(
                    "Layout::unconstrain",
                    "values",
                    format!("no value for the latent site `{}`", s.name),
                )
            })?;
            if v.dims() != s.shape.as_slice() {
                return Err(Error::shape_mismatch(
                    format!("Layout::unconstrain: site `{}`", s.name),
                    &s.shape,
                    v.dims(),
                ));
            }
            let x = s.transform.inverse(&v.to_dtype(DType::F64)?)?;
            out.extend(x.flatten_all()?.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    /// The constrained values of `n` flat vectors stacked row-wise in `positions`
    /// (`n * dim` numbers): one tensor `[n, ..shape]` per site, in `dtype` on `device`.
    pub fn constrain_batch(&self, positions: &[f64], n: usize, dtype: DType, device: &Device) -> Result<Data> {
        if positions.len() != n * self.dim {
            return Err(Error::shape_mismatch(
                "Layout::constrain_batch: positions",
                &[n, self.dim],
                &[positions.len()],
            ));
        }
        let all = Tensor::from_slice(positions, (n, self.dim), device)?.to_dtype(dtype)?;
        let mut out = Data::new();
        for s in &self.sites {
            let mut shape = vec![n];
            shape.extend(&s.unconstrained_shape);
            let x = all.narrow(1, s.offset, s.numel())?.contiguous()?.reshape(shape)?;
            out.insert(s.name.clone(), s.transform.forward(&x)?);
        }
        Ok(out)
    }
}

/// Model arguments that can be cast to another float dtype once, before a run (so that tensors
/// a model computes with match the `f64` potential). Float tensors are converted; integer
/// tensors and plain data are kept.
///
/// ```
/// use ppl_runtime::infer::CastArgs;
/// use candle_core::{DType, Device, Tensor};
/// let args = (Tensor::new(&[1f32, 2.], &Device::Cpu)?, 3usize, Some(Tensor::new(&[1u32], &Device::Cpu)?));
/// let cast = args.cast_args(DType::F64)?;
/// assert_eq!(cast.0.dtype(), DType::F64);
/// assert_eq!(cast.2.unwrap().dtype(), DType::U32);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub trait CastArgs: Sized {
    /// A copy with every float tensor converted to `dtype`.
    fn cast_args(&self, dtype: DType) -> Result<Self>;
}

impl CastArgs for Tensor {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        if self.dtype().is_float() && self.dtype() != dtype { Ok(self.to_dtype(dtype)?) } else { Ok(self.clone()) }
    }
}

macro_rules! cast_args_plain {
    ($($t:ty),*) => {$(
        impl CastArgs for $t {
            fn cast_args(&self, _dtype: DType) -> Result<Self> {
                Ok(self.clone())
            }
        }
    )*};
}
cast_args_plain!((), bool, f32, f64, i32, i64, u8, u32, u64, usize, String, &'static str, Device);

impl<T: CastArgs> CastArgs for Vec<T> {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        self.iter().map(|x| x.cast_args(dtype)).collect()
    }
}

impl<T: CastArgs> CastArgs for Option<T> {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        self.as_ref().map(|x| x.cast_args(dtype)).transpose()
    }
}

impl<T: CastArgs> CastArgs for Box<T> {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        Ok(Box::new((**self).cast_args(dtype)?))
    }
}

impl<T: CastArgs> CastArgs for Arc<T> {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        Ok(Arc::new((**self).cast_args(dtype)?))
    }
}

impl<T: CastArgs, const N: usize> CastArgs for [T; N] {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        let v: Vec<T> = self.iter().map(|x| x.cast_args(dtype)).collect::<Result<_>>()?;
        Ok(v.try_into().unwrap_or_else(|_| unreachable!("the length is N")))
    }
}

impl<K: Clone + Eq + std::hash::Hash, T: CastArgs> CastArgs for HashMap<K, T> {
    fn cast_args(&self, dtype: DType) -> Result<Self> {
        self.iter().map(|(k, v)| Ok((k.clone(), v.cast_args(dtype)?))).collect()
    }
}

macro_rules! cast_args_tuple {
    ($($n:tt $t:ident),+) => {
        impl<$($t: CastArgs),+> CastArgs for ($($t,)+) {
            fn cast_args(&self, dtype: DType) -> Result<Self> {
                Ok(($(self.$n.cast_args(dtype)?,)+))
            }
        }
    };
}
cast_args_tuple!(0 A);
cast_args_tuple!(0 A, 1 B);
cast_args_tuple!(0 A, 1 B, 2 C);
cast_args_tuple!(0 A, 1 B, 2 C, 3 D);
cast_args_tuple!(0 A, 1 B, 2 C, 3 D, 4 E);
cast_args_tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
cast_args_tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
cast_args_tuple!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);

/// What the potential's handler shares with the potential between runs.
struct PotentialState {
    /// Constrained latent values of this run, by layout index.
    values: Vec<Option<Tensor>>,
    /// Name → layout index.
    index: HashMap<String, usize>,
    /// Whether each latent site was visited in this run.
    seen: Vec<bool>,
    /// The running sum of the sites' log-densities.
    total: Option<Tensor>,
    /// The potential's dtype.
    dtype: DType,
    /// Observed values converted to `dtype`: site → (original tensor, converted tensor).
    converted: HashMap<String, (TensorId, Tensor)>,
    /// Enumerating: log-densities are contracted from a trace after the run, not summed here.
    enumerating: bool,
}

/// Substitutes latent values and sums log-densities as sites go by.
struct PotentialHandler {
    state: Rc<RefCell<PotentialState>>,
}

impl Handler for PotentialHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind != SiteKind::Sample {
            return Ok(());
        }
        let mut st = self.state.borrow_mut();
        if msg.is_observed {
            if let Some(obs) = &msg.value
                && obs.dtype().is_float()
                && obs.dtype() != st.dtype
            {
                let id = obs.id();
                let converted = match st.converted.get(&msg.name) {
                    Some((orig, t)) if *orig == id => t.clone(),
                    _ => {
                        let t = obs.to_dtype(st.dtype)?;
                        st.converted.insert(msg.name.clone(), (id, t.clone()));
                        t
                    }
                };
                msg.value = Some(converted);
            }
            return Ok(());
        }
        if msg.intervened || msg.infer.enum_dim.is_some() {
            return Ok(());
        }
        match st.index.get(&msg.name).copied() {
            Some(i) => {
                st.seen[i] = true;
                msg.value = st.values[i].clone();
                Ok(())
            }
            None => Err(Error::invalid_arg(
                "potential",
                "model",
                "this latent site was not in the model's first run; MCMC needs the same latent sites at every run",
            )),
        }
    }

    fn postprocess(&mut self, msg: &mut Message) -> Result<()> {
        if !msg.has_log_prob() || self.state.borrow().enumerating {
            return Ok(());
        }
        let lp = site_log_prob_sum(msg)?;
        let mut st = self.state.borrow_mut();
        st.total = Some(match st.total.take() {
            None => lp,
            Some(t) => (t + lp)?,
        });
        Ok(())
    }
}

/// `Σ log p(value)` of one site, masked and scaled (as a trace counts it), as a scalar.
pub(crate) fn site_log_prob_sum(msg: &Message) -> Result<Tensor> {
    match msg.log_prob()? {
        Some(lp) => Ok(lp.sum_all()?),
        None => Err(Error::invalid_arg("potential", "site", "the site has no log-density")),
    }
}

/// The potential of a model over its arguments: the joint log-density of one run with the
/// latent values taken from a flat unconstrained vector, plus `log |det J|` of the bijections.
///
/// Evaluations validate distribution arguments and observed values as the thread's defaults say
/// until one succeeds (so bad data is caught at the starting point); later evaluations run with
/// validation off, saving its host copies (a parameter outside its constraint at an extreme
/// point then gives a NaN log-density, which is recoverable).
pub struct ModelPotential<'m, A: ?Sized, M, P: Program<A, M>> {
    model: &'m P,
    args: &'m A,
    layout: Layout,
    device: Device,
    dtype: DType,
    state: Rc<RefCell<PotentialState>>,
    evaluations: u64,
    validated: bool,
    vars: Vec<Var>,
    _marker: std::marker::PhantomData<fn() -> M>,
}

impl<'m, A: ?Sized, M, P: Program<A, M>> ModelPotential<'m, A, M, P> {
    /// Traces one run of `model` (seeded, values drawn from the prior) to fix the layout, and
    /// builds its potential in `dtype` on `device`.
    pub fn new(model: &'m P, args: &'m A, dtype: DType, device: &Device) -> Result<Self> {
        let layout = {
            let _d =
                defaults::set_defaults(defaults::Defaults { dtype, device: device.clone(), ..defaults::current() });
            let (_, tr) = seed(0, || trace(|| model.run(args)))?;
            Layout::from_trace(&tr)?
        };
        Ok(Self::with_layout(model, args, layout, dtype, device))
    }

    /// The potential of `model` over a known layout.
    pub fn with_layout(model: &'m P, args: &'m A, layout: Layout, dtype: DType, device: &Device) -> Self {
        let n = layout.sites().len();
        let index = layout.sites().iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        let state = PotentialState {
            values: vec![None; n],
            index,
            seen: vec![false; n],
            total: None,
            dtype,
            converted: HashMap::new(),
            enumerating: layout.enumerate.is_some(),
        };
        ModelPotential {
            model,
            args,
            layout,
            device: device.clone(),
            dtype,
            state: Rc::new(RefCell::new(state)),
            evaluations: 0,
            validated: false,
            vars: Vec::with_capacity(n),
            _marker: std::marker::PhantomData,
        }
    }

    /// The layout of the latent sites.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The dtype the potential computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the potential computes on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The scalar log-density tensor at `position` (with the graph to the unconstrained `Var`s
    /// kept in `self.vars`).
    fn forward(&mut self, position: &[f64]) -> Result<Tensor> {
        self.vars.clear();
        let mut total: Option<Tensor> = None;
        {
            let mut st = self.state.borrow_mut();
            for (i, s) in self.layout.sites.iter().enumerate() {
                let slice = &position[s.offset..s.offset + s.numel()];
                let var = match self.dtype {
                    DType::F64 => Var::from_slice(slice, s.unconstrained_shape.as_slice(), &self.device)?,
                    dt => Var::from_tensor(
                        &Tensor::from_slice(slice, s.unconstrained_shape.as_slice(), &self.device)?.to_dtype(dt)?,
                    )?,
                };
                // Real sites need no transform and add no Jacobian term: no ops at all.
                let y = if is_real(&s.support) {
                    var.as_tensor().clone()
                } else {
                    let (y, ladj) = s.constrain(var.as_tensor(), 0).map_err(|e| e.at_site(&s.name, None))?;
                    total = Some(match total {
                        None => ladj,
                        Some(t) => (t + ladj)?,
                    });
                    y
                };
                st.values[i] = Some(y);
                st.seen[i] = false;
                self.vars.push(var);
            }
            st.total = total;
        }
        let handler = PotentialHandler { state: self.state.clone() };
        let model = self.model;
        let args = self.args;
        let mut enumerated = None;
        let run = match self.layout.enumerate {
            None => catch_panic(|| with_handler(handler, || model.run(args)).0.map(|_| ())),
            // The enum handler lies inside the potential's handler, so enumerated values are set
            // before it substitutes the continuous ones; the trace records the log-densities.
            Some(nesting) => catch_panic(|| {
                let (res, enum_handler) =
                    with_handler(handler, || with_handler(EnumHandler::new(nesting), || trace(|| model.run(args)))).0;
                let (_, tr) = res?;
                enumerated = Some(build(&tr, enum_handler.vars(), nesting)?.log_joint(Semiring::LogSum)?);
                Ok(())
            }),
        };
        let mut st = self.state.borrow_mut();
        if let Some(lp) = enumerated {
            st.total = Some(match st.total.take() {
                None => lp,
                Some(t) => (t + lp)?,
            });
        }
        for v in st.values.iter_mut() {
            *v = None;
        }
        run?;
        if let Some(i) = st.seen.iter().position(|s| !s) {
            return Err(Error::invalid_arg(
                "potential",
                "model",
                "the latent site did not run; MCMC needs the same latent sites at every run",
            )
            .at_site(&self.layout.sites[i].name, None));
        }
        match st.total.take() {
            Some(t) => Ok(t),
            None => Ok(Tensor::zeros((), self.dtype, &self.device)?),
        }
    }

    /// The log-density at `position`, without a gradient.
    pub fn log_density_value(&mut self, position: &[f64]) -> Result<f64> {
        self.check_len(position.len())?;
        let _d = self.scoped_defaults();
        let t = self.forward(position)?;
        Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }

    fn check_len(&self, n: usize) -> Result<()> {
        if n != self.layout.dim {
            return Err(Error::shape_mismatch("potential: position", &[self.layout.dim], &[n]));
        }
        Ok(())
    }

    fn scoped_defaults(&self) -> defaults::DefaultsGuard {
        let validate = !self.validated && defaults::validation_enabled();
        defaults::set_defaults(defaults::Defaults { dtype: self.dtype, device: self.device.clone(), validate })
    }
}

impl<A: ?Sized, M, P: Program<A, M>> Potential for ModelPotential<'_, A, M, P> {
    fn dim(&self) -> usize {
        self.layout.dim
    }

    fn num_evaluations(&self) -> u64 {
        self.evaluations
    }

    fn log_density(&mut self, position: &[f64], grad: &mut [f64]) -> Result<f64> {
        self.check_len(position.len())?;
        self.check_len(grad.len())?;
        let _d = self.scoped_defaults();
        self.evaluations += 1;
        let total = self.forward(position)?;
        let lp = total.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !lp.is_finite() {
            return Err(Error::NonFiniteLogDensity { site: None });
        }
        let grads = total.backward()?;
        for (s, var) in self.layout.sites.iter().zip(&self.vars) {
            let out = &mut grad[s.offset..s.offset + s.numel()];
            match grads.get(var.as_tensor()) {
                Some(g) => {
                    let g = g.flatten_all()?;
                    match g.dtype() {
                        DType::F64 => out.copy_from_slice(&g.to_vec1::<f64>()?),
                        _ => out.copy_from_slice(&g.to_dtype(DType::F64)?.to_vec1::<f64>()?),
                    }
                }
                None => out.fill(0.0),
            }
            if out.iter().any(|g| !g.is_finite()) {
                return Err(Error::NonFiniteLogDensity { site: Some(s.name.clone()) });
            }
        }
        self.validated = true;
        Ok(lp)
    }
}
