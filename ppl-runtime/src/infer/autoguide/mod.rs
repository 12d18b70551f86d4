//! Autoguides: guides built automatically from a model (Pyro's `pyro.infer.autoguide`).
//!
//! An autoguide runs the model once (hidden from every handler outside it, each latent site at
//! the value of its [init strategy](crate::infer::init), [`init_to_median`] by default), reads
//! the continuous latent sites, maps each to unconstrained space with
//! [`biject_to`](crate::dist::biject_to)`(support)`, and fits a family there:
//!
//! | guide | family | parameters |
//! | --- | --- | --- |
//! | [`AutoDelta`] | a point mass per site (MAP) | `AutoDelta.{site}` |
//! | [`AutoNormal`] | an independent Normal per site | `AutoNormal.locs.{site}`, `AutoNormal.scales.{site}` |
//! | [`AutoDiagonalNormal`] | a diagonal Normal over one flat latent vector | `.loc`, `.scale` |
//! | [`AutoMultivariateNormal`] | a full-covariance Normal over the flat vector | `.loc`, `.scale_tril` |
//! | [`AutoLowRankMultivariateNormal`] | `W Wᵀ + diag(d²)` covariance, rank `r` | `.loc`, `.cov_factor`, `.scale` |
//! | [`AutoLaplaceApproximation`] | MAP, then the Hessian at the MAP → an [`AutoMultivariateNormal`] | `.loc` |
//! | [`AutoIafNormal`] | inverse autoregressive flows (MADE networks) over a standard Normal | `.iaf{k}.*` |
//! | [`AutoGuideList`] | different guides for different sites | those of its parts |
//!
//! Each latent value is drawn in unconstrained space and pushed through the bijection; the
//! site records a distribution whose log-density includes `-log|det J|` (a [`GuideDelta`] with
//! that log-density and the site's support, or, for a real support, the Normal itself), so the ELBO is that of the
//! unconstrained family. Guides with one flat latent vector draw it at an auxiliary site
//! `_{prefix}_latent` (`InferConfig::auxiliary`).
//!
//! Autoguides are cheap handles (shared state inside): keep a clone, fit the other, then read
//! the fit from the parameter store through the [`AutoGuide`] trait: [`AutoGuide::median`],
//! [`AutoGuide::quantiles`], [`AutoGuide::sample_posterior`], all in constrained space by site.
//!
//! Sites in a subsampled plate get *local* parameters sized by the plate's full size and indexed
//! by the subsample the guide draws (the model follows it through `replay`); only
//! [`AutoNormal`] and [`AutoDelta`] support them. A discrete latent site is an error naming it.
//!
//! ```
//! use ppl_runtime::{dist::{Normal, HalfNormal}, handlers::{seed, trace}, infer::{AutoGuide, AutoNormal, Program}};
//! use ppl_runtime::{ParamStore, Rng};
//! let model = |_: &()| -> ppl_runtime::Result<()> {
//!     let s = ppl_runtime::sample("s", HalfNormal::new(1.0)?)?;
//!     ppl_runtime::sample("x", Normal::new(0.0, &s)?)?;
//!     Ok(())
//! };
//! let guide = AutoNormal::new(model);
//! let store = ParamStore::new();
//! let (_, tr) = store.scope(|| seed(0, || trace(|| guide.run(&()))))?;
//! assert!(tr.value("s")?.to_scalar::<f32>()? > 0.0);
//! assert!(store.contains("AutoNormal.locs.s") && store.contains("AutoNormal.scales.x"));
//! let med = guide.median(&store)?; // exp(loc) for the positive site
//! assert!(med["s"].to_scalar::<f32>()? > 0.0);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

mod continuous;
mod delta;
mod iaf;
mod laplace;
mod list;
mod normal;
mod prototype;
mod site_delta;

pub use continuous::{
    AutoContinuous, AutoDiagonalNormal, AutoLowRankMultivariateNormal, AutoMultivariateNormal, DiagonalNormalFamily,
    LatentFamily, LowRankFamily, MultivariateNormalFamily, ParamGetter,
};
pub use delta::AutoDelta;
pub use iaf::{AutoIafNormal, IafFamily, IafTransform, Made};
pub use laplace::{AutoLaplaceApproximation, DeltaFamily};
pub use list::AutoGuideList;
pub use normal::AutoNormal;
pub use site_delta::GuideDelta;

use crate::error::{Error, Result};
use crate::handlers::{Block, Data, block};
use crate::infer::init::{InitStrategy, init_to_median};
use crate::infer::program::{AutoGuideMarker, Program};
use crate::params::ParamStore;
use crate::rng::Rng;
use candle_core::Tensor;
use prototype::Prototype;
use std::cell::RefCell;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::rc::Rc;

/// What every autoguide offers after fitting, reading its parameters from a [`ParamStore`]
/// (e.g. the one SVI trained). Values are constrained, by site name.
pub trait AutoGuide {
    /// The prefix of the guide's parameter names (`"AutoNormal"` by default).
    fn prefix(&self) -> &str;

    /// The latent sites the guide covers, in the model's order (an error before the guide's
    /// first run, when it has not read the model yet).
    fn latent_sites(&self) -> Result<Vec<String>>;

    /// The posterior median of each site: the bijection applied to the unconstrained median.
    fn median(&self, params: &ParamStore) -> Result<Data>;

    /// Marginal quantiles `probs` of each site, stacked along a new leading dim of size
    /// `probs.len()` (the bijection applied to the unconstrained marginal quantiles; exact for
    /// elementwise monotone bijections).
    fn quantiles(&self, params: &ParamStore, probs: &[f64]) -> Result<Data>;

    /// `n` draws from the fitted guide, `[n, ..site shape]` per site.
    fn sample_posterior(&self, params: &ParamStore, n: usize, rng: &mut Rng) -> Result<Data>;
}

/// The state every autoguide shares between its clones: the model and, after the first run,
/// the prototype.
pub(crate) struct Shared<P, M> {
    model: Rc<P>,
    proto: Rc<RefCell<Option<Rc<Prototype>>>>,
    pub prefix: String,
    pub init: InitStrategy,
    _m: PhantomData<fn() -> M>,
}

impl<P, M> Clone for Shared<P, M> {
    fn clone(&self) -> Self {
        Shared {
            model: self.model.clone(),
            proto: self.proto.clone(),
            prefix: self.prefix.clone(),
            init: self.init.clone(),
            _m: PhantomData,
        }
    }
}

impl<P, M> Shared<P, M> {
    pub fn new(model: P, prefix: &str) -> Self {
        Shared {
            model: Rc::new(model),
            proto: Rc::new(RefCell::new(None)),
            prefix: prefix.to_string(),
            init: init_to_median(),
            _m: PhantomData,
        }
    }

    /// The prototype, read from the model at the first call.
    pub fn prototype<A: ?Sized>(&self, args: &A) -> Result<Rc<Prototype>>
    where
        P: Program<A, M>,
    {
        if let Some(p) = self.proto.borrow().as_ref() {
            return Ok(p.clone());
        }
        let p = Rc::new(Prototype::setup(&self.prefix, self.model.as_ref(), args, &self.init)?);
        *self.proto.borrow_mut() = Some(p.clone());
        Ok(p)
    }

    /// The prototype of a guide that has run (for reading the fit).
    pub fn fitted(&self) -> Result<Rc<Prototype>> {
        self.proto.borrow().clone().ok_or_else(|| {
            Error::invalid_arg(
                self.prefix.as_str(),
                "guide",
                "the guide has not run yet, so it has not read the model's sites: fit it (or run it once) first",
            )
        })
    }

    /// Another guide's state over the same model and prototype, under `prefix`.
    pub fn derived(&self, prefix: &str, proto: Rc<Prototype>) -> Shared<P, M> {
        Shared {
            model: self.model.clone(),
            proto: Rc::new(RefCell::new(Some(proto))),
            prefix: prefix.to_string(),
            init: self.init.clone(),
            _m: PhantomData,
        }
    }

    pub fn model(&self) -> &P {
        &self.model
    }

    /// The constrained parameter `{prefix}.{suffix}` from `params`.
    pub fn param(&self, params: &ParamStore, suffix: &str) -> Result<Tensor> {
        let name = format!("{}.{suffix}", self.prefix);
        params.get(&name)?.ok_or_else(|| {
            Error::invalid_arg(
                self.prefix.as_str(),
                "params",
                format!("the parameter `{name}` is not in this store: pass the store the guide was fitted with"),
            )
        })
    }

    pub fn latent_sites(&self) -> Result<Vec<String>> {
        Ok(self.fitted()?.sites.iter().map(|s| s.name.clone()).collect())
    }
}

/// Standard normal quantiles of `probs` (each in `(0, 1)`).
pub(crate) fn normal_quantiles(guide: &str, probs: &[f64]) -> Result<Vec<f64>> {
    probs
        .iter()
        .map(|&p| {
            if p > 0.0 && p < 1.0 {
                Ok(crate::dist::special::scalar::ndtri(p))
            } else {
                Err(Error::invalid_arg(guide, "probs", format!("quantile levels lie in (0, 1), got {p}")))
            }
        })
        .collect()
}

/// A model restricted to some of its sites: the others run but are hidden (by [`block`]) from
/// the handlers outside, so an autoguide built on it covers only the sites left visible. Made
/// by [`expose`] and [`hide`], for the parts of an [`AutoGuideList`].
pub struct Blocked<P, M> {
    model: P,
    names: HashSet<String>,
    expose: bool,
    _m: PhantomData<fn() -> M>,
}

/// `model` with only the sites `names` visible (Pyro's `poutine.block(model, expose=names)`).
pub fn expose<P, M, S: Into<String>>(model: P, names: impl IntoIterator<Item = S>) -> Blocked<P, M> {
    Blocked { model, names: names.into_iter().map(Into::into).collect(), expose: true, _m: PhantomData }
}

/// `model` with the sites `names` hidden (Pyro's `poutine.block(model, hide=names)`).
pub fn hide<P, M, S: Into<String>>(model: P, names: impl IntoIterator<Item = S>) -> Blocked<P, M> {
    Blocked { model, names: names.into_iter().map(Into::into).collect(), expose: false, _m: PhantomData }
}

impl<A: ?Sized, M, P: Program<A, M>> Program<A, AutoGuideMarker> for Blocked<P, M> {
    type Output = P::Output;
    fn run(&self, args: &A) -> Result<P::Output> {
        let spec = if self.expose {
            Block::expose(self.names.iter().cloned())
        } else {
            Block::hide(self.names.iter().cloned())
        };
        block(spec, || self.model.run(args))
    }
}
