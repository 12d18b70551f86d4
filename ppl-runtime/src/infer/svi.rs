//! [`Svi`]: stochastic variational inference — fit a guide's parameters by gradient steps on an ELBO.

use super::checks;
use super::elbo::{Elbo, ElboEstimate};
use super::program::Program;
use crate::dist::{Constraint, biject_to};
use crate::error::{Error, Result};
use crate::handlers::Seed;
use crate::optim::Optimizer;
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::runtime::with_handler;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::Path;

/// A model or guide with its output type erased, as inference objects store them.
pub(crate) trait ErasedProgram<A: ?Sized> {
    fn run_erased(&self, args: &A) -> Result<()>;
}

struct Erased<P, M>(P, PhantomData<fn() -> M>);

impl<A: ?Sized, M, P: Program<A, M>> ErasedProgram<A> for Erased<P, M> {
    fn run_erased(&self, args: &A) -> Result<()> {
        self.0.run(args).map(|_| ())
    }
}

/// Boxes a program, forgetting its output.
pub(crate) fn erase<A: ?Sized, M: 'static, P: Program<A, M> + 'static>(p: P) -> Box<dyn ErasedProgram<A>> {
    Box::new(Erased(p, PhantomData))
}

/// splitmix64: a well-mixed 64-bit hash, used to derive one generator per step from the seed.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A seed drawn from the operating system's entropy.
/// The seed of the generator that step `step` (counted from 1: the value of
/// [`Svi::step_count`] after that step) of an [`Svi`] built with `.seed(seed)` runs its guide and
/// model under. A hand-written training loop that draws from `Rng::seed_from_u64(step_seed(seed,
/// step))` in the order the guide and model do reproduces `Svi`'s draws, hence its losses.
///
/// ```
/// use ppl_runtime::infer::svi::step_seed;
/// assert_ne!(step_seed(1, 1), step_seed(1, 2));
/// assert_ne!(step_seed(1, 1), step_seed(2, 1));
/// ```
pub fn step_seed(seed: u64, step: u64) -> u64 {
    mix(seed ^ mix(step))
}

pub(crate) fn entropy_seed() -> u64 {
    let mut r = Rng::from_entropy();
    (r.uniform_open01() * 9_007_199_254_740_992.0) as u64
}

/// Stochastic variational inference (Pyro's `SVI`): each [`step`](Svi::step) runs the guide and
/// the model under an [`Elbo`], differentiates its surrogate and lets the optimizer update the
/// parameters in place.
///
/// `Svi` owns its [`ParamStore`] (two `Svi`s never share parameters), its optimizer state and its
/// random generator: with a [`seed`](Svi::seed), a run is reproducible, and step `k` draws the
/// same numbers whether or not the run was saved and resumed in between
/// ([`save`](Svi::save)/[`load`](Svi::load)).
///
/// The model and guide take the same arguments `&A`. Several inputs go in a tuple or a struct:
/// `|(x, y): &(Tensor, Tensor)| ...`, called as `svi.step(&(x, y))`.
///
/// On the first step the model and guide are checked against each other
/// ([`checks::check_model_guide`]); turn that off with [`Svi::checks`]. A step whose loss or
/// gradient is not finite updates nothing and returns [`Error::NonFiniteStep`] naming the first
/// site that went non-finite, with its source location.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::{Bernoulli, Beta, Constraint}, infer::{Svi, TraceElbo}, optim::Adam, Result};
/// use ppl_runtime::primitives::{observe, param_with, plate, sample, ParamOptions};
/// // Beta–Bernoulli: 6 heads in 10 flips; exact posterior Beta(7, 5) under a Beta(1, 1) prior.
/// let flips = Tensor::new(&[1f32, 1., 1., 1., 1., 1., 0., 0., 0., 0.], &Device::Cpu)?;
/// let model = |x: &Tensor| -> Result<()> {
///     let p = sample("p", Beta::new(1.0, 1.0)?)?;
///     plate("flips", 10, |_| observe("x", Bernoulli::new(&p)?, x).map(|_| ()))
/// };
/// let guide = |_: &Tensor| -> Result<()> {
///     let pos = ParamOptions { constraint: Constraint::Positive, ..Default::default() };
///     let a = param_with("a", 1.0, pos.clone())?;
///     let b = param_with("b", 1.0, pos)?;
///     sample("p", Beta::new(&a, &b)?).map(|_| ())
/// };
/// let mut svi = Svi::new(model, guide, Adam::new(0.05), TraceElbo::default()).seed(0);
/// let losses = svi.run(&flips, 300)?;
/// assert!(losses.iter().all(|l| l.is_finite()));
/// let a = svi.params().get("a")?.unwrap().to_scalar::<f32>()?;
/// let b = svi.params().get("b")?.unwrap().to_scalar::<f32>()?;
/// assert!((a / (a + b) - 7.0 / 12.0).abs() < 0.1);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub struct Svi<A: ?Sized> {
    model: Box<dyn ErasedProgram<A>>,
    guide: Box<dyn ErasedProgram<A>>,
    optim: Box<dyn Optimizer>,
    loss: Box<dyn Elbo>,
    params: ParamStore,
    seed: u64,
    step: u64,
    evals: u64,
    checks: bool,
    checked: bool,
}

impl<A: ?Sized> Svi<A> {
    /// SVI of `model` with `guide`, optimizing with `optim` on the objective `loss`.
    ///
    /// `model` and `guide` are any `Fn(&A) -> Result<R>` (or program objects such as autoguides).
    pub fn new<M, MM, G, GM, O, L>(model: M, guide: G, optim: O, loss: L) -> Svi<A>
    where
        M: Program<A, MM> + 'static,
        MM: 'static,
        G: Program<A, GM> + 'static,
        GM: 'static,
        O: Optimizer + 'static,
        L: Elbo + 'static,
    {
        Svi {
            model: erase(model),
            guide: erase(guide),
            optim: Box::new(optim),
            loss: Box::new(loss),
            params: ParamStore::new(),
            seed: entropy_seed(),
            step: 0,
            evals: 0,
            checks: true,
            checked: false,
        }
    }

    /// Seeds the run: the same seed gives the same losses and parameters.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Turns the first-step model/guide checks on (the default) or off.
    pub fn checks(mut self, on: bool) -> Self {
        self.checks = on;
        self
    }

    /// Starts from (a handle on) an existing parameter store instead of an empty one.
    pub fn with_params(mut self, params: ParamStore) -> Self {
        self.params = params;
        self
    }

    /// The parameters: `svi.params().get("loc")?` is the constrained value.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The number of steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    fn estimate(&mut self, args: &A, stream: u64) -> Result<ElboEstimate> {
        let rng = Rng::seed_from_u64(step_seed(self.seed, stream));
        let (model, guide, loss, params) = (&self.model, &self.guide, &mut self.loss, &self.params);
        let run_model = || model.run_erased(args);
        let run_guide = || guide.run_erased(args);
        with_handler(Seed::from_rng(rng), || params.scope(|| loss.estimate(&run_model, &run_guide))).0
    }

    /// One optimization step; returns the loss (−ELBO estimate) before the update.
    pub fn step(&mut self, args: &A) -> Result<f64> {
        self.step += 1;
        let step = self.step;
        let est = match self.estimate(args, step) {
            Ok(est) => est,
            Err(e) if self.checks && !self.checked => return Err(self.diagnose(args, step).unwrap_or(e)),
            Err(e) => return Err(e),
        };
        if self.checks && !self.checked {
            checks::check_model_guide(&est.model_trace, &est.guide_trace)?;
            self.checked = true;
        }
        if !est.loss.is_finite() {
            let what = format!("the loss is {}", est.loss);
            return Err(checks::non_finite_error(step, &what, &est.model_trace, &est.guide_trace, &self.params, None)?);
        }
        let grads = est.surrogate.backward()?;
        if checks::first_non_finite_grad(&self.params, &grads)?.is_some() {
            return Err(checks::non_finite_error(
                step,
                "a gradient is not finite",
                &est.model_trace,
                &est.guide_trace,
                &self.params,
                Some(&grads),
            )?);
        }
        self.optim.step(&self.params, &grads)?;
        self.optim.observe_loss(est.loss);
        Ok(est.loss)
    }

    /// When the first step fails, a model/guide mismatch is often the cause (a guide drawing
    /// outside the model's support makes the model's distributions fail): compares the guide's
    /// trace with a trace of the model run from its prior, and returns the mismatch if any.
    fn diagnose(&self, args: &A, step: u64) -> Option<Error> {
        let rng = Rng::seed_from_u64(step_seed(self.seed, step));
        let (model, guide, params) = (&self.model, &self.guide, &self.params);
        let traces = with_handler(Seed::from_rng(rng), || {
            params.scope(|| -> Result<_> {
                let ((), g) = crate::handlers::trace(|| guide.run_erased(args))?;
                let ((), m) = crate::handlers::trace(|| model.run_erased(args))?;
                Ok((m, g))
            })
        })
        .0
        .ok()?;
        checks::check_model_guide(&traces.0, &traces.1).err()
    }

    /// The loss (−ELBO estimate) at the current parameters, without updating them. Draws from a
    /// stream of its own, so evaluating does not change the steps' draws.
    pub fn evaluate_loss(&mut self, args: &A) -> Result<f64> {
        self.evals += 1;
        let est = self.estimate(args, u64::MAX - self.evals)?;
        Ok(est.loss)
    }

    /// Takes `num_steps` steps and returns their losses, showing a progress bar (step, smoothed
    /// loss, iterations per second) when standard error is a terminal.
    pub fn run(&mut self, args: &A, num_steps: usize) -> Result<Vec<f64>> {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        let bar = ProgressBar::with_draw_target(Some(num_steps as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} loss {msg} [{elapsed_precise}, {per_sec}]") {
            bar.set_style(style);
        }
        let mut losses = Vec::with_capacity(num_steps);
        let mut smooth: Option<f64> = None;
        for i in 0..num_steps {
            let loss = self.step(args)?;
            losses.push(loss);
            let s = smooth.map_or(loss, |s| 0.9 * s + 0.1 * loss);
            smooth = Some(s);
            if i % 10 == 0 || i + 1 == num_steps {
                bar.set_position(i as u64 + 1);
                if !bar.is_hidden() {
                    bar.set_message(format!("{s:.4}"));
                }
            }
        }
        bar.finish();
        Ok(losses)
    }

    /// Writes the parameters (unconstrained values and constraints), the optimizer state, the
    /// seed and the step count to a safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let st_err = |message: String| Error::Safetensors { path: path.display().to_string(), message };
        let cpu = Device::Cpu;
        let mut meta = HashMap::new();
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, var) in self.params.vars() {
            let c = self.params.constraint(&name).unwrap_or(Constraint::Real);
            meta.insert(format!("constraint.{name}"), c.to_string());
            tensors.push((format!("param/{name}"), var.as_tensor().to_device(&cpu)?));
        }
        for (key, t) in self.optim.state()? {
            tensors.push((format!("optim/{key}"), t.to_device(&cpu)?));
        }
        meta.insert("format".into(), "ppl.Svi.v1".into());
        meta.insert("seed".into(), self.seed.to_string());
        meta.insert("step".into(), self.step.to_string());
        meta.insert("evals".into(), self.evals.to_string());
        safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta), path)
            .map_err(|e| st_err(e.to_string()))
    }

    /// Restores a file written by [`Svi::save`]: parameters (bit-exact), optimizer state, seed and
    /// step count, so the next step is the step the saved run would have taken. Parameters go
    /// on the device they already have, or on `device` when new.
    pub fn load(&mut self, path: impl AsRef<Path>, device: &Device) -> Result<()> {
        let path = path.as_ref();
        let st_err = |message: String| Error::Safetensors { path: path.display().to_string(), message };
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| st_err(e.to_string()))?;
        let info = header.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some("ppl.Svi.v1") {
            return Err(st_err("not an SVI checkpoint (missing `format: ppl.Svi.v1` metadata)".into()));
        }
        let number = |key: &str| -> Result<u64> {
            info.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| st_err(format!("missing or invalid `{key}` metadata")))
        };
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let mut names: Vec<&String> = tensors.keys().filter(|k| k.starts_with("param/")).collect();
        names.sort();
        for key in names {
            let name = &key["param/".len()..];
            let c: Constraint = info
                .get(&format!("constraint.{name}"))
                .ok_or_else(|| st_err(format!("no constraint recorded for `{name}`")))?
                .parse()?;
            let raw = &tensors[key];
            match self.params.get_unconstrained(name) {
                Some(var) if var.dims() == raw.dims() && self.params.constraint(name).as_ref() == Some(&c) => {
                    var.set(&raw.to_device(var.device())?.to_dtype(var.dtype())?)?;
                }
                _ => {
                    let raw = raw.to_device(device)?;
                    self.params.set(name, &biject_to(&c)?.forward(&raw)?, c)?;
                    if let Some(var) = self.params.get_unconstrained(name) {
                        var.set(&raw.to_dtype(var.dtype())?)?;
                    }
                }
            }
        }
        let optim: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix("optim/").map(|k| (k.to_string(), t.clone())))
            .collect();
        self.optim.load_state(&optim)?;
        self.seed = number("seed")?;
        self.step = number("step")?;
        self.evals = number("evals")?;
        self.checked = self.step > 0;
        Ok(())
    }
}

impl<A: ?Sized> std::fmt::Debug for Svi<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svi").field("step", &self.step).field("params", &self.params).finish()
    }
}
