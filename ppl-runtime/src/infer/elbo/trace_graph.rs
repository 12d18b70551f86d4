//! `TraceGraphElbo`: the ELBO whose score-function terms see only their downstream costs
//! (the dependency structure and when to use it are in [`TraceGraphElbo`]'s docs).

use super::baseline::{Baseline, BaselineNet, Baselines, score_log_prob};
use super::particles::{Axis, Pass, Totals, accumulate, elbo_per_particle, needs_score};
use super::{Bound, Elbo, ElboEstimate, TraceElbo};
use crate::error::{Error, Result};
use crate::site::{CondIndepFrame, Site};
use crate::trace::Trace;
use candle_core::Tensor;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// The ELBO with Rao-Blackwellized score-function gradients (Pyro's `TraceGraph_ELBO`): each
/// non-reparameterized guide site's score term multiplies only the costs downstream of it,
/// per plate element.
///
/// # Which ELBO
///
/// - Every latent site reparameterizable (Normal, Gamma, Beta, flows, autoguides...):
///   [`TraceElbo`] (or [`TraceMeanFieldElbo`](super::TraceMeanFieldElbo) when the KLs are
///   analytic). `TraceGraphElbo` gives the same gradients there, at the cost of building the
///   dependency structure.
/// - Discrete (or `reparameterize(false)`) guide sites that **can be summed out** — a few values
///   each, in plates or Markov chains: `TraceEnumElbo`, which enumerates them and needs no score
///   function at all.
/// - Discrete guide sites that **cannot be enumerated** (too many values or too many sites, such
///   as a Poisson or Binomial latent, or a discrete variable per data point in a deep model):
///   `TraceGraphElbo`. Its score-function terms have far lower variance than [`TraceElbo`]'s,
///   whose every score term multiplies the whole ELBO: here a site's term multiplies only the cost
///   terms its value can influence (Rao-Blackwellization), which matters most in plates, where
///   each element's site sees only its own element's costs.
///
/// # The estimator
///
/// For every guide site `z` drawn without `rsample` the surrogate gets a term
/// `log q(z) · (downstream cost of z − baseline)` with the cost detached, where the downstream
/// cost is the part of `log p − log q` that depends on `z` (Schulman et al. 2015, "Gradient
/// Estimation Using Stochastic Computation Graphs"). It is found from
/// the traces, as Pyro's *dense* graphs do:
///
/// 1. Dependencies follow execution order: a site may depend on every site that ran before it,
///    except across elements of a sequential plate (`seq_plate`: same plate, different
///    iteration), which the user declared conditionally independent. In the guide, `z`'s
///    descendants are the sites reachable from `z` this way.
/// 2. The cost of `z` is `log p(d) − log q(d)` for `z` and each of its guide descendants `d`,
///    plus `log p(m)` for every model site `m` that runs after one of them in the model (and is
///    not separated from it by a sequential plate). Cost terms that ran before `z` — in both the
///    guide and the model — are left out: they do not depend on `z`.
/// 3. Vectorized plates: a cost term in a plate that `z` also lies in stays per element, so
///    element `i`'s score multiplies element `i`'s costs only; every other dim (other plates,
///    batch dims that are not plates) is summed. With vectorized particles the particle plate
///    is one of these plates, so particles never mix.
///
/// The score `log q(z)` is the site's log-density unscaled and unmasked (the surrogate's gradient
/// is then an unbiased estimate of the gradient of the subsampled, masked ELBO); every cost term
/// is scaled and masked as the ELBO is. The guide's own `−log q(z)` term of a score-function
/// site, whose gradient has expectation zero, is left out of the surrogate. The loss is the same
/// number [`TraceElbo`] reports for the same draws.
///
/// # Options
///
/// The options are [`TraceElbo`]'s (`TraceGraphElbo::from(trace_elbo)` takes them over).
/// Baselines are set per site with [`TraceGraphElbo::baseline`], otherwise
/// [`TraceGraphElbo::default_baseline`] (a decaying average, `beta = 0.9`, of the site's mean
/// downstream cost). A [`Baseline::Network`] returns a
/// scalar, one value per vectorized particle, or a tensor shaped like the site's downstream cost
/// (the site's plate dims, e.g. `[n]` for a site in a plate of subsample size `n`).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use ppl_runtime::{dist::{Bernoulli, Normal}, infer::{Svi, TraceGraphElbo}, optim::Adam, Result};
/// use ppl_runtime::primitives::{observe, param, plate, sample};
/// // Each point comes from one of two components; q(z_i) should learn p(z_i = 1 | x_i).
/// let x = Tensor::new(&[-1.2f32, 0.9, 2.0, -0.3], &Device::Cpu)?;
/// let model = |x: &Tensor| -> Result<()> {
///     plate("data", 4, |_| {
///         let z = sample("z", Bernoulli::new(0.5)?)?;
///         observe("x", Normal::new(&z.affine(3.0, -1.5)?, 1.0)?, x).map(|_| ())
///     })
/// };
/// let guide = |_: &Tensor| -> Result<()> {
///     let logits = param("logits", Tensor::zeros(4, DType::F32, &Device::Cpu)?)?;
///     plate("data", 4, |_| sample("z", Bernoulli::from_logits(&logits)?).map(|_| ()))
/// };
/// let elbo = TraceGraphElbo::new().num_particles(8).vectorize_particles(true);
/// let mut svi = Svi::new(model, guide, Adam::new(0.1), elbo).seed(0);
/// let losses = svi.run(&x, 100)?;
/// assert!(losses.iter().all(|l| l.is_finite()));
/// let logits = svi.params().get("logits")?.unwrap().to_vec1::<f32>()?;
/// assert!(logits[0] < 0.0 && logits[2] > 0.0, "x = −1.2 is from the first component, x = 2 from the second");
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TraceGraphElbo(TraceElbo);

/// The builder methods delegate to [`TraceElbo`]'s.
impl TraceGraphElbo {
    /// One particle, not vectorized, decaying-average baselines.
    pub fn new() -> Self {
        Self::default()
    }

    /// Draws `n` particles per step (default 1).
    pub fn num_particles(self, n: usize) -> Self {
        Self(self.0.num_particles(n))
    }

    /// Runs all particles in one pass, in an outer plate left of the model's plates (default false).
    pub fn vectorize_particles(self, on: bool) -> Self {
        Self(self.0.vectorize_particles(on))
    }

    /// The number of nested plates of the model and guide, which places the particle plate; found
    /// by running both once when not given.
    pub fn max_plate_nesting(self, k: usize) -> Self {
        Self(self.0.max_plate_nesting(k))
    }

    /// The baseline of the score-function term of site `name`.
    pub fn baseline(self, name: impl Into<String>, baseline: Baseline) -> Self {
        Self(self.0.baseline(name, baseline))
    }

    /// The baseline of every score-function site without its own (default: `Average { beta: 0.9 }`).
    pub fn default_baseline(self, baseline: Baseline) -> Self {
        Self(self.0.default_baseline(baseline))
    }
}

/// The same options as a `TraceElbo`: `TraceGraphElbo::from(TraceElbo::default().num_particles(8))`.
impl From<TraceElbo> for TraceGraphElbo {
    fn from(options: TraceElbo) -> Self {
        Self(options)
    }
}

impl Elbo for TraceGraphElbo {
    fn estimate(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
        let TraceElbo { particles, baselines } = &mut self.0;
        let mut totals = Totals::default();
        particles.run(model, guide, |pass| {
            // The loss is exactly TraceElbo's; the gradient comes from the graph surrogate alone.
            let e = elbo_per_particle(&pass)?.detach();
            let surrogate = surrogate_elbo(&pass, baselines)?;
            totals.add(&e, surrogate, pass)
        })?;
        totals.finish(particles.num, baselines, "TraceGraphElbo")
    }
}

/// Whether two sites may depend on each other: not when they lie in different iterations of
/// the same sequential plate (Pyro's dense-graph rule).
fn dependent(a: &Site, b: &Site) -> bool {
    !a.cond_indep_stack.iter().any(|f| b.cond_indep_stack.iter().any(|g| f.name == g.name && f.counter != g.counter))
}

/// The surrogate ELBO of one pass, summed over its particles: every model log-density and the
/// guide log-densities of pathwise sites (with their gradients), plus one score-function term
/// per non-reparameterized guide site. `None` when there is nothing to differentiate.
fn surrogate_elbo(pass: &Pass, baselines: &mut Baselines) -> Result<Option<Tensor>> {
    let guide: Vec<&Site> = pass.guide.nodes().filter(|s| s.has_log_prob()).collect();
    let model: Vec<&Site> = pass.model.nodes().filter(|s| s.has_log_prob()).collect();
    if let Some(s) = guide.iter().find(|s| needs_score(s) && s.infer.enumerate.is_some()) {
        return Err(Error::invalid_arg(
            "TraceGraphElbo",
            "guide",
            "the site is marked for enumeration, but TraceGraphElbo samples every site; use TraceEnumElbo",
        )
        .at_site(&s.name, s.location()));
    }
    let mut total = None;
    for s in &model {
        if let Some(lp) = s.log_prob()? {
            total = accumulate(total, lp.sum_all()?)?;
        }
    }
    for s in guide.iter().filter(|s| !needs_score(s)) {
        if let Some(lq) = s.log_prob()? {
            total = accumulate(total, lq.sum_all()?.neg()?)?;
        }
    }
    if guide.iter().any(|s| needs_score(s)) {
        let graph = Graph::new(&guide, &model);
        for (i, z) in guide.iter().enumerate().filter(|(_, s)| needs_score(s)) {
            let term = graph.score_term(i, pass, baselines).map_err(|e| e.at_site(&z.name, z.location()))?;
            total = accumulate(total, term)?;
        }
    }
    Ok(total)
}

/// The sites with a log-density of one pass, in execution order, and where each guide site
/// sits in the model.
struct Graph<'a> {
    guide: &'a [&'a Site],
    model: &'a [&'a Site],
    /// For each guide site, its index in `model` (none for auxiliary guide sites).
    in_model: Vec<Option<usize>>,
    /// Whether each model site is a latent site the guide does not draw (it takes its value in
    /// the model, so its value carries dependencies on to the sites after it).
    model_only: Vec<bool>,
}

impl<'a> Graph<'a> {
    fn new(guide: &'a [&'a Site], model: &'a [&'a Site]) -> Graph<'a> {
        let index: HashMap<&str, usize> = model.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        let in_guide: HashSet<&str> = guide.iter().map(|s| s.name.as_str()).collect();
        Graph {
            guide,
            model,
            in_model: guide.iter().map(|s| index.get(s.name.as_str()).copied()).collect(),
            model_only: model.iter().map(|s| needs_value(s) && !in_guide.contains(s.name.as_str())).collect(),
        }
    }

    /// Which guide sites (`z` itself and the sites reachable from it) and which model sites
    /// (those sites' model counterparts and their direct model successors) depend on guide site
    /// `i`.
    fn downstream(&self, i: usize) -> (Vec<bool>, Vec<bool>) {
        let g = self.guide;
        let mut in_guide = vec![false; g.len()];
        let mut members = vec![i];
        for j in i + 1..g.len() {
            if members.iter().any(|&k| dependent(g[k], g[j])) {
                members.push(j);
            }
        }
        for &k in &members {
            in_guide[k] = true;
        }
        let m = self.model;
        let mut in_model = vec![false; m.len()];
        let mut roots: Vec<usize> = Vec::new();
        for (k, &on) in in_guide.iter().enumerate() {
            if let (true, Some(mi)) = (on, self.in_model[k]) {
                in_model[mi] = true;
                roots.push(mi);
            }
        }
        roots.sort_unstable();
        // A model log-density depends on z when one of its direct predecessors' values does: the
        // roots, and model-only latent sites that themselves depend on z.
        for j in 0..m.len() {
            if !in_model[j] && roots.iter().take_while(|&&r| r < j).any(|&r| dependent(m[r], m[j])) {
                in_model[j] = true;
                if self.model_only[j] {
                    let at = roots.partition_point(|&r| r < j);
                    roots.insert(at, j);
                }
            }
        }
        (in_guide, in_model)
    }

    /// `Σ log q(z) · (cost − baseline)` for guide site `i` (with a network baseline's own loss).
    fn score_term(&self, i: usize, pass: &Pass, baselines: &mut Baselines) -> Result<Tensor> {
        let z = self.guide[i];
        let target: Vec<(&str, isize)> =
            z.cond_indep_stack.iter().filter_map(|f| f.dim.map(|d| (f.name.as_str(), d))).collect();
        let rank = target.iter().map(|&(_, d)| (-d) as usize).max().unwrap_or(0);
        let (in_guide, in_model) = self.downstream(i);
        let mut cost = None;
        for s in self.guide.iter().zip(&in_guide).filter(|(_, on)| **on).map(|(s, _)| s) {
            if let Some(lq) = s.log_prob()? {
                cost = accumulate(cost, reduce_to(&lq.detach().neg()?, &s.cond_indep_stack, &target, rank)?)?;
            }
        }
        for s in self.model.iter().zip(&in_model).filter(|(_, on)| **on).map(|(s, _)| s) {
            if let Some(lp) = s.log_prob()? {
                cost = accumulate(cost, reduce_to(&lp.detach(), &s.cond_indep_stack, &target, rank)?)?;
            }
        }
        let score = reduce_to(&score_log_prob(z)?, &z.cond_indep_stack, &target, rank)?;
        let cost = match cost {
            Some(c) => c.broadcast_as(score.dims())?.contiguous()?,
            None => score.zeros_like()?,
        };
        match baselines.per_site.get(&z.name).unwrap_or(&baselines.default) {
            Baseline::Network(net) => {
                let mut one = Baselines::default();
                one.default = Baseline::Network(shaped_network(net.clone(), score.dims().to_vec(), pass.axis));
                one.term(&z.name, &score, &cost, &pass.guide)
            }
            _ => baselines.term(&z.name, &score, &cost, &pass.guide),
        }
    }
}

/// Whether a model site takes its value in the model: a latent sample site.
fn needs_value(s: &Site) -> bool {
    s.kind == crate::site::SiteKind::Sample && !s.is_observed && !s.intervened
}

/// Sums a cost term `t` (a site's log-density, laid out by the site's plate frames `frames`)
/// down to the plate dims of the target site (`target`: vectorized plate names and dims;
/// `rank`: the largest plate depth), keeping a dim only where both lie in the same plate.
/// The result has rank `rank`, with size 1 in every dim not kept.
fn reduce_to(t: &Tensor, frames: &[CondIndepFrame], target: &[(&str, isize)], rank: usize) -> Result<Tensor> {
    let r = t.rank();
    let shared = |n: &str, d: isize| frames.iter().any(|f| f.dim == Some(d) && f.name == n);
    let kept = |d: isize| target.iter().any(|&(n, td)| td == d && shared(n, d));
    let summed: Vec<usize> = (0..r).filter(|&p| !kept(p as isize - r as isize)).collect();
    let t = if summed.is_empty() { t.clone() } else { t.sum_keepdim(summed)? };
    let shape: Vec<usize> = (0..rank)
        .map(|i| {
            let d = i as isize - rank as isize;
            let p = r as isize + d;
            if p >= 0 && kept(d) { t.dim(p as usize) } else { Ok(1) }
        })
        .collect::<candle_core::Result<_>>()?;
    Ok(t.reshape(shape)?)
}

/// A network baseline whose output is checked against (and, for one value per particle, laid
/// out along) the shape of the site's downstream cost.
fn shaped_network(net: BaselineNet, want: Vec<usize>, axis: Axis) -> BaselineNet {
    Rc::new(move |tr: &Trace| {
        let b = net(tr)?;
        if b.rank() == 0 || b.dims() == want.as_slice() {
            return Ok(b);
        }
        if let Axis::Vector { n, dim } = axis
            && b.dims() == [n]
        {
            let mut shape = vec![1; want.len()];
            shape[(want.len() as isize + dim) as usize] = n;
            return Ok(b.reshape(shape)?);
        }
        Err(Error::shape_mismatch(
            "network baseline: expected a scalar, one value per particle, or the shape of the site's downstream cost",
            &want,
            b.dims(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::{Bernoulli, Normal};
    use crate::handlers::{replay, trace};
    use crate::primitives::{observe, sample, seq_plate};
    use candle_core::Device;

    /// The names of the sites downstream of guide site `name`: (guide sites, model sites).
    fn downstream_of(model: Bound<'_>, guide: Bound<'_>, name: &str) -> Result<(Vec<String>, Vec<String>)> {
        let ((), g) = trace(guide)?;
        let ((), m) = trace(|| replay(&g, model))?;
        let gs: Vec<&Site> = g.nodes().filter(|s| s.has_log_prob()).collect();
        let ms: Vec<&Site> = m.nodes().filter(|s| s.has_log_prob()).collect();
        let graph = Graph::new(&gs, &ms);
        let i = gs.iter().position(|s| s.name == name).expect("a guide site");
        let (on_g, on_m) = graph.downstream(i);
        let names = |sites: &[&Site], on: &[bool]| -> Vec<String> {
            sites.iter().zip(on).filter(|(_, on)| **on).map(|(s, _)| s.name.clone()).collect()
        };
        Ok((names(&gs, &on_g), names(&ms, &on_m)))
    }

    #[test]
    fn sequential_plates_cut_dependencies_and_each_program_keeps_its_order() -> Result<()> {
        let y = Tensor::new(0.5f32, &Device::Cpu)?;
        let guide = || -> Result<()> {
            sample("a", Bernoulli::new(0.5)?)?;
            seq_plate("t", 3, |t| sample(format!("z{t}"), Bernoulli::new(0.5)?).map(|_| ()))?;
            sample("g", Normal::new(0.0, 1.0)?).map(|_| ())
        };
        let model = || -> Result<()> {
            sample("a", Bernoulli::new(0.5)?)?;
            seq_plate("t", 3, |t| {
                sample(format!("z{t}"), Bernoulli::new(0.5)?)?;
                observe(format!("y{t}"), Normal::new(0.0, 1.0)?, &y).map(|_| ())
            })?;
            sample("g", Normal::new(0.0, 1.0)?)?;
            observe("y", Normal::new(0.0, 1.0)?, &y).map(|_| ())
        };
        // z1: not z0 (earlier), not z2 (another iteration); g ran after it in the guide.
        let (g, m) = downstream_of(&model, &guide, "z1")?;
        assert_eq!(g, ["z1", "g"]);
        assert_eq!(m, ["z1", "y1", "g", "y"]);
        let (g, m) = downstream_of(&model, &guide, "a")?;
        assert_eq!(g, ["a", "z0", "z1", "z2", "g"]);
        assert_eq!(m.len(), 9);

        // The guide draws w before z, the model after: w's prior and y are downstream of z
        // through the model, not through the guide.
        let guide = || -> Result<()> {
            sample("w", Normal::new(0.0, 1.0)?)?;
            sample("z", Bernoulli::new(0.5)?).map(|_| ())
        };
        let model = || -> Result<()> {
            sample("z", Bernoulli::new(0.5)?)?;
            sample("w", Normal::new(0.0, 1.0)?)?;
            observe("y", Normal::new(0.0, 1.0)?, &y).map(|_| ())
        };
        let (g, m) = downstream_of(&model, &guide, "z")?;
        assert_eq!(g, ["z"]);
        assert_eq!(m, ["z", "w", "y"]);
        Ok(())
    }

    fn frame(name: &str, dim: isize, size: usize) -> CondIndepFrame {
        CondIndepFrame { name: name.into(), dim: Some(dim), size, subsample_size: size, counter: 0 }
    }

    #[test]
    fn costs_keep_only_the_plates_they_share_with_the_target() -> Result<()> {
        // A cost in plates a (dim −1, size 3) and b (dim −2, size 2).
        let t = Tensor::new(&[[1f32, 2., 3.], [10., 20., 30.]], &Device::Cpu)?;
        let frames = [frame("b", -2, 2), frame("a", -1, 3)];
        let to = |target: &[(&str, isize)], rank| reduce_to(&t, &frames, target, rank);
        assert_eq!(to(&[("a", -1)], 1)?.to_vec1::<f32>()?, [11., 22., 33.]);
        assert_eq!(to(&[("b", -2)], 2)?.to_vec2::<f32>()?, [[6.], [60.]]);
        assert_eq!(to(&[], 0)?.to_scalar::<f32>()?, 66.);
        // The target's plate c is not the cost's: summed there, kept in a.
        assert_eq!(to(&[("c", -2), ("a", -1)], 2)?.to_vec2::<f32>()?, [[11., 22., 33.]]);
        // Same name at another dim is another plate.
        assert_eq!(to(&[("a", -2)], 2)?.dims(), [1, 1]);
        // A global cost reaches every element of the target as one number.
        let g = Tensor::new(5f32, &Device::Cpu)?;
        assert_eq!(reduce_to(&g, &[], &[("a", -1), ("b", -2)], 2)?.to_vec2::<f32>()?, [[5.]]);
        Ok(())
    }
}
