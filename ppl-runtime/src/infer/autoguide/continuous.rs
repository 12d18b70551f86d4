//! Guides over one flat unconstrained latent vector (Pyro's `AutoContinuous`): the diagonal,
//! full-covariance and low-rank Normal families, and the machinery the Laplace and IAF guides share.

use super::normal::sample_pushed;
use super::prototype::{Prototype, run_sites};
use super::{AutoGuide, Shared, normal_quantiles};
use crate::dist::linalg;
use crate::dist::{Constraint, DistRef, DistributionExt, LowRankMultivariateNormal, MultivariateNormal, Normal};
use crate::error::Result;
use crate::handlers::Data;
use crate::infer::init::InitStrategy;
use crate::infer::program::{AutoGuideMarker, Program};
use crate::params::ParamStore;
use crate::primitives::{ParamOptions, SampleOptions, param_with, sample_with};
use crate::rng::Rng;
use crate::runtime::with_rng;
use crate::site::{InferConfig, ParamInit};
use candle_core::Tensor;

/// Reads a fitted parameter of the guide by the suffix of its name (`"loc"`, `"scale"`, ...).
pub type ParamGetter<'a> = dyn Fn(&str) -> Result<Tensor> + 'a;

/// The distribution family of the flat latent vector of an [`AutoContinuous`] guide.
pub trait LatentFamily: Clone {
    /// The default prefix of the guide's parameters (the guide's name).
    const NAME: &'static str;

    /// The distribution (event shape `[dim]`) the guide samples the latent vector from, with its
    /// parameters `{prefix}.*` read from (or created in) the current store; `init` is the flat
    /// unconstrained initial vector.
    fn latent(&self, prefix: &str, init: &Tensor) -> Result<DistRef>;

    /// The fitted latent distribution.
    fn posterior(&self, param: &ParamGetter) -> Result<DistRef>;

    /// The fitted unconstrained median and marginal standard deviations (for `median` and
    /// `quantiles`).
    fn loc_scale(&self, param: &ParamGetter) -> Result<(Tensor, Tensor)>;
}

/// A guide that draws one flat unconstrained latent vector from a [`LatentFamily`] at the
/// auxiliary site `_{prefix}_latent`, then gives each latent site its slice, pushed through
/// `biject_to(support)` (recorded as a `Delta` with log-density `-log|det J|`). Use it through
/// its aliases [`AutoDiagonalNormal`], [`AutoMultivariateNormal`],
/// [`AutoLowRankMultivariateNormal`], [`AutoLaplaceApproximation`](super::AutoLaplaceApproximation)
/// and [`AutoIafNormal`](super::AutoIafNormal). Sites in subsampled plates are not supported
/// (use [`AutoNormal`](super::AutoNormal)).
pub struct AutoContinuous<P, M, F> {
    pub(crate) shared: Shared<P, M>,
    pub(crate) family: F,
}

impl<P, M, F: Clone> Clone for AutoContinuous<P, M, F> {
    fn clone(&self) -> Self {
        AutoContinuous { shared: self.shared.clone(), family: self.family.clone() }
    }
}

impl<P, M, F: LatentFamily> AutoContinuous<P, M, F> {
    /// The guide for `model` over the family `family`.
    pub fn with_family(model: P, family: F) -> Self {
        AutoContinuous { shared: Shared::new(model, F::NAME), family }
    }

    /// Sets the init strategy of the latent location.
    pub fn init(mut self, strategy: InitStrategy) -> Self {
        self.shared.init = strategy;
        self
    }

    /// Sets the prefix of the parameter names (default: the guide's name).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.shared.prefix = prefix.to_string();
        self
    }

    /// Number of unconstrained coordinates of the latent vector (after the first run).
    pub fn latent_dim(&self) -> Result<usize> {
        Ok(self.shared.fitted()?.dim())
    }

    /// The fitted distribution of the flat unconstrained latent vector (Pyro's `get_posterior`);
    /// [`AutoContinuous::unpack`] maps its draws to the sites.
    pub fn get_posterior(&self, params: &ParamStore) -> Result<DistRef> {
        self.shared.fitted()?;
        self.family.posterior(&|s: &str| self.shared.param(params, s))
    }

    /// The constrained site values of flat unconstrained latent vectors `[..lead, dim]`
    /// (`[..lead, ..site shape]` per site).
    pub fn unpack(&self, latent: &Tensor) -> Result<Data> {
        self.shared.fitted()?.constrain_flat(latent)
    }

    /// The site names and their `(offset, length)` in the flat latent vector.
    pub fn layout(&self) -> Result<Vec<(String, usize, usize)>> {
        let proto = self.shared.fitted()?;
        let mut off = 0;
        Ok(proto
            .sites
            .iter()
            .map(|s| {
                let r = (s.name.clone(), off, s.numel());
                off += s.numel();
                r
            })
            .collect())
    }

    pub(crate) fn proto<A: ?Sized>(&self, args: &A) -> Result<std::rc::Rc<Prototype>>
    where
        P: Program<A, M>,
    {
        let p = self.shared.prototype(args)?;
        p.no_subsampling(&self.shared.prefix)?;
        Ok(p)
    }
}

impl<A: ?Sized, M, P: Program<A, M>, F: LatentFamily> Program<A, AutoGuideMarker> for AutoContinuous<P, M, F> {
    type Output = Data;
    fn run(&self, args: &A) -> Result<Data> {
        let proto = self.proto(args)?;
        let prefix = &self.shared.prefix;
        let init = proto.flat_init()?;
        let q = self.family.latent(prefix, &init)?;
        let opts = SampleOptions::new().infer(InferConfig::new().auxiliary());
        let z = sample_with(format!("_{prefix}_latent"), q, opts)?;
        let zero = Tensor::zeros((), z.dtype(), z.device())?;
        let xs = proto.unpack(&z)?;
        run_sites(&proto, |i, s| sample_pushed(s, &xs[i], &zero))
    }
}

impl<P, M, F: LatentFamily> AutoGuide for AutoContinuous<P, M, F> {
    fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    fn latent_sites(&self) -> Result<Vec<String>> {
        self.shared.latent_sites()
    }

    fn median(&self, params: &ParamStore) -> Result<Data> {
        let (loc, _) = self.family.loc_scale(&|s: &str| self.shared.param(params, s))?;
        self.unpack(&loc.detach())
    }

    fn quantiles(&self, params: &ParamStore, probs: &[f64]) -> Result<Data> {
        let z = normal_quantiles(&self.shared.prefix, probs)?;
        let (loc, scale) = self.family.loc_scale(&|s: &str| self.shared.param(params, s))?;
        let zs = Tensor::from_vec(z.clone(), (z.len(), 1), loc.device())?.to_dtype(loc.dtype())?;
        let x = zs.broadcast_mul(&scale.detach())?.broadcast_add(&loc.detach())?;
        self.unpack(&x)
    }

    fn sample_posterior(&self, params: &ParamStore, n: usize, rng: &mut Rng) -> Result<Data> {
        let q = self.get_posterior(params)?;
        let z = q.sample(rng, &[n])?.detach();
        self.unpack(&z)
    }
}

fn loc_param(prefix: &str, init: &Tensor) -> Result<Tensor> {
    param_with(format!("{prefix}.loc"), ParamInit::lazy(|| Ok(init.clone())), ParamOptions::default())
}

fn positive_param(prefix: &str, suffix: &str, init: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    let opts = ParamOptions { constraint: Constraint::Positive, ..Default::default() };
    param_with(format!("{prefix}.{suffix}"), ParamInit::lazy(init), opts)
}

/// A diagonal Normal: parameters `loc` and `scale` (positive), initial scale `init_scale`.
#[derive(Clone, Debug)]
pub struct DiagonalNormalFamily {
    init_scale: f64,
}

impl LatentFamily for DiagonalNormalFamily {
    const NAME: &'static str = "AutoDiagonalNormal";
    fn latent(&self, prefix: &str, init: &Tensor) -> Result<DistRef> {
        let loc = loc_param(prefix, init)?;
        let scale = positive_param(prefix, "scale", || Ok((init.ones_like()? * self.init_scale)?))?;
        Ok(Normal::new(&loc, &scale)?.to_event(1)?.into_ref())
    }
    fn posterior(&self, param: &ParamGetter) -> Result<DistRef> {
        Ok(Normal::new(&param("loc")?, &param("scale")?)?.to_event(1)?.into_ref())
    }
    fn loc_scale(&self, param: &ParamGetter) -> Result<(Tensor, Tensor)> {
        Ok((param("loc")?, param("scale")?))
    }
}

/// A full-covariance Normal: parameters `loc` and `scale_tril` (lower Cholesky).
#[derive(Clone, Debug)]
pub struct MultivariateNormalFamily {
    init_scale: f64,
}

impl Default for MultivariateNormalFamily {
    /// Initial scale 0.1.
    fn default() -> Self {
        MultivariateNormalFamily { init_scale: 0.1 }
    }
}

impl LatentFamily for MultivariateNormalFamily {
    const NAME: &'static str = "AutoMultivariateNormal";
    fn latent(&self, prefix: &str, init: &Tensor) -> Result<DistRef> {
        let loc = loc_param(prefix, init)?;
        let opts = ParamOptions { constraint: Constraint::LowerCholesky, ..Default::default() };
        let n = init.dim(0)?;
        let l = param_with(
            format!("{prefix}.scale_tril"),
            ParamInit::lazy(|| Ok((linalg::eye_like(n, init)? * self.init_scale)?)),
            opts,
        )?;
        Ok(MultivariateNormal::from_scale_tril(&loc, &l)?.into_ref())
    }
    fn posterior(&self, param: &ParamGetter) -> Result<DistRef> {
        Ok(MultivariateNormal::from_scale_tril(&param("loc")?, &param("scale_tril")?)?.into_ref())
    }
    fn loc_scale(&self, param: &ParamGetter) -> Result<(Tensor, Tensor)> {
        let l = param("scale_tril")?;
        Ok((param("loc")?, l.sqr()?.sum(1)?.sqrt()?))
    }
}

/// A low-rank-plus-diagonal Normal: `loc`, `cov_factor` `W` (`[dim, rank]`) and `scale` `d`
/// (positive), covariance `W Wᵀ + diag(d²)`.
#[derive(Clone, Debug)]
pub struct LowRankFamily {
    init_scale: f64,
    rank: Option<usize>,
}

impl LowRankFamily {
    fn rank_for(&self, n: usize) -> usize {
        self.rank.unwrap_or_else(|| ((n as f64).sqrt().round() as usize).max(1))
    }
}

impl LatentFamily for LowRankFamily {
    const NAME: &'static str = "AutoLowRankMultivariateNormal";
    fn latent(&self, prefix: &str, init: &Tensor) -> Result<DistRef> {
        let loc = loc_param(prefix, init)?;
        let n = init.dim(0)?;
        let r = self.rank_for(n);
        let w = param_with(
            format!("{prefix}.cov_factor"),
            ParamInit::lazy(|| {
                let z = with_rng(|rng| rng.normal_tensor(&[n, r], init.dtype(), init.device()))?;
                Ok((z * ((0.5 / r as f64).sqrt() * self.init_scale))?)
            }),
            ParamOptions::default(),
        )?;
        let d = positive_param(prefix, "scale", || Ok((init.ones_like()? * (0.5f64.sqrt() * self.init_scale))?))?;
        Ok(LowRankMultivariateNormal::new(&loc, &w, &d.sqr()?)?.into_ref())
    }
    fn posterior(&self, param: &ParamGetter) -> Result<DistRef> {
        Ok(LowRankMultivariateNormal::new(&param("loc")?, &param("cov_factor")?, &param("scale")?.sqr()?)?.into_ref())
    }
    fn loc_scale(&self, param: &ParamGetter) -> Result<(Tensor, Tensor)> {
        let var = param("cov_factor")?.sqr()?.sum(1)?.add(&param("scale")?.sqr()?)?;
        Ok((param("loc")?, var.sqrt()?))
    }
}

/// A diagonal Normal over the flat unconstrained latent vector (Pyro's `AutoDiagonalNormal`):
/// parameters `{prefix}.loc` and `{prefix}.scale`. Its optimum is the mean-field one: for a
/// Gaussian posterior, the exact means and the *conditional* variances `1 / Λᵢᵢ`.
pub type AutoDiagonalNormal<P, M> = AutoContinuous<P, M, DiagonalNormalFamily>;

/// A full-covariance Normal over the flat latent vector (Pyro's `AutoMultivariateNormal`):
/// parameters `{prefix}.loc` and `{prefix}.scale_tril`.
pub type AutoMultivariateNormal<P, M> = AutoContinuous<P, M, MultivariateNormalFamily>;

/// A Normal with covariance `W Wᵀ + diag(d²)` over the flat latent vector (Pyro's
/// `AutoLowRankMultivariateNormal`): parameters `{prefix}.loc`, `{prefix}.cov_factor` and
/// `{prefix}.scale`; the rank defaults to `round(√dim)`.
pub type AutoLowRankMultivariateNormal<P, M> = AutoContinuous<P, M, LowRankFamily>;

impl<P, M> AutoContinuous<P, M, DiagonalNormalFamily> {
    /// An `AutoDiagonalNormal` guide for `model` (initial scale 0.1).
    pub fn new(model: P) -> Self {
        Self::with_family(model, DiagonalNormalFamily { init_scale: 0.1 })
    }

    /// Sets the initial scale (default 0.1).
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.family.init_scale = scale;
        self
    }
}

impl<P, M> AutoContinuous<P, M, MultivariateNormalFamily> {
    /// An `AutoMultivariateNormal` guide for `model` (initial `scale_tril` 0.1·I).
    pub fn new(model: P) -> Self {
        Self::with_family(model, MultivariateNormalFamily { init_scale: 0.1 })
    }

    /// Sets the initial scale (default 0.1).
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.family.init_scale = scale;
        self
    }
}

impl<P, M> AutoContinuous<P, M, LowRankFamily> {
    /// An `AutoLowRankMultivariateNormal` guide for `model` (rank `round(√dim)`, initial scale 0.1).
    pub fn new(model: P) -> Self {
        Self::with_family(model, LowRankFamily { init_scale: 0.1, rank: None })
    }

    /// Sets the rank of the covariance factor.
    pub fn rank(mut self, rank: usize) -> Self {
        self.family.rank = Some(rank.max(1));
        self
    }

    /// Sets the initial scale (default 0.1).
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.family.init_scale = scale;
        self
    }
}
