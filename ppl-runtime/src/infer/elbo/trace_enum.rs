//! `TraceEnumElbo`: the ELBO with the model's enumerated discrete sites summed out exactly.

use super::baseline::{Baseline, Baselines};
use super::particles::{Axis, Pass, Particles, Totals, run_pass};
use super::{Bound, Elbo, ElboEstimate};
use crate::error::{Error, Result};
use crate::handlers::enum_::{DEFAULT_MAX_SUPPORT, EnumHandler};
use crate::handlers::{replay, trace};
use crate::infer::enum_::contract::Semiring;
use crate::infer::enum_::expect::guide_enumerated_elbo;
use crate::infer::enum_::sequential::{DEFAULT_MAX_SEQUENTIAL_RUNS, sequential_runs};
use crate::infer::enum_::{build, plate_nesting, unhandled_discrete, unhandled_discrete_error};
use crate::runtime::with_handler;

/// The ELBO of Pyro's `TraceEnum_ELBO`: `E_q[log Σ_z p(x, z, w) − log q(w)]`, where `z` are
/// the model's enumerated discrete sites (`enumerate = parallel`, or a model wrapped in
/// [`config_enumerate`](crate::infer::config_enumerate)), summed out exactly by variable
/// elimination, and `w` the guide's sites, drawn as in [`TraceElbo`](super::TraceElbo).
///
/// Enumerated values live in dims left of every plate dim; the number of nested plates is found
/// by running the model and guide once (or set with [`TraceEnumElbo::max_plate_nesting`]), and a
/// plate nested deeper in a later run is an error naming it. Subsampling scales are applied
/// outside each log-sum-exp, so with a subsampled plate the loss is an unbiased estimate of the
/// full-data one when the enumerated sites lie inside that plate. A latent discrete site of the
/// model that is neither enumerated nor in the guide is an error naming it.
///
/// The guide may enumerate too (Pyro's guide-side enumeration): its sites marked `enumerate =
/// parallel` (or a guide wrapped in `config_enumerate`) take all their values, and the ELBO is
/// the exact expectation over them, `Σ_{z_g} q(z_g | w) [log Σ_z p(x, z, z_g, w) − log q(z_g, w)]`:
/// the model is contracted over its own enumerated sites with the guide's kept free, and each
/// remaining term is weighted by the guide's marginal probability of the guide-enumerated sites
/// it depends on (per element for a site inside a plate). Gradients flow through those weights,
/// so the guide's enumerated sites need no score-function term. A guide-enumerated site must be
/// a latent site of the model, in the same plates; a site drawn without reparameterization after
/// (and depending on) one is not supported; nor is a model-enumerated site outside a plate that
/// depends on a guide-enumerated site inside it.
///
/// Sites marked `enumerate = sequential` are enumerated by running the programs once per value
/// (outside vectorized plates only): in the guide, each joint configuration `g` of its sequential
/// sites gets its own run, weighted by `q(g)` (with gradients), so the loss is the exact
/// expectation over `g`; in the model (sites the guide does not provide), the model runs once per
/// configuration against the same guide draw and the runs' joint densities are summed. The number
/// of runs per particle is capped by [`TraceEnumElbo::max_sequential_runs`].
///
/// Not supported yet: vectorized particles.
///
/// A guide that enumerates `z` learns the exact posterior `p(z | x)` (here `z = 1` has almost
/// all of it: the data sit at `4 z = 4`):
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use ppl_runtime::{dist::{Categorical, Normal}, infer::{config_enumerate, Svi, TraceEnumElbo}, optim::Adam, Result};
/// use ppl_runtime::primitives::{observe, param, plate, sample};
/// let data = Tensor::new(&[3.5f32, 4.2], &Device::Cpu)?;
/// let model = |x: &Tensor| -> Result<()> {
///     let z = sample("z", Categorical::new(&Tensor::new(&[0.5f32, 0.5], x.device())?)?)?;
///     let loc = (z.to_dtype(DType::F32)? * 4.0)?; // shape [2, 1]: both values, left of the plate
///     plate("data", 2, |_| observe("x", Normal::new(&loc, 1.0)?, x).map(|_| ()))
/// };
/// let guide = |x: &Tensor| -> Result<()> {
///     let logits = param("logits", Tensor::zeros(2, DType::F32, x.device())?)?;
///     sample("z", Categorical::from_logits(&logits)?).map(|_| ())
/// };
/// let mut svi = Svi::new(model, config_enumerate(guide), Adam::new(0.1), TraceEnumElbo::new()).seed(0);
/// svi.run(&data, 100)?;
/// let q: Vec<f32> = candle_nn::ops::softmax(&svi.params().get("logits")?.unwrap(), 0)?.to_vec1()?;
/// assert!(q[1] > 0.95, "{q:?}");
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::{Categorical, Normal}, infer::{config_enumerate, Svi, TraceEnumElbo}, optim::Adam, Result};
/// use ppl_runtime::primitives::{observe, param, plate, sample};
/// let data = Tensor::new(&[0f32, 1., 10., 11., 12.], &Device::Cpu)?;
/// let model = |x: &Tensor| -> Result<()> {
///     let locs = param("locs", Tensor::new(&[0f32, 10.], x.device())?)?;
///     plate("data", 5, |_| {
///         let z = sample("z", Categorical::new(&Tensor::new(&[0.5f32, 0.5], x.device())?)?)?;
///         observe("x", Normal::new(&locs.index_select(&z.flatten_all()?, 0)?.reshape(z.dims())?, 1.0)?, x).map(|_| ())
///     })
/// };
/// let guide = |_: &Tensor| -> Result<()> { Ok(()) };
/// let mut svi = Svi::new(config_enumerate(model), guide, Adam::new(0.1), TraceEnumElbo::new()).seed(0);
/// let first = svi.step(&data)?;
/// let later = svi.run(&data, 100)?;
/// assert!(later.last().unwrap() < &first);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TraceEnumElbo {
    particles: Particles,
    baselines: Baselines,
    max_support: usize,
    max_sequential_runs: usize,
}

impl Default for TraceEnumElbo {
    fn default() -> Self {
        TraceEnumElbo {
            particles: Particles::default(),
            baselines: Baselines::default(),
            max_support: DEFAULT_MAX_SUPPORT,
            max_sequential_runs: DEFAULT_MAX_SEQUENTIAL_RUNS,
        }
    }
}

impl TraceEnumElbo {
    /// One particle, plate nesting found from a first run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Draws `n` guide particles per step (default 1), one after the other.
    pub fn num_particles(mut self, n: usize) -> Self {
        self.particles.num = n;
        self
    }

    /// The number of nested plates of the model and guide (enumerated dims start left of them);
    /// found by running both once when not given.
    pub fn max_plate_nesting(mut self, k: usize) -> Self {
        self.particles.max_plate_nesting = Some(k);
        self
    }

    /// The largest support a site may enumerate (default 4096); larger is an error naming the site.
    pub fn max_support(mut self, n: usize) -> Self {
        self.max_support = n;
        self
    }

    /// The largest number of runs of the model and guide per particle that sequential enumeration
    /// may take (default 1024): one run per joint value of the `enumerate = sequential` sites. More
    /// is an error naming the sites.
    pub fn max_sequential_runs(mut self, n: usize) -> Self {
        self.max_sequential_runs = n;
        self
    }

    /// The baseline of the score-function term of the guide's site `name`.
    pub fn baseline(mut self, name: impl Into<String>, baseline: Baseline) -> Self {
        self.baselines.per_site.insert(name.into(), baseline);
        self
    }

    fn nesting(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<usize> {
        if let Some(k) = self.particles.max_plate_nesting {
            return Ok(k);
        }
        let probe = run_pass(model, guide, Axis::Single)?;
        let k = plate_nesting(&probe.model).max(plate_nesting(&probe.guide));
        self.particles.max_plate_nesting = Some(k);
        Ok(k)
    }

    fn pass(&self, model: Bound<'_>, guide: Bound<'_>, nesting: usize) -> Result<(Pass, candle_core::Tensor)> {
        // The guide runs under the enum handler too, and the model continues its allocation:
        // the model's enumerated sites take dims left of the guide's, whose values stay in scope.
        let handler = EnumHandler::new(nesting).max_support(self.max_support);
        let (res, handler) = with_handler(handler, || trace(guide));
        let ((), guide_tr) = res?;
        let guide_vars = handler.vars().len();
        let (res, handler) = with_handler(handler, || trace(|| replay(&guide_tr, model)));
        let ((), model_tr) = res?;
        if let Some(s) = model_tr.nodes().find(|s| unhandled_discrete(s) && !guide_tr.contains(&s.name)) {
            return Err(unhandled_discrete_error(s, "TraceEnumElbo"));
        }
        let e = if guide_vars > 0 {
            guide_enumerated_elbo(&model_tr, &guide_tr, handler.vars(), guide_vars, nesting)?
        } else {
            let log_p = build(&model_tr, handler.vars(), nesting)?.log_joint(Semiring::LogSum)?;
            let log_q = guide_tr.log_prob_sum()?;
            if log_q.dtype() == log_p.dtype() { log_p.broadcast_sub(&log_q)? } else { log_p.broadcast_sub(&log_q.to_dtype(log_p.dtype())?)? }
        };
        Ok((Pass { model: model_tr, guide: guide_tr, axis: Axis::Single }, e))
    }
}

impl Elbo for TraceEnumElbo {
    fn estimate(&mut self, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
        if self.particles.num == 0 {
            return Err(Error::invalid_arg("TraceEnumElbo", "num_particles", "must be at least 1"));
        }
        let nesting = self.nesting(model, guide)?;
        let mut totals = Totals::default();
        for _ in 0..self.particles.num {
            let runs = sequential_runs(model, guide, self.max_sequential_runs, |m, g| self.pass(m, g, nesting))?;
            for run in runs {
                let keep = |s: &crate::site::Site| !run.sites.contains(&s.name);
                let score = self.baselines.score_terms_where(&run.pass.guide, Axis::Single, &run.elbo.detach(), keep)?;
                let (e, score) = run.weighted(score)?;
                totals.add(&e, score, run.pass)?;
            }
        }
        totals.finish(self.particles.num, &mut self.baselines, "TraceEnumElbo")
    }
}
