//! Sites and messages: what a `sample`/`param`/`factor`/`deterministic` statement sends through
//! the handler stack, and the static metadata the macros record for each literal site.

use crate::dist::{Constraint, DistRef};
use crate::error::{Location, Result};
use crate::rng::Rng;
use candle_core::{Tensor, Var};
use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::rc::Rc;

/// The kind of a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SiteKind {
    /// A random variable, latent or observed.
    Sample,
    /// A learnable parameter.
    Param,
    /// An arbitrary log-weight added to the joint density.
    Factor,
    /// A named deterministic function of other sites, recorded for inspection.
    Deterministic,
    /// A plate. Every plate sends one message of this kind (named after the plate, with the
    /// plate's index tensor as its value: `0..size` or the subsample) before its body runs, so
    /// traces record the subsample and `replay`/`substitute` can impose one. A plate site has
    /// no log-density. The macros also record literal plates in their static metadata.
    Plate,
}

impl fmt::Display for SiteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SiteKind::Sample => "sample",
            SiteKind::Param => "param",
            SiteKind::Factor => "factor",
            SiteKind::Deterministic => "deterministic",
            SiteKind::Plate => "plate",
        })
    }
}

/// Static metadata the `#[model]`/`#[guide]` macros record for a site with a literal name.
#[derive(Debug)]
pub struct SiteMeta {
    /// The literal site name.
    pub name: &'static str,
    /// Its kind.
    pub kind: SiteKind,
    /// Whether it is observed (`obs = ...`).
    pub observed: bool,
    /// Names of the literal plates it lies in, outermost first.
    pub plates: &'static [&'static str],
    /// Where it was written.
    pub location: Location,
}

/// How enumeration treats a discrete site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enumerate {
    /// Enumerate all values at once along a new tensor dim.
    Parallel,
    /// Enumerate values one at a time.
    Sequential,
}

/// Per-site inference configuration (Pyro's `infer={...}` dict, typed).
///
/// Build it with the builder methods, so that code keeps compiling as fields are added:
///
/// ```
/// use ppl_runtime::{Enumerate, InferConfig};
/// let c = InferConfig::new().enumerate(Enumerate::Parallel).reparameterize(false);
/// assert_eq!(c.enumerate, Some(Enumerate::Parallel));
/// assert_eq!(c.reparameterize, Some(false));
/// assert!(InferConfig::new().auxiliary().is_auxiliary);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct InferConfig {
    /// Enumerate this discrete site instead of sampling it.
    pub enumerate: Option<Enumerate>,
    /// The site is an auxiliary variable of the guide (not in the model).
    pub is_auxiliary: bool,
    /// `Some(false)` draws the site with `sample` (no pathwise gradient) even when the
    /// distribution has `rsample`, so inference uses a score-function estimator for it.
    /// `None` (the default) or `Some(true)`: reparameterize when the distribution can.
    pub reparameterize: Option<bool>,
    /// Set by the enum handler on an enumerated site: the (negative) tensor dim, left of every
    /// plate dim, along which the site's values are laid out.
    pub enum_dim: Option<isize>,
    /// Set by the enum handler on every sample and factor site: the enumerated variables in
    /// scope when the site ran, as `(dim, variable id)` pairs. Ids are unique within a run even
    /// when [`markov`](crate::primitives::markov) recycles a dim.
    pub dim_to_id: Vec<(isize, usize)>,
    /// Set by [`markov`](crate::primitives::markov): the markov steps the site lies in, outermost first.
    pub markov_scope: Vec<MarkovStep>,
    /// Set by [`vectorized_markov`](crate::primitives::vectorized_markov): the loop and run the
    /// site lies in.
    pub vectorized_markov: Option<VectorizedMarkovStep>,
}

/// A run of a [`vectorized_markov`](crate::primitives::vectorized_markov) loop, recorded on the
/// sites inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorizedMarkovStep {
    /// The loop's name (also the name of its time plate).
    pub name: String,
    /// Identifies the loop (unique within a thread).
    pub context: u64,
    /// `true` for the run at `t = 0`, `false` for the run vectorized over `t = 1..size`.
    pub first: bool,
}

/// One step of a [`markov`](crate::primitives::markov) loop, recorded on the sites inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkovStep {
    /// Identifies the loop (unique within a thread).
    pub context: u64,
    /// The step's index.
    pub step: usize,
    /// How many earlier steps a site may depend on.
    pub history: usize,
}

impl InferConfig {
    /// The default configuration: sampled, reparameterized where possible, not auxiliary.
    pub fn new() -> InferConfig {
        InferConfig::default()
    }

    /// Enumerates the site (`Parallel` or `Sequential`) instead of sampling it.
    pub fn enumerate(mut self, how: Enumerate) -> InferConfig {
        self.enumerate = Some(how);
        self
    }

    /// Marks the site as an auxiliary variable of the guide (absent from the model).
    pub fn auxiliary(mut self) -> InferConfig {
        self.is_auxiliary = true;
        self
    }

    /// Switches reparameterized sampling on (`true`, where the distribution has `rsample`) or
    /// off (`false`: the value is drawn with `sample` and carries no pathwise gradient).
    pub fn reparameterize(mut self, on: bool) -> InferConfig {
        self.reparameterize = Some(on);
        self
    }

    /// Fields set in `other` override those of `self`.
    pub fn merge(&mut self, other: &InferConfig) {
        if other.enumerate.is_some() {
            self.enumerate = other.enumerate;
        }
        self.is_auxiliary |= other.is_auxiliary;
        if other.reparameterize.is_some() {
            self.reparameterize = other.reparameterize;
        }
        if other.enum_dim.is_some() {
            self.enum_dim = other.enum_dim;
        }
    }
}

/// One conditional-independence frame, pushed by a plate onto the sites inside it.
#[derive(Clone, Debug, PartialEq)]
pub struct CondIndepFrame {
    /// The plate's name.
    pub name: String,
    /// The (negative) tensor dim of a vectorized plate; `None` for a sequential plate.
    pub dim: Option<isize>,
    /// The full size of the plate.
    pub size: usize,
    /// How many indices this run uses (equals `size` without subsampling).
    pub subsample_size: usize,
    /// The iteration of a sequential plate (0 for vectorized plates).
    pub counter: usize,
}

impl CondIndepFrame {
    /// Whether this frame is a vectorized plate (has a tensor dim).
    pub fn vectorized(&self) -> bool {
        self.dim.is_some()
    }
}

/// How a parameter is initialized when the store does not yet have it.
pub enum ParamInit<'a> {
    /// A constrained initial value.
    Value(Tensor),
    /// A scalar initial value (dtype and device from the thread defaults).
    Scalar(f64),
    /// A closure called only if the parameter does not exist yet.
    Lazy(Box<dyn FnOnce() -> Result<Tensor> + 'a>),
    /// An existing Var, registered as is (used by `module`).
    Var(Var),
}

impl<'a> ParamInit<'a> {
    /// An initializer called only when the parameter is first created. It may borrow from
    /// the model's arguments (`|| Tensor::zeros(x.dim(1)?, DType::F32, x.device())`).
    pub fn lazy(f: impl FnOnce() -> Result<Tensor> + 'a) -> ParamInit<'a> {
        ParamInit::Lazy(Box::new(f))
    }
}

impl fmt::Debug for ParamInit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamInit::Value(t) => write!(f, "Value({:?})", t.dims()),
            ParamInit::Scalar(x) => write!(f, "Scalar({x})"),
            ParamInit::Lazy(_) => write!(f, "Lazy(..)"),
            ParamInit::Var(v) => write!(f, "Var({:?})", v.dims()),
        }
    }
}

impl From<f64> for ParamInit<'_> {
    fn from(x: f64) -> Self {
        ParamInit::Scalar(x)
    }
}
impl From<f32> for ParamInit<'_> {
    fn from(x: f32) -> Self {
        ParamInit::Scalar(x as f64)
    }
}
impl From<Tensor> for ParamInit<'_> {
    fn from(t: Tensor) -> Self {
        ParamInit::Value(t)
    }
}
impl From<&Tensor> for ParamInit<'_> {
    fn from(t: &Tensor) -> Self {
        ParamInit::Value(t.clone())
    }
}

/// What a param site asks for: its constraint and, until the store consumes it, its initializer.
#[derive(Debug)]
pub struct ParamSpec<'a> {
    /// The constraint the parameter's value satisfies.
    pub constraint: Constraint,
    /// Rightmost dims that form one event (for `lift` and autoguides); `None` = all dims.
    pub event_dim: Option<usize>,
    /// The initializer; taken by the parameter store when it creates the parameter.
    pub init: Option<ParamInit<'a>>,
}

impl Clone for ParamSpec<'_> {
    /// Clones everything but the (one-shot) initializer.
    fn clone(&self) -> Self {
        ParamSpec { constraint: self.constraint.clone(), event_dim: self.event_dim, init: None }
    }
}

/// A shared handle on the random number generator that a `seed` handler carries.
pub type RngHandle = Rc<RefCell<Rng>>;

/// A site on its way through the handler stack, and as recorded in a trace.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The site's name.
    pub name: String,
    /// The site's kind.
    pub kind: SiteKind,
    /// The distribution of a sample site (a `Unit` log-weight for a factor site).
    pub dist: Option<DistRef>,
    /// The value: sampled, observed, replayed, or the parameter's constrained value.
    pub value: Option<Tensor>,
    /// Whether the value is observed data.
    pub is_observed: bool,
    /// Multiplier of the log-density (from `scale` handlers and subsampling plates).
    pub scale: f64,
    /// A 0/1 mask broadcastable to the batch shape; masked elements contribute no log-density.
    pub mask: Option<Tensor>,
    /// The plates the site lies in, innermost last.
    pub cond_indep_stack: Vec<CondIndepFrame>,
    /// Inference configuration.
    pub infer: InferConfig,
    /// The parameter request of a param site.
    pub param: Option<ParamSpec<'a>>,
    /// Set by a handler's `process` to stop outer handlers from seeing the message.
    pub stop: bool,
    /// Set when the value has been decided and the default behaviour must not run.
    pub done: bool,
    /// Set by `do`: the value is an intervention and contributes no log-density.
    pub intervened: bool,
    /// Whether the default behaviour drew the value with `rsample` (a pathwise gradient flows
    /// from it to the distribution's parameters). False for observed, replayed, substituted or
    /// non-reparameterizable values, and when `infer.reparameterize` is `Some(false)`.
    pub reparameterized: bool,
    /// For a plate site (`SiteKind::Plate`): the plate's own frame (name, dim, full size,
    /// subsample size). `None` for other sites.
    pub plate: Option<CondIndepFrame>,
    /// The macros' static metadata for literal sites.
    pub meta: Option<&'static SiteMeta>,
    /// Cached masked, unscaled log-density (see [`Message::log_prob_unscaled`]).
    pub(crate) log_prob_unscaled_cache: OnceCell<Tensor>,
    /// Cached scaled and masked log-density (see [`Message::log_prob`]).
    pub(crate) log_prob_cache: OnceCell<Tensor>,
}

impl<'a> Message<'a> {
    /// A fresh message of `kind` named `name`.
    pub fn new(name: String, kind: SiteKind) -> Message<'a> {
        Message {
            name,
            kind,
            dist: None,
            value: None,
            is_observed: false,
            scale: 1.0,
            mask: None,
            cond_indep_stack: Vec::new(),
            infer: InferConfig::default(),
            param: None,
            stop: false,
            done: false,
            intervened: false,
            reparameterized: false,
            plate: None,
            meta: None,
            log_prob_unscaled_cache: OnceCell::new(),
            log_prob_cache: OnceCell::new(),
        }
    }

    /// The message as recorded in a trace: everything but the parameter's one-shot initializer.
    pub fn to_site(&self) -> Site {
        Message {
            name: self.name.clone(),
            kind: self.kind,
            dist: self.dist.clone(),
            value: self.value.clone(),
            is_observed: self.is_observed,
            scale: self.scale,
            mask: self.mask.clone(),
            cond_indep_stack: self.cond_indep_stack.clone(),
            infer: self.infer.clone(),
            param: self.param.as_ref().map(|p| ParamSpec { constraint: p.constraint.clone(), event_dim: p.event_dim, init: None }),
            stop: self.stop,
            done: self.done,
            intervened: self.intervened,
            reparameterized: self.reparameterized,
            plate: self.plate.clone(),
            meta: self.meta,
            log_prob_unscaled_cache: self.log_prob_unscaled_cache.clone(),
            log_prob_cache: self.log_prob_cache.clone(),
        }
    }

    /// The source location recorded by the macros, if any.
    pub fn location(&self) -> Option<Location> {
        self.meta.map(|m| m.location)
    }

    /// The distribution of a sample or factor site, or an error naming the site.
    pub fn dist(&self) -> Result<&DistRef> {
        self.dist.as_ref().ok_or_else(|| {
            crate::Error::invalid_arg("trace", "dist", "site has no distribution").at_site(&self.name, self.location())
        })
    }

    /// The value of the site, or an error naming the site.
    pub fn value(&self) -> Result<&Tensor> {
        self.value.as_ref().ok_or_else(|| {
            crate::Error::invalid_arg("trace", "value", "site has no value").at_site(&self.name, self.location())
        })
    }

    /// Whether the site contributes to the joint log-density.
    pub fn has_log_prob(&self) -> bool {
        matches!(self.kind, SiteKind::Sample | SiteKind::Factor) && !self.intervened
    }

    /// The site's log-density `log_prob(value)`, masked (masked elements are zero) but not
    /// scaled, shaped like the site's batch shape. Cached after the first call. `None` for
    /// sites without a log-density (params, plates, deterministic and intervened sites).
    ///
    /// Enumeration needs this: plate scales apply outside its log-sum-exp.
    pub fn log_prob_unscaled(&self) -> Result<Option<&Tensor>> {
        if !self.has_log_prob() {
            return Ok(None);
        }
        if let Some(lp) = self.log_prob_unscaled_cache.get() {
            return Ok(Some(lp));
        }
        let lp = self.compute_log_prob_unscaled().map_err(|e| e.at_site(&self.name, self.location()))?;
        Ok(Some(self.log_prob_unscaled_cache.get_or_init(|| lp)))
    }

    /// The site's log-density `log_prob(value)`, masked, times the site's `scale` (from
    /// subsampling plates and `scale` handlers), shaped like the site's batch shape — the term
    /// the site adds to the joint log-density. Cached after the first call. `None` for sites
    /// without a log-density.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use ppl_runtime::{dist::Normal, handlers::{scale, trace}, primitives::observe};
    /// let x = Tensor::new(0f32, &Device::Cpu)?;
    /// let (_, tr) = trace(|| scale(2.0, || observe("x", Normal::new(0.0, 1.0)?, &x)))?;
    /// let site = tr.get("x").unwrap();
    /// let lp = site.log_prob()?.unwrap().to_scalar::<f32>()?;
    /// let unscaled = site.log_prob_unscaled()?.unwrap().to_scalar::<f32>()?;
    /// assert!((lp - 2.0 * unscaled).abs() < 1e-6);
    /// # Ok::<(), ppl_runtime::Error>(())
    /// ```
    pub fn log_prob(&self) -> Result<Option<&Tensor>> {
        if let Some(lp) = self.log_prob_cache.get() {
            return Ok(Some(lp));
        }
        let Some(unscaled) = self.log_prob_unscaled()? else { return Ok(None) };
        let lp = if self.scale != 1.0 {
            (unscaled * self.scale).map_err(|e| crate::Error::from(e).at_site(&self.name, self.location()))?
        } else {
            unscaled.clone()
        };
        Ok(Some(self.log_prob_cache.get_or_init(|| lp)))
    }

    /// Forgets the cached log-densities (call after changing `value`, `dist`, `mask` or `scale`
    /// of a recorded site).
    pub fn reset_log_prob(&mut self) {
        self.log_prob_cache = OnceCell::new();
        self.log_prob_unscaled_cache = OnceCell::new();
    }

    fn compute_log_prob_unscaled(&self) -> Result<Tensor> {
        let dist = self.dist()?;
        let value = self.value()?;
        check_obs_dtype(dist, value)?;
        let mut lp = dist.log_prob(value)?;
        if let Some(mask) = &self.mask {
            check_mask(mask, crate::defaults::validation_enabled())?;
            let m = mask.broadcast_as(lp.dims()).map_err(|_| {
                crate::Error::shape_mismatch("mask does not broadcast to the site's log_prob", lp.dims(), mask.dims())
            })?;
            lp = m.where_cond(&lp, &lp.zeros_like()?)?;
        }
        Ok(lp)
    }

    /// The names of the vectorized plates the site lies in, outermost first.
    pub fn plate_names(&self) -> Vec<&str> {
        self.cond_indep_stack.iter().map(|f| f.name.as_str()).collect()
    }
}

/// A site as recorded in a [`Trace`](crate::trace::Trace).
pub type Site = Message<'static>;

/// A value whose float dtype differs from the distribution's is an error naming both dtypes.
/// (Integer values of discrete distributions are left to the distribution.)
pub(crate) fn check_obs_dtype(dist: &DistRef, value: &Tensor) -> Result<()> {
    if value.dtype() != dist.dtype() && value.dtype().is_float() {
        return Err(crate::Error::DTypeMismatch {
            context: format!("`{}` value", dist.name()),
            a: "distribution".into(),
            a_dtype: dist.dtype(),
            b: "value".into(),
            b_dtype: value.dtype(),
        });
    }
    Ok(())
}

/// A mask must be a `u8` tensor (Candle's boolean: what comparisons such as `x.ge(0.0)?`
/// return) holding only 0 and 1; `check_values` also reads the values (one device-to-host copy).
pub(crate) fn check_mask(mask: &Tensor, check_values: bool) -> Result<()> {
    crate::dist::args::check_mask("mask", mask, check_values)
}
