//! `AutoDelta`: a point mass per latent site (MAP estimation).

use super::prototype::run_sites;
use super::{AutoGuide, GuideDelta, Shared, normal_quantiles};
use crate::dist::{Delta, DistRef, DistributionExt};
use crate::error::Result;
use crate::handlers::Data;
use crate::infer::init::InitStrategy;
use crate::infer::program::{AutoGuideMarker, Program};
use crate::params::ParamStore;
use crate::primitives::{ParamOptions, param_with, sample};
use crate::rng::Rng;
use crate::site::ParamInit;
use candle_core::Tensor;
use std::collections::HashMap;

/// A point mass per latent site (Pyro's `AutoDelta`): the parameter `{prefix}.{site}` holds the
/// site's constrained value (constrained to the site's support, full plate sizes), and the site
/// is sampled from `Delta(value)`. With `Trace_ELBO` this is MAP estimation of the model's
/// density in constrained space (no Jacobian term).
pub struct AutoDelta<P, M = ()> {
    shared: Shared<P, M>,
}

impl<P, M> Clone for AutoDelta<P, M> {
    fn clone(&self) -> Self {
        AutoDelta { shared: self.shared.clone() }
    }
}

impl<P, M> AutoDelta<P, M> {
    /// An `AutoDelta` guide for `model`, starting at [`init_to_median`](crate::infer::init_to_median).
    pub fn new(model: P) -> Self {
        AutoDelta { shared: Shared::new(model, "AutoDelta") }
    }

    /// Sets the init strategy.
    pub fn init(mut self, strategy: InitStrategy) -> Self {
        self.shared.init = strategy;
        self
    }

    /// Sets the prefix of the parameter names (default `"AutoDelta"`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.shared.prefix = prefix.to_string();
        self
    }

    /// The point masses, by site.
    pub fn get_posterior(&self, params: &ParamStore) -> Result<HashMap<String, DistRef>> {
        let proto = self.shared.fitted()?;
        let mut out = HashMap::new();
        for s in &proto.sites {
            let v = self.shared.param(params, &s.name)?;
            out.insert(s.name.clone(), Delta::new(&v, 0.0, s.event_dim)?.into_ref());
        }
        Ok(out)
    }
}

impl<A: ?Sized, M, P: Program<A, M>> Program<A, AutoGuideMarker> for AutoDelta<P, M> {
    type Output = Data;
    fn run(&self, args: &A) -> Result<Data> {
        let proto = self.shared.prototype(args)?;
        run_sites(&proto, |_, s| {
            let v = param_with(
                format!("{}.{}", self.shared.prefix, s.name),
                ParamInit::lazy(|| s.transform.forward(&s.init)),
                ParamOptions { constraint: s.support.clone(), event_dim: Some(s.event_dim), meta: None },
            )?;
            let zero = Tensor::zeros((), v.dtype(), v.device())?;
            sample(s.name.as_str(), GuideDelta::new(&v, &zero, s.event_dim, s.support.clone())?)
        })
    }
}

impl<P, M> AutoGuide for AutoDelta<P, M> {
    fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    fn latent_sites(&self) -> Result<Vec<String>> {
        self.shared.latent_sites()
    }

    fn median(&self, params: &ParamStore) -> Result<Data> {
        let proto = self.shared.fitted()?;
        proto.sites.iter().map(|s| Ok((s.name.clone(), self.shared.param(params, &s.name)?.detach()))).collect()
    }

    /// Every quantile of a point mass is the point.
    fn quantiles(&self, params: &ParamStore, probs: &[f64]) -> Result<Data> {
        normal_quantiles(self.prefix(), probs)?;
        self.median(params)?.into_iter().map(|(k, v)| Ok((k, Tensor::stack(&vec![v; probs.len()], 0)?))).collect()
    }

    fn sample_posterior(&self, params: &ParamStore, n: usize, _rng: &mut Rng) -> Result<Data> {
        self.median(params)?.into_iter().map(|(k, v)| Ok((k, Tensor::stack(&vec![v; n], 0)?))).collect()
    }
}
