//! `AutoNormal`: an independent Normal per latent site, in unconstrained space.

use super::prototype::{ProtoSite, run_sites};
use super::{AutoGuide, GuideDelta, Shared, normal_quantiles};
use crate::dist::{Constraint, DistRef, Distribution, DistributionExt, Normal, TransformedDistribution};
use crate::error::Result;
use crate::handlers::Data;
use crate::infer::init::InitStrategy;
use crate::infer::program::{AutoGuideMarker, Program};
use crate::params::ParamStore;
use crate::primitives::{ParamOptions, param_with, sample};
use crate::rng::Rng;
use crate::runtime::with_rng;
use crate::site::ParamInit;
use candle_core::Tensor;
use std::collections::HashMap;

/// One Normal per latent site in unconstrained space (Pyro's `AutoNormal`): parameters
/// `{prefix}.locs.{site}` and `{prefix}.scales.{site}` (positive), shaped like the site's
/// unconstrained value, with the full size of every subsampled plate (indexed by the subsample
/// in each run). A site with a real support is sampled from `Normal(loc, scale)` itself; any
/// other is pushed through `biject_to(support)` and recorded as a [`GuideDelta`] whose log-density is
/// the Normal's minus `log|det J|`.
///
/// Runs as a guide (`Program<A, _>`); returns the constrained latent values by site name.
pub struct AutoNormal<P, M = ()> {
    shared: Shared<P, M>,
    init_scale: f64,
}

impl<P, M> Clone for AutoNormal<P, M> {
    fn clone(&self) -> Self {
        AutoNormal { shared: self.shared.clone(), init_scale: self.init_scale }
    }
}

impl<P, M> AutoNormal<P, M> {
    /// An `AutoNormal` guide for `model`, with locations at [`init_to_median`](crate::infer::init_to_median)
    /// and scales 0.1.
    pub fn new(model: P) -> Self {
        AutoNormal { shared: Shared::new(model, "AutoNormal"), init_scale: 0.1 }
    }

    /// Sets the initial scale of every site (default 0.1).
    pub fn init_scale(mut self, scale: f64) -> Self {
        self.init_scale = scale;
        self
    }

    /// Sets the init strategy of the locations.
    pub fn init(mut self, strategy: InitStrategy) -> Self {
        self.shared.init = strategy;
        self
    }

    /// Sets the prefix of the parameter names (default `"AutoNormal"`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.shared.prefix = prefix.to_string();
        self
    }

    /// The fitted unconstrained `(loc, scale)` of each site (full plate sizes).
    fn loc_scale(&self, params: &ParamStore) -> Result<Vec<(ProtoSite, Tensor, Tensor)>> {
        let proto = self.shared.fitted()?;
        proto
            .sites
            .iter()
            .map(|s| {
                let loc = self.shared.param(params, &format!("locs.{}", s.name))?;
                let scale = self.shared.param(params, &format!("scales.{}", s.name))?;
                Ok((s.clone(), loc, scale))
            })
            .collect()
    }

    /// The fitted posterior of each site, in constrained space: `Normal(loc, scale)` (events
    /// reinterpreted) pushed through `biject_to(support)`.
    pub fn get_posterior(&self, params: &ParamStore) -> Result<HashMap<String, DistRef>> {
        let mut out = HashMap::new();
        for (s, loc, scale) in self.loc_scale(params)? {
            let base = Normal::new(&loc, &scale)?.to_event(s.uevent_dim())?.into_ref();
            let d =
                if s.real { base } else { TransformedDistribution::new(base, vec![s.transform.clone()])?.into_ref() };
            out.insert(s.name.clone(), d);
        }
        Ok(out)
    }
}

/// The loc and scale parameters of site `s` (local parameters are indexed by the plates).
pub(crate) fn site_loc_scale(prefix: &str, s: &ProtoSite, init_scale: f64) -> Result<(Tensor, Tensor)> {
    let event_dim = Some(s.uevent_dim());
    let loc = param_with(
        format!("{prefix}.locs.{}", s.name),
        ParamInit::lazy(|| Ok(s.init.clone())),
        ParamOptions { constraint: Constraint::Real, event_dim, meta: None },
    )?;
    let scale = param_with(
        format!("{prefix}.scales.{}", s.name),
        ParamInit::lazy(|| Ok((s.init.ones_like()? * init_scale)?)),
        ParamOptions { constraint: Constraint::Positive, event_dim, meta: None },
    )?;
    Ok((loc, scale))
}

/// Samples site `s` given unconstrained `x` drawn from a density whose log is `log_q` (shaped like
/// the site's batch): records a `Delta` at `biject_to(support)(x)` with log-density
/// `log_q - log|det J|`.
pub(crate) fn sample_pushed(s: &ProtoSite, x: &Tensor, log_q: &Tensor) -> Result<Tensor> {
    let (y, ladj) = s.constrain(x, 0)?;
    let log_density = log_q.broadcast_sub(&ladj)?;
    sample(s.name.as_str(), GuideDelta::new(&y, &log_density, s.event_dim, s.support.clone())?)
}

impl<A: ?Sized, M, P: Program<A, M>> Program<A, AutoGuideMarker> for AutoNormal<P, M> {
    type Output = Data;
    fn run(&self, args: &A) -> Result<Data> {
        let proto = self.shared.prototype(args)?;
        run_sites(&proto, |_, s| {
            let (loc, scale) = site_loc_scale(&self.shared.prefix, s, self.init_scale)?;
            let ue = s.uevent_dim();
            if s.real {
                let q = Normal::new(&loc, &scale)?;
                return if ue == 0 { sample(s.name.as_str(), q) } else { sample(s.name.as_str(), q.to_event(ue)?) };
            }
            let eps = with_rng(|r| r.normal_tensor(loc.dims(), loc.dtype(), loc.device()))?;
            let x = loc.add(&scale.mul(&eps)?)?;
            let mut log_q = Normal::new(&loc, &scale)?.log_prob(&x)?;
            for _ in 0..ue {
                log_q = log_q.sum(log_q.rank() - 1)?;
            }
            sample_pushed(s, &x, &log_q)
        })
    }
}

impl<P, M> AutoGuide for AutoNormal<P, M> {
    fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    fn latent_sites(&self) -> Result<Vec<String>> {
        self.shared.latent_sites()
    }

    fn median(&self, params: &ParamStore) -> Result<Data> {
        self.loc_scale(params)?
            .into_iter()
            .map(|(s, loc, _)| Ok((s.name.clone(), s.transform.forward(&loc)?)))
            .collect()
    }

    fn quantiles(&self, params: &ParamStore, probs: &[f64]) -> Result<Data> {
        let z = normal_quantiles(&self.shared.prefix, probs)?;
        let mut out = Data::new();
        for (s, loc, scale) in self.loc_scale(params)? {
            let qs: Vec<Tensor> =
                z.iter().map(|&z| s.transform.forward(&loc.add(&(&scale * z)?)?)).collect::<Result<_>>()?;
            out.insert(s.name.clone(), Tensor::stack(&qs, 0)?);
        }
        Ok(out)
    }

    fn sample_posterior(&self, params: &ParamStore, n: usize, rng: &mut Rng) -> Result<Data> {
        let mut out = Data::new();
        for (s, loc, scale) in self.loc_scale(params)? {
            let mut shape = vec![n];
            shape.extend_from_slice(loc.dims());
            let eps = rng.normal_tensor(&shape, loc.dtype(), loc.device())?;
            let x = eps.broadcast_mul(&scale)?.broadcast_add(&loc)?;
            out.insert(s.name.clone(), s.transform.forward(&x)?);
        }
        Ok(out)
    }
}
