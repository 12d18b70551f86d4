//! `AutoGuideList`: several guides, each for some of the model's sites.

use super::AutoGuide;
use crate::error::Result;
use crate::handlers::Data;
use crate::infer::program::{AutoGuideMarker, Program};
use crate::params::ParamStore;
use crate::rng::Rng;
use std::rc::Rc;

type RunFn<'g, A> = Rc<dyn Fn(&A) -> Result<Data> + 'g>;

enum Part<'g, A: ?Sized> {
    Auto { run: RunFn<'g, A>, guide: Rc<dyn AutoGuide + 'g> },
    Custom(RunFn<'g, A>),
}

impl<A: ?Sized> Clone for Part<'_, A> {
    fn clone(&self) -> Self {
        match self {
            Part::Auto { run, guide } => Part::Auto { run: run.clone(), guide: guide.clone() },
            Part::Custom(run) => Part::Custom(run.clone()),
        }
    }
}

/// A guide made of parts run in order (Pyro's `AutoGuideList`): autoguides built on the model
/// restricted to some sites ([`expose`](super::expose) / [`hide`](super::hide)), and hand-written
/// guides for the rest (e.g. a discrete site, or structure an autoguide cannot express). The
/// parts must cover disjoint sites (a site sampled twice is a duplicate-site error).
///
/// Runs as a guide; returns the autoguide parts' latent values. [`AutoGuide`] methods merge
/// those of the autoguide parts (hand-written parts have no fitted summary).
///
/// ```
/// use ppl_runtime::{dist::Normal, handlers::{seed, trace}, infer::{AutoDelta, AutoGuideList, AutoNormal, Program, expose}};
/// let model = |_: &()| -> ppl_runtime::Result<()> {
///     ppl_runtime::sample("a", Normal::new(0.0, 1.0)?)?;
///     ppl_runtime::sample("b", Normal::new(0.0, 1.0)?)?;
///     ppl_runtime::sample("c", Normal::new(0.0, 1.0)?)?;
///     Ok(())
/// };
/// let guide = AutoGuideList::new()
///     .append(AutoNormal::new(expose(model, ["a"])))
///     .append(AutoDelta::new(expose(model, ["b"])))
///     .append_custom(|_: &()| ppl_runtime::sample("c", Normal::new(0.5, 0.1)?));
/// let store = ppl_runtime::ParamStore::new();
/// let (_, tr) = store.scope(|| seed(0, || trace(|| guide.run(&()))))?;
/// assert!(tr.contains("a") && tr.contains("b") && tr.contains("c"));
/// assert!(store.contains("AutoNormal.locs.a") && store.contains("AutoDelta.b"));
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub struct AutoGuideList<'g, A: ?Sized> {
    parts: Vec<Part<'g, A>>,
}

impl<A: ?Sized> Clone for AutoGuideList<'_, A> {
    fn clone(&self) -> Self {
        AutoGuideList { parts: self.parts.clone() }
    }
}

impl<A: ?Sized> Default for AutoGuideList<'_, A> {
    fn default() -> Self {
        AutoGuideList { parts: Vec::new() }
    }
}

impl<'g, A: ?Sized> AutoGuideList<'g, A> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an autoguide.
    pub fn append<G>(mut self, guide: G) -> Self
    where
        G: Program<A, AutoGuideMarker, Output = Data> + AutoGuide + Clone + 'g,
    {
        let runner = guide.clone();
        self.parts.push(Part::Auto { run: Rc::new(move |a: &A| runner.run(a)), guide: Rc::new(guide) });
        self
    }

    /// Appends a hand-written guide (any program over the same arguments).
    pub fn append_custom<M, G>(mut self, guide: G) -> Self
    where
        G: Program<A, M> + 'g,
    {
        self.parts.push(Part::Custom(Rc::new(move |a: &A| guide.run(a).map(|_| Data::new()))));
        self
    }

    /// Number of parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether the list has no parts.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    fn merge(&self, f: impl Fn(&dyn AutoGuide) -> Result<Data>) -> Result<Data> {
        let mut out = Data::new();
        for p in &self.parts {
            if let Part::Auto { guide, .. } = p {
                out.extend(f(guide.as_ref())?);
            }
        }
        Ok(out)
    }
}

impl<A: ?Sized> Program<A, AutoGuideMarker> for AutoGuideList<'_, A> {
    type Output = Data;
    fn run(&self, args: &A) -> Result<Data> {
        let mut out = Data::new();
        for p in &self.parts {
            match p {
                Part::Auto { run, .. } | Part::Custom(run) => out.extend(run(args)?),
            }
        }
        Ok(out)
    }
}

impl<A: ?Sized> AutoGuide for AutoGuideList<'_, A> {
    fn prefix(&self) -> &str {
        "AutoGuideList"
    }

    fn latent_sites(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Auto { guide, .. } = p {
                out.extend(guide.latent_sites()?);
            }
        }
        Ok(out)
    }

    fn median(&self, params: &ParamStore) -> Result<Data> {
        self.merge(|g| g.median(params))
    }

    fn quantiles(&self, params: &ParamStore, probs: &[f64]) -> Result<Data> {
        self.merge(|g| g.quantiles(params, probs))
    }

    fn sample_posterior(&self, params: &ParamStore, n: usize, rng: &mut Rng) -> Result<Data> {
        let mut out = Data::new();
        for p in &self.parts {
            if let Part::Auto { guide, .. } = p {
                out.extend(guide.sample_posterior(params, n, rng)?);
            }
        }
        Ok(out)
    }
}
