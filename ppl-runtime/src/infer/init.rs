//! Initialization strategies (Pyro's `init_to_*`): where MCMC chains start, and where autoguides
//! centre their first approximation.
//!
//! A strategy gives each latent sample site a constrained starting value, site by site while the
//! model runs (so a site whose prior depends on an earlier site sees that site's starting value).
//! [`initial_position`] retries a strategy until the potential is finite there and, when no try
//! succeeds, returns an error naming the site whose log-density failed and the value it had.
//!
//! ```
//! use ppl_runtime::{dist::{HalfNormal, Normal}, infer::{init_to_median, init_trace}, Rng};
//! let model = |_: &()| -> ppl_runtime::Result<()> {
//!     let s = ppl_runtime::sample("s", HalfNormal::new(1.0)?)?;
//!     ppl_runtime::sample("x", Normal::new(3.0, &s)?)?;
//!     Ok(())
//! };
//! let tr = init_trace(&model, &(), &init_to_median(), &mut Rng::seed_from_u64(0))?;
//! let x = tr.value("x")?.to_scalar::<f32>()?;
//! assert!((x - 3.0).abs() < 1.0);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

use crate::dist::biject_to;
use crate::error::{Error, Result};
use crate::handlers::{Data, Seed, substitute, trace};
use crate::infer::potential::{Potential, catch_panic, is_recoverable, site_log_prob_sum};
use crate::infer::program::Program;
use crate::rng::Rng;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind};
use crate::trace::Trace;
use candle_core::{DType, Tensor};
use std::fmt;

/// How a latent site gets its starting value.
#[derive(Clone, Debug)]
pub enum InitStrategy {
    /// Uniform in `(-radius, radius)` in unconstrained space, mapped onto the support (Stan's and
    /// Pyro's default, with `radius = 2`).
    Uniform {
        /// Half-width of the unconstrained interval.
        radius: f64,
    },
    /// The element-wise median of `num_samples` prior draws (falls back to `Feasible` when the
    /// distribution cannot be sampled).
    Median {
        /// Number of prior draws.
        num_samples: usize,
    },
    /// The prior mean (falls back to `Median` when the mean is unknown or infinite).
    Mean,
    /// One prior draw.
    Sample,
    /// The image of zero under the support's bijection (a point well inside the support).
    Feasible,
    /// Given constrained values by site name; other sites use `fallback`.
    Value {
        /// Constrained starting values.
        values: Data,
        /// The strategy for sites without a value.
        fallback: Box<InitStrategy>,
    },
}

impl Default for InitStrategy {
    /// [`init_to_uniform`]`(2.0)`.
    fn default() -> Self {
        init_to_uniform(2.0)
    }
}

impl fmt::Display for InitStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitStrategy::Uniform { radius } => write!(f, "init_to_uniform({radius})"),
            InitStrategy::Median { num_samples } => write!(f, "init_to_median({num_samples} samples)"),
            InitStrategy::Mean => f.write_str("init_to_mean"),
            InitStrategy::Sample => f.write_str("init_to_sample"),
            InitStrategy::Feasible => f.write_str("init_to_feasible"),
            InitStrategy::Value { fallback, .. } => write!(f, "init_to_value (else {fallback})"),
        }
    }
}

/// Uniform in `(-radius, radius)` on the unconstrained scale (the default uses `radius = 2`).
pub fn init_to_uniform(radius: f64) -> InitStrategy {
    InitStrategy::Uniform { radius }
}

/// The median of 15 prior draws.
pub fn init_to_median() -> InitStrategy {
    InitStrategy::Median { num_samples: 15 }
}

/// The prior mean, else the median.
pub fn init_to_mean() -> InitStrategy {
    InitStrategy::Mean
}

/// One prior draw.
pub fn init_to_sample() -> InitStrategy {
    InitStrategy::Sample
}

/// The image of unconstrained zero: `0` for reals, `1` for positive values, the centre of an
/// interval, the uniform simplex.
pub fn init_to_feasible() -> InitStrategy {
    InitStrategy::Feasible
}

/// The given constrained values; sites not in `values` use [`init_to_uniform`]`(2.0)`.
pub fn init_to_value(values: Data) -> InitStrategy {
    InitStrategy::Value { values, fallback: Box::new(init_to_uniform(2.0)) }
}

impl InitStrategy {
    /// The constrained starting value of the latent sample site `msg` (which carries its
    /// distribution), drawn with `rng` where the strategy is random.
    pub fn site_value(&self, msg: &Message, rng: &mut Rng) -> Result<Tensor> {
        let dist = msg.dist()?;
        let shape: Vec<usize> = dist.batch_shape().iter().chain(dist.event_shape()).copied().collect();
        let (dtype, device) = (dist.dtype(), dist.device().clone());
        let unconstrained = |rng: &mut Rng, radius: f64| -> Result<Tensor> {
            let t = biject_to(&dist.support())?;
            let ushape = t.inverse_shape(&shape)?;
            let x = if radius == 0.0 {
                Tensor::zeros(ushape, dtype, &device)?
            } else {
                rng.uniform_tensor(&ushape, dtype, &device)?.affine(2.0 * radius, -radius)?
            };
            t.forward(&x)
        };
        match self {
            InitStrategy::Uniform { radius } => unconstrained(rng, *radius),
            InitStrategy::Feasible => unconstrained(rng, 0.0),
            InitStrategy::Sample => dist.sample(rng, &[]),
            InitStrategy::Median { num_samples } => {
                let n = (*num_samples).max(1);
                let draws = match dist.sample(rng, &[n]) {
                    Ok(d) => d,
                    Err(_) => return InitStrategy::Feasible.site_value(msg, rng),
                };
                let numel: usize = shape.iter().product();
                let rows = draws.to_dtype(DType::F64)?.reshape((n, numel))?.t()?.contiguous()?.to_vec2::<f64>()?;
                let med: Vec<f64> = rows.into_iter().map(median).collect();
                Ok(Tensor::from_vec(med, shape.as_slice(), &device)?.to_dtype(dtype)?)
            }
            InitStrategy::Mean => match dist.mean() {
                Ok(m) if m.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?.iter().all(|x| x.is_finite()) => {
                    Ok(m.broadcast_as(shape.as_slice())?.contiguous()?)
                }
                _ => init_to_median().site_value(msg, rng),
            },
            InitStrategy::Value { values, fallback } => match values.get(&msg.name) {
                Some(v) => {
                    if v.dims() != shape.as_slice() {
                        return Err(Error::shape_mismatch("init_to_value", &shape, v.dims()));
                    }
                    Ok(v.to_dtype(dtype)?.to_device(&device)?)
                }
                None => fallback.site_value(msg, rng),
            },
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Sets every latent sample site without a value to the strategy's starting value, and converts
/// observed values of another float dtype to the distribution's.
pub struct InitHandler {
    strategy: InitStrategy,
    rng: Rng,
}

impl InitHandler {
    /// A handler that draws starting values with `rng`.
    pub fn new(strategy: InitStrategy, rng: Rng) -> Self {
        InitHandler { strategy, rng }
    }
}

impl Handler for InitHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind != SiteKind::Sample || msg.intervened {
            return Ok(());
        }
        if msg.is_observed {
            if let (Some(v), Some(d)) = (&msg.value, &msg.dist)
                && v.dtype().is_float()
                && v.dtype() != d.dtype()
            {
                msg.value = Some(v.to_dtype(d.dtype())?);
            }
            return Ok(());
        }
        if msg.value.is_none() {
            // An enumerated site is summed out, not initialized: any value of its support will do.
            let dist = msg.dist.clone().filter(|d| msg.infer.enumerate.is_some() && d.has_enumerate_support());
            msg.value = Some(match dist {
                Some(d) => d.sample(&mut self.rng, &[])?,
                None => self.strategy.site_value(msg, &mut self.rng)?,
            });
        }
        Ok(())
    }
}

/// One traced run of `model` with every latent site at the strategy's starting value.
pub fn init_trace<A: ?Sized, M, P: Program<A, M>>(
    model: &P,
    args: &A,
    strategy: &InitStrategy,
    rng: &mut Rng,
) -> Result<Trace> {
    let handler = InitHandler::new(strategy.clone(), rng.split());
    let seed = Seed::from_rng(rng.split());
    catch_panic(|| with_handler(seed, || with_handler(handler, || trace(|| model.run(args))).0).0).map(|(_, tr)| tr)
}

/// The constrained latent values of a trace, by site name.
pub fn latent_values(trace: &Trace) -> Data {
    trace.latent_sites().filter_map(|s| s.value.clone().map(|v| (s.name.clone(), v))).collect()
}

/// A flat unconstrained starting point where `potential` is finite, its log-density and
/// gradient: up to `max_tries` runs of `model` under `strategy`. A non-recoverable error is
/// returned at once; when every try fails, the error names the site whose log-density failed
/// at the last try and the value it had there.
#[allow(clippy::too_many_arguments)]
pub fn initial_position<A: ?Sized, M, P: Program<A, M>>(
    potential: &mut impl Potential,
    layout: &crate::infer::Layout,
    model: &P,
    args: &A,
    strategy: &InitStrategy,
    rng: &mut Rng,
    max_tries: usize,
) -> Result<(Vec<f64>, f64, Vec<f64>)> {
    let mut grad = vec![0.0; layout.dim()];
    let mut last: Option<(Data, Error)> = None;
    for _ in 0..max_tries.max(1) {
        let tr = init_trace(model, args, strategy, rng)?;
        let values = latent_values(&tr);
        let x = layout.unconstrain(&values)?;
        match potential.log_density(&x, &mut grad) {
            Ok(lp) => return Ok((x, lp, grad)),
            Err(e) if is_recoverable(&e) => last = Some((values, e)),
            Err(e) => return Err(e),
        }
    }
    let (values, err) = last.expect("at least one try ran");
    Err(explain_failure(model, args, &values, strategy, max_tries, err))
}

/// Finds the first site whose log-density errs or is not finite at `values`.
fn explain_failure<A: ?Sized, M, P: Program<A, M>>(
    model: &P,
    args: &A,
    values: &Data,
    strategy: &InitStrategy,
    tries: usize,
    err: Error,
) -> Error {
    let prefix = format!("no valid starting point in {tries} tries of {strategy}");
    let tr = substitute(values.clone(), || {
        with_handler(InitHandler::new(InitStrategy::Feasible, Rng::seed_from_u64(0)), || trace(|| model.run(args))).0
    });
    let tr = match tr {
        Ok((_, tr)) => tr,
        Err(e) => return Error::invalid_arg("MCMC initialization", "model", format!("{prefix}: {e}")),
    };
    for site in tr.nodes().filter(|s| s.has_log_prob()) {
        let bad = match site_log_prob_sum(site) {
            Err(e) => Some(e.to_string()),
            Ok(lp) => match lp.to_dtype(DType::F64).and_then(|t| t.to_scalar::<f64>()) {
                Ok(v) if v.is_finite() => None,
                Ok(v) => Some(format!("its log-density is {v}")),
                Err(e) => Some(e.to_string()),
            },
        };
        if let Some(why) = bad {
            let value = site.value.as_ref().map(short_values).unwrap_or_default();
            return Error::invalid_arg(
                "MCMC initialization",
                "init strategy",
                format!("{prefix}: {why} at value {value}"),
            )
            .at_site(&site.name, site.location());
        }
    }
    Error::invalid_arg("MCMC initialization", "init strategy", format!("{prefix}: {err}"))
}

/// The first few elements of a tensor, for messages.
pub(crate) fn short_values(t: &Tensor) -> String {
    let flat = t.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f64>());
    match flat {
        Ok(v) => {
            let shown: Vec<String> = v.iter().take(6).map(|x| format!("{x:.4}")).collect();
            let more = if v.len() > 6 { ", ..." } else { "" };
            if t.rank() == 0 { shown.join("") } else { format!("[{}{more}] (shape {:?})", shown.join(", "), t.dims()) }
        }
        Err(_) => format!("(shape {:?})", t.dims()),
    }
}
