//! Particles: running guide and model (one after the other, or vectorized in an outer plate),
//! and reducing site log-densities to one value per particle.

use crate::error::{Error, Result};
use crate::handlers::{replay, trace};
use crate::primitives::{PlateOptions, plate_with};
use crate::site::{Site, SiteKind};
use crate::trace::Trace;
use candle_core::Tensor;

use super::Bound;

/// The name of the outer plate that holds vectorized particles.
pub const PARTICLE_PLATE: &str = "__particles";

/// How particles are laid out in one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Axis {
    /// One particle, no particle dim: per-particle values are scalars.
    Single,
    /// `n` particles along tensor dim `dim` (negative), left of every model plate.
    Vector { n: usize, dim: isize },
}

/// Particle options shared by the ELBOs.
#[derive(Clone, Debug)]
pub(crate) struct Particles {
    pub num: usize,
    pub vectorize: bool,
    pub max_plate_nesting: Option<usize>,
}

impl Default for Particles {
    fn default() -> Self {
        Particles { num: 1, vectorize: false, max_plate_nesting: None }
    }
}

/// The traces of one pass.
pub(crate) struct Pass {
    pub model: Trace,
    pub guide: Trace,
    pub axis: Axis,
}

/// The largest number of nested vectorized plates of any site in `tr`.
pub(crate) fn plate_nesting(tr: &Trace) -> usize {
    tr.nodes()
        .flat_map(|s| s.cond_indep_stack.iter().filter_map(|f| f.dim))
        .map(|d| (-d) as usize)
        .max()
        .unwrap_or(0)
}

/// Runs the guide, then the model replayed against the guide's trace, inside the particle
/// plate when `axis` is a vector.
pub(crate) fn run_pass(model: Bound<'_>, guide: Bound<'_>, axis: Axis) -> Result<Pass> {
    let within = |f: Bound<'_>| match axis {
        Axis::Single => f(),
        Axis::Vector { n, dim } => {
            plate_with(PARTICLE_PLATE, n, PlateOptions { dim: Some(dim), ..Default::default() }, |_| f())
        }
    };
    let ((), guide_tr) = trace(|| within(guide))?;
    let ((), model_tr) = trace(|| replay(&guide_tr, || within(model)))?;
    Ok(Pass { model: model_tr, guide: guide_tr, axis })
}

impl Particles {
    /// Runs every pass (one vectorized pass, or `num` single ones) and hands each to `f`.
    pub fn run(&mut self, model: Bound<'_>, guide: Bound<'_>, mut f: impl FnMut(Pass) -> Result<()>) -> Result<()> {
        if self.num == 0 {
            return Err(Error::invalid_arg("ELBO", "num_particles", "must be at least 1"));
        }
        if self.vectorize && self.num > 1 {
            let nesting = match self.max_plate_nesting {
                Some(k) => k,
                None => {
                    let probe = run_pass(model, guide, Axis::Single)?;
                    let k = plate_nesting(&probe.model).max(plate_nesting(&probe.guide));
                    self.max_plate_nesting = Some(k);
                    k
                }
            };
            f(run_pass(model, guide, Axis::Vector { n: self.num, dim: -(nesting as isize) - 1 })?)
        } else {
            for _ in 0..self.num {
                f(run_pass(model, guide, Axis::Single)?)?;
            }
            Ok(())
        }
    }
}

/// A site's (scaled, masked) log-density summed to one value per particle: a scalar for
/// [`Axis::Single`], shape `[n]` for a vector of particles.
pub(crate) fn per_particle(lp: &Tensor, axis: Axis) -> Result<Tensor> {
    match axis {
        Axis::Single => Ok(lp.sum_all()?),
        Axis::Vector { n, dim } => {
            let need = (-dim) as usize;
            let rank = lp.rank();
            if rank < need {
                // Not inside the particle plate: the same value for every particle.
                return Ok(lp.sum_all()?.broadcast_as(n)?);
            }
            let ax = rank - need;
            let mut t = lp.clone();
            if ax + 1 < rank {
                t = t.sum((ax + 1..rank).collect::<Vec<_>>())?;
            }
            if ax > 0 {
                t = t.sum((0..ax).collect::<Vec<_>>())?;
            }
            Ok(t.broadcast_as(n)?)
        }
    }
}

/// Adds `b` to an optional accumulator.
pub(crate) fn accumulate(acc: Option<Tensor>, b: Tensor) -> Result<Option<Tensor>> {
    Ok(Some(match acc {
        None => b,
        Some(a) => a.broadcast_add(&b)?,
    }))
}

/// The sum of every log-density of `tr` per particle (`None` when it has none).
pub(crate) fn trace_per_particle(tr: &Trace, axis: Axis, keep: impl Fn(&Site) -> bool) -> Result<Option<Tensor>> {
    let mut acc = None;
    for s in tr.nodes().filter(|s| keep(s)) {
        if let Some(lp) = s.log_prob()? {
            acc = accumulate(acc, per_particle(lp, axis)?)?;
        }
    }
    Ok(acc)
}

/// `log p(x, z) - log q(z)` per particle.
pub(crate) fn elbo_per_particle(pass: &Pass) -> Result<Tensor> {
    let model = trace_per_particle(&pass.model, pass.axis, |_| true)?;
    let guide = trace_per_particle(&pass.guide, pass.axis, |_| true)?;
    match (model, guide) {
        (Some(m), Some(g)) => Ok(m.broadcast_sub(&g)?),
        (Some(m), None) => Ok(m),
        (None, Some(g)) => Ok(g.neg()?),
        (None, None) => Err(Error::invalid_arg(
            "ELBO",
            "model",
            "neither the model nor the guide has a sample or factor site; there is nothing to fit",
        )),
    }
}

/// Whether a guide site needs a score-function term: a latent sample site whose value was not
/// drawn with `rsample` (nor enumerated: an enumerated site's expectation is exact).
pub(crate) fn needs_score(site: &Site) -> bool {
    site.kind == SiteKind::Sample
        && !site.is_observed
        && !site.intervened
        && !site.reparameterized
        && site.infer.enum_dim.is_none()
}

/// Reads a scalar tensor as `f64`.
pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// Sums of the per-particle ELBO and surrogate over passes, and the last pass's traces.
#[derive(Default)]
pub(crate) struct Totals {
    elbo: Option<Tensor>,
    surrogate: Option<Tensor>,
    last: Option<Pass>,
}

impl Totals {
    /// Adds one pass: `e` its per-particle ELBO (with gradients), `score` its score-function terms.
    pub fn add(&mut self, e: &Tensor, score: Option<Tensor>, pass: Pass) -> Result<()> {
        let mut s = e.sum_all()?;
        if let Some(score) = score {
            s = (s + score)?;
        }
        let total = e.detach().sum_all()?;
        self.elbo = accumulate(self.elbo.take(), total)?;
        self.surrogate = accumulate(self.surrogate.take(), s)?;
        self.last = Some(pass);
        Ok(())
    }

    /// The estimate over `n` particles; commits the baselines' updates only if the loss is finite.
    pub fn finish(self, n: usize, baselines: &mut super::baseline::Baselines, who: &str) -> Result<super::ElboEstimate> {
        let (Some(elbo), Some(surrogate), Some(pass)) = (self.elbo, self.surrogate, self.last) else {
            return Err(Error::invalid_arg(who, "num_particles", "must be at least 1"));
        };
        let n = n as f64;
        let loss = -scalar(&elbo)? / n;
        if loss.is_finite() {
            baselines.commit();
        } else {
            baselines.discard();
        }
        Ok(super::ElboEstimate {
            loss,
            surrogate: surrogate.affine(-1.0 / n, 0.0)?,
            model_trace: pass.model,
            guide_trace: pass.guide,
        })
    }
}
