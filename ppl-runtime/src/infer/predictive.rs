//! [`Predictive`]: draws from the prior or posterior predictive distribution of a model.

use super::elbo::particles::plate_nesting;
use super::program::Program;
use super::svi::{ErasedProgram, entropy_seed, erase, mix};
use crate::error::{Error, Result};
use crate::handlers::{Seed, replay, substitute, trace, uncondition};
use crate::params::ParamStore;
use crate::primitives::{PlateOptions, plate_with};
use crate::rng::Rng;
use crate::runtime::with_handler;
use crate::site::SiteKind;
use crate::trace::Trace;
use candle_core::Tensor;
use std::collections::HashMap;

/// The name of the outer plate of a parallel [`Predictive`].
pub const PREDICTIVE_PLATE: &str = "__num_predictive_samples";

enum Source<A: ?Sized> {
    Prior,
    Guide(Box<dyn ErasedProgram<A>>),
    Samples(HashMap<String, Tensor>),
}

/// Samples from a model's predictive distribution (Pyro's `Predictive`): latents from the prior,
/// from a guide, or from a map of posterior samples (e.g. MCMC's), and every other site of the
/// model drawn given them. Observed sites are drawn afresh (the model runs under `uncondition`),
/// so their draws are posterior (or prior) predictive replicates of the data.
///
/// The output maps each returned site to its values stacked along a new leading dim of size
/// `num_samples`. By default every sample and deterministic site is returned except those given
/// as posterior samples; [`Predictive::return_sites`] chooses. With [`Predictive::parallel`] the
/// model runs once, in an outer plate of `num_samples`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::Normal, infer::Predictive, primitives::{deterministic, observe, sample}, Result};
/// let model = |y: &Tensor| -> Result<()> {
///     let mu = sample("mu", Normal::new(0.0, 1.0)?)?;
///     deterministic("twice", &(&mu * 2.0)?)?;
///     observe("y", Normal::new(&mu, 0.1)?, y)?;
///     Ok(())
/// };
/// let y = Tensor::new(0.3f32, &Device::Cpu)?;
/// let out = Predictive::new(model, 100).seed(0).run(&y)?;
/// assert_eq!(out["mu"].dims(), &[100]);
/// assert_eq!(out["twice"].dims(), &[100]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub struct Predictive<A: ?Sized> {
    model: Box<dyn ErasedProgram<A>>,
    source: Source<A>,
    num_samples: usize,
    return_sites: Option<Vec<String>>,
    parallel: bool,
    seed: u64,
    params: ParamStore,
}

impl<A: ?Sized> Predictive<A> {
    /// The prior predictive: `num_samples` runs of `model`.
    pub fn new<M: Program<A, MM> + 'static, MM: 'static>(model: M, num_samples: usize) -> Self {
        Predictive {
            model: erase(model),
            source: Source::Prior,
            num_samples,
            return_sites: None,
            parallel: false,
            seed: entropy_seed(),
            params: ParamStore::new(),
        }
    }

    /// Latents from `guide` with the parameters of `params` (e.g. `svi.params()`).
    pub fn from_guide<M, MM, G, GM>(model: M, guide: G, params: &ParamStore, num_samples: usize) -> Self
    where
        M: Program<A, MM> + 'static,
        MM: 'static,
        G: Program<A, GM> + 'static,
        GM: 'static,
    {
        let mut p = Predictive::new(model, num_samples);
        p.source = Source::Guide(erase(guide));
        p.params = params.clone();
        p
    }

    /// Latents from posterior samples: site name → tensor whose leading dim indexes the samples
    /// (all of the same length).
    pub fn from_samples<M: Program<A, MM> + 'static, MM: 'static>(
        model: M,
        samples: HashMap<String, Tensor>,
    ) -> Result<Self> {
        let mut n = None;
        for (name, t) in &samples {
            let k = t.dims().first().copied().ok_or_else(|| {
                Error::invalid_arg("Predictive", "samples", format!("`{name}` is a scalar; samples need a leading sample dim"))
            })?;
            match n {
                None => n = Some((k, name.clone())),
                Some((m, ref first)) if m != k => {
                    return Err(Error::invalid_arg(
                        "Predictive",
                        "samples",
                        format!("`{first}` has {m} samples but `{name}` has {k}"),
                    ));
                }
                _ => {}
            }
        }
        let (n, _) = n.ok_or_else(|| Error::invalid_arg("Predictive", "samples", "the map of samples is empty"))?;
        let mut p = Predictive::new(model, n);
        p.source = Source::Samples(samples);
        Ok(p)
    }

    /// Returns only these sites (sample, deterministic or param sites).
    pub fn return_sites<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.return_sites = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Runs all samples in one pass, in an outer plate (default false).
    pub fn parallel(mut self, on: bool) -> Self {
        self.parallel = on;
        self
    }

    /// Seeds the draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// One trace of the model given the latents of sample `index` (or all samples, in the plate).
    fn run_once(&self, args: &A, index: Option<usize>, plate: Option<isize>) -> Result<Trace> {
        let n = self.num_samples;
        let within = |f: &dyn Fn() -> Result<()>| match plate {
            None => f(),
            Some(dim) => plate_with(PREDICTIVE_PLATE, n, PlateOptions { dim: Some(dim), ..Default::default() }, |_| f()),
        };
        let model = || uncondition(|| self.model.run_erased(args));
        let rng = Rng::seed_from_u64(mix(self.seed ^ mix(index.map_or(u64::MAX, |i| i as u64))));
        let go = || -> Result<Trace> {
            match &self.source {
                Source::Prior => Ok(trace(|| within(&model))?.1),
                Source::Guide(guide) => {
                    let ((), gtr) = trace(|| within(&|| guide.run_erased(args)))?;
                    Ok(trace(|| replay(&gtr, || within(&model)))?.1)
                }
                Source::Samples(samples) => {
                    let data = match index {
                        Some(i) => samples.iter().map(|(k, v)| Ok((k.clone(), v.get(i)?))).collect::<Result<_>>()?,
                        None => samples.clone(),
                    };
                    Ok(trace(|| substitute(data, || within(&model)))?.1)
                }
            }
        };
        with_handler(Seed::from_rng(rng), || self.params.scope(go)).0
    }

    fn wanted(&self, tr: &Trace) -> Vec<String> {
        match &self.return_sites {
            Some(names) => names.clone(),
            None => tr
                .nodes()
                .filter(|s| matches!(s.kind, SiteKind::Sample | SiteKind::Deterministic))
                .filter(|s| !matches!(&self.source, Source::Samples(m) if m.contains_key(&s.name)))
                .map(|s| s.name.clone())
                .collect(),
        }
    }

    /// Draws the samples: site name → values with a leading dim of `num_samples`.
    pub fn run(&self, args: &A) -> Result<HashMap<String, Tensor>> {
        if self.num_samples == 0 {
            return Err(Error::invalid_arg("Predictive", "num_samples", "must be at least 1"));
        }
        if self.parallel {
            return self.run_parallel(args);
        }
        let mut values: HashMap<String, Vec<Tensor>> = HashMap::new();
        let mut names = Vec::new();
        for i in 0..self.num_samples {
            let tr = self.run_once(args, Some(i), None)?;
            if i == 0 {
                names = self.wanted(&tr);
            }
            for name in &names {
                let v = tr.value(name).map_err(|_| missing(name, i))?;
                values.entry(name.clone()).or_default().push(v.detach());
            }
        }
        names
            .into_iter()
            .map(|name| {
                let vs = &values[&name];
                let t = Tensor::stack(vs, 0).map_err(|e| {
                    Error::from(e).at_site(&name, None)
                })?;
                Ok((name, t))
            })
            .collect()
    }

    fn run_parallel(&self, args: &A) -> Result<HashMap<String, Tensor>> {
        let n = self.num_samples;
        let probe = self.run_once(args, Some(0), None)?;
        let dim = -(plate_nesting(&probe) as isize) - 1;
        let names = self.wanted(&probe);
        let tr = if let Source::Samples(samples) = &self.source {
            // Give each sample tensor the particle layout: [n] ++ [1; free dims] ++ site shape.
            let mut shaped = HashMap::new();
            for (name, v) in samples {
                let Some(site) = probe.get(name) else { continue };
                let batch = site.dist.as_ref().map_or(0, |d| d.batch_shape().len());
                let ones = ((-dim) as usize - 1).saturating_sub(batch);
                let mut shape = vec![n];
                shape.extend(std::iter::repeat_n(1, ones));
                shape.extend_from_slice(&v.dims()[1..]);
                shaped.insert(name.clone(), v.reshape(shape)?);
            }
            let model = || uncondition(|| self.model.run_erased(args));
            let within = || plate_with(PREDICTIVE_PLATE, n, PlateOptions { dim: Some(dim), ..Default::default() }, |_| model());
            let rng = Rng::seed_from_u64(mix(self.seed ^ mix(u64::MAX)));
            with_handler(Seed::from_rng(rng), || self.params.scope(|| trace(|| substitute(shaped, within)))).0?.1
        } else {
            self.run_once(args, None, Some(dim))?
        };
        let mut out = HashMap::new();
        for name in names {
            let v = tr.value(&name).map_err(|_| missing(&name, 0))?.detach();
            let mut target = vec![n];
            target.extend_from_slice(probe.value(&name)?.dims());
            let count: usize = target.iter().product();
            let v = if v.elem_count() == count { v.reshape(target)? } else { v.broadcast_as(target)?.contiguous()? };
            out.insert(name, v);
        }
        Ok(out)
    }
}

fn missing(name: &str, i: usize) -> Error {
    Error::invalid_arg(
        "Predictive",
        "return_sites",
        format!("site `{name}` is not in the model's trace (sample {i}); return only sites every run has"),
    )
}
