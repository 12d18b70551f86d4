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
    /// A plate. Only in static metadata (so plate errors quote their source line); plates send
    /// no messages.
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferConfig {
    /// Enumerate this discrete site instead of sampling it.
    pub enumerate: Option<Enumerate>,
    /// The site is an auxiliary variable of the guide (not in the model).
    pub is_auxiliary: bool,
}

impl InferConfig {
    /// Fields set in `other` override those of `self`.
    pub fn merge(&mut self, other: &InferConfig) {
        if other.enumerate.is_some() {
            self.enumerate = other.enumerate;
        }
        self.is_auxiliary |= other.is_auxiliary;
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
    /// The macros' static metadata for literal sites.
    pub meta: Option<&'static SiteMeta>,
    /// Cached scaled and masked log-density (filled by the trace on demand).
    pub log_prob: OnceCell<Tensor>,
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
            meta: None,
            log_prob: OnceCell::new(),
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
            meta: self.meta,
            log_prob: self.log_prob.clone(),
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

    /// The names of the vectorized plates the site lies in, outermost first.
    pub fn plate_names(&self) -> Vec<&str> {
        self.cond_indep_stack.iter().map(|f| f.name.as_str()).collect()
    }
}

/// A site as recorded in a [`Trace`](crate::trace::Trace).
pub type Site = Message<'static>;
