//! Sequential enumeration (`enumerate = sequential`): the guide, or the model, runs once per value
//! of each such site instead of laying the values out along a tensor dim (Pyro's
//! `iter_discrete_traces` over `poutine.queue`).
//!
//! A [`SequentialHandler`] gives each sequential site one value of its support per run. The
//! configurations are explored depth first: a run follows a *prefix* of choices made on earlier
//! runs, takes the first value at every site met beyond it, and leaves one new prefix per other
//! value to explore, so a site whose support depends on earlier values is enumerated correctly and
//! every run is one joint configuration (no run is thrown away).
//!
//! [`sequential_runs`] nests two such searches for [`TraceEnumElbo`](crate::infer::TraceEnumElbo):
//! per configuration `g` of the guide's sequential sites, the model runs once per configuration
//! `m` of its own (not provided by the guide) against the same guide trace (replayed), and the
//! per-run ELBOs `log p(x, g, m, ..) − log q(g, ..)` combine by log-sum-exp over `m`. The caller
//! weights configuration `g` by `q(g)`, not detached: the loss is the exact expectation over `g`.

use crate::dist::special::log_sum_exp;
use crate::error::{Error, Result};
use crate::handlers::replay;
use crate::infer::elbo::Bound;
use crate::infer::elbo::particles::Pass;
use crate::runtime::{Handler, with_handler};
use crate::site::{Enumerate, Message, SiteKind};
use crate::trace::Trace;
use candle_core::Tensor;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::rc::Rc;

/// The default largest number of runs of the model and guide that sequential enumeration may take
/// per particle (see [`TraceEnumElbo::max_sequential_runs`](crate::infer::TraceEnumElbo::max_sequential_runs)).
pub const DEFAULT_MAX_SEQUENTIAL_RUNS: usize = 1024;

/// One value chosen at a sequential site: its index in the site's support of `size` values.
#[derive(Clone, Debug)]
struct Choice {
    name: String,
    index: usize,
    size: usize,
}

/// Which program a handler enumerates (for error messages).
#[derive(Clone, Copy, Debug)]
enum Side {
    Guide,
    Model,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Guide => "guide",
            Side::Model => "model",
        }
    }
}

/// Gives every unset latent sample site marked `enumerate = sequential` one value of its support.
#[derive(Debug)]
struct SequentialHandler {
    side: Side,
    /// The choices this run must repeat, in the order their sites come.
    prefix: Vec<Choice>,
    /// The choices made in this run so far.
    chosen: Vec<Choice>,
    /// Prefixes left to explore, found in this run.
    branches: Vec<Vec<Choice>>,
    /// Sites left alone (the model's sites whose values the guide's trace provides).
    skip: Rc<HashSet<String>>,
    /// The names of the sample sites met.
    seen: HashSet<String>,
}

/// What one run of a program under a [`SequentialHandler`] found.
#[derive(Debug)]
struct Outcome {
    chosen: Vec<Choice>,
    branches: Vec<Vec<Choice>>,
}

impl SequentialHandler {
    fn new(side: Side, prefix: Vec<Choice>, skip: Rc<HashSet<String>>) -> Self {
        SequentialHandler { side, prefix, chosen: Vec::new(), branches: Vec::new(), skip, seen: HashSet::new() }
    }

    fn enumerate(&mut self, msg: &mut Message) -> Result<()> {
        let side = self.side.name();
        if let Some(f) = msg.cond_indep_stack.iter().find(|f| f.vectorized() && f.subsample_size > 1) {
            return Err(Error::Enumeration(format!(
                "the {side} site is marked `enumerate = sequential` but lies in the vectorized plate `{}` of size {}; \
                 sequential enumeration would run the {side} once per joint value of all {} elements: mark the site \
                 `enumerate = parallel`, or iterate with a sequential plate (`seq_plate`/`markov`)",
                f.name, f.subsample_size, f.subsample_size
            )));
        }
        if matches!(self.side, Side::Model) && msg.scale != 1.0 {
            return Err(Error::Enumeration(format!(
                "the model site is marked `enumerate = sequential` but its log-density is scaled by {} (a subsampled \
                 plate or `scale`); the model's runs are summed as densities, so the scale would land inside the sum: \
                 mark the site `enumerate = parallel`",
                msg.scale
            )));
        }
        let dist = msg.dist()?.clone();
        if !dist.has_enumerate_support() {
            return Err(Error::Enumeration(format!(
                "the {side} site is marked `enumerate = sequential` but `{}` (support `{}`) has no finite support \
                 to enumerate",
                dist.name(),
                dist.support()
            )));
        }
        // A model site's batch may carry the dims of parallel-enumerated sites it depends on (its
        // one value per run broadcasts against them); a guide site's value must be its whole draw.
        let batch = dist.batch_shape();
        if matches!(self.side, Side::Guide) && batch.iter().product::<usize>() != 1 {
            return Err(Error::Enumeration(format!(
                "the guide site is marked `enumerate = sequential` but `{}` has batch shape {batch:?}; sequential \
                 enumeration gives a site one value per run, so its batch must hold one element: mark it \
                 `enumerate = parallel`",
                dist.name()
            )));
        }
        let support = dist.enumerate_support(false)?;
        let size = support.dim(0)?;
        if size == 0 {
            return Err(Error::Enumeration(format!("the support of `{}` is empty", dist.name())));
        }
        let index = match self.prefix.get(self.chosen.len()) {
            Some(c) if c.name == msg.name && c.size == size => c.index,
            Some(c) if c.name == msg.name => {
                return Err(Error::Enumeration(format!(
                    "the support of the {side} site had {} values on an earlier run with the same earlier values, \
                     {size} now; with sequential enumeration, supports may depend only on the values of earlier \
                     sequential sites",
                    c.size
                )));
            }
            Some(c) => {
                return Err(Error::Enumeration(format!(
                    "the {side} site came where `{}` did on an earlier run with the same values of the sequential \
                     sites before it; with sequential enumeration, which sites run may depend only on the values of \
                     earlier sequential sites, not on random draws",
                    c.name
                )));
            }
            None => {
                for index in (1..size).rev() {
                    let mut b = self.chosen.clone();
                    b.push(Choice { name: msg.name.clone(), index, size });
                    self.branches.push(b);
                }
                0
            }
        };
        msg.value = Some(support.get(index)?);
        self.chosen.push(Choice { name: msg.name.clone(), index, size });
        Ok(())
    }

    /// The run's outcome; an error when a site of the prefix did not come.
    fn finish(self) -> Result<(Outcome, HashSet<String>)> {
        if let Some(c) = self.prefix.get(self.chosen.len()) {
            return Err(Error::Enumeration(format!(
                "the {} site `{}`, enumerated sequentially on an earlier run, did not come on a run with the same \
                 values of the sequential sites before it; with sequential enumeration, which sites run may depend \
                 only on the values of earlier sequential sites, not on random draws",
                self.side.name(),
                c.name
            )));
        }
        Ok((Outcome { chosen: self.chosen, branches: self.branches }, self.seen))
    }
}

impl Handler for SequentialHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind != SiteKind::Sample {
            return Ok(());
        }
        if matches!(self.side, Side::Guide) {
            self.seen.insert(msg.name.clone());
        }
        if msg.infer.enumerate == Some(Enumerate::Sequential)
            && msg.value.is_none()
            && !msg.is_observed
            && !msg.intervened
            && !self.skip.contains(&msg.name)
        {
            self.enumerate(msg)?;
        }
        Ok(())
    }
}

/// One configuration of the guide's sequential sites.
pub(crate) struct SequentialRun {
    /// The traces of its first run.
    pub pass: Pass,
    /// Its ELBO: `log Σ_m exp(ELBO_m)` over the configurations `m` of the model's sequential sites
    /// (just the run's ELBO when the model has none).
    pub elbo: Tensor,
    /// `Σ log q` of the guide's sequential sites (unscaled, unmasked: the probability of the
    /// configuration), with gradients; `None` when the guide has none.
    pub log_weight: Option<Tensor>,
    /// The names of the guide's sequential sites.
    pub sites: HashSet<String>,
}

impl SequentialRun {
    /// `(q(g) · elbo, q(g).detach() · score)`: the configuration's share of the ELBO (the gradient
    /// reaches the weight) and of the score-function terms of the guide's sampled sites.
    pub fn weighted(&self, score: Option<Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        let Some(lw) = &self.log_weight else { return Ok((self.elbo.clone(), score)) };
        let w = lw.to_dtype(self.elbo.dtype())?.exp()?;
        let e = self.elbo.broadcast_mul(&w)?;
        let score = match score {
            Some(s) => Some(s.broadcast_mul(&w.detach().to_dtype(s.dtype())?)?),
            None => None,
        };
        Ok((e, score))
    }
}

/// The state the wrapped guide and model share with the driver.
#[derive(Default)]
struct Shared {
    guide_prefix: Vec<Choice>,
    model_prefix: Vec<Choice>,
    /// The guide's sample sites on the last fresh run (the model handler leaves them alone).
    guide_sites: Rc<HashSet<String>>,
    /// The guide trace that later model configurations replay.
    replayed: Option<Trace>,
    guide_done: Option<Outcome>,
    model_done: Option<Outcome>,
}

/// The sites of a guide trace that a replay must repeat: all but those enumerated in parallel
/// (an enum handler around the guide gives those the same values again, and must see them unset
/// to lay them out).
fn replayable(guide: &Trace) -> Result<Trace> {
    let mut tr = Trace::new();
    for site in guide.nodes().filter(|s| s.infer.enum_dim.is_none()) {
        tr.add(site.clone())?;
    }
    Ok(tr)
}

fn too_many_runs(max_runs: usize, found: &[(String, usize)]) -> Error {
    let mut list = String::new();
    for (i, (name, size)) in found.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(list, "{sep}`{name}` ({size} values)");
    }
    Error::Enumeration(format!(
        "sequential enumeration needs more than {max_runs} runs of the model and guide (sequential sites {list}, \
         and maybe more); raise `max_sequential_runs`, or mark some of them `enumerate = parallel`"
    ))
}

fn internal(what: &str) -> Error {
    Error::Enumeration(format!("internal: sequential enumeration: {what}"))
}

/// Runs `pass` once per joint configuration of the sequential sites of `guide` and `model` and
/// returns one [`SequentialRun`] per configuration of the guide's (those of probability zero
/// left out). `pass(model, guide)` must run `guide` once, then `model`, and return the traces
/// and the run's ELBO (a scalar). More than `max_runs` runs in all is an error naming the sites.
pub(crate) fn sequential_runs(
    model: Bound<'_>,
    guide: Bound<'_>,
    max_runs: usize,
    mut pass: impl FnMut(Bound<'_>, Bound<'_>) -> Result<(Pass, Tensor)>,
) -> Result<Vec<SequentialRun>> {
    let shared = RefCell::new(Shared::default());
    let wrapped_guide = || -> Result<()> {
        let replayed = shared.borrow_mut().replayed.take();
        if let Some(tr) = replayed {
            let res = replay(&tr, guide);
            shared.borrow_mut().replayed = Some(tr);
            return res;
        }
        let prefix = shared.borrow().guide_prefix.clone();
        let (res, h) = with_handler(SequentialHandler::new(Side::Guide, prefix, Rc::default()), guide);
        res?;
        let (outcome, seen) = h.finish()?;
        let mut s = shared.borrow_mut();
        s.guide_sites = Rc::new(seen);
        s.guide_done = Some(outcome);
        Ok(())
    };
    let wrapped_model = || -> Result<()> {
        let (prefix, skip) = {
            let s = shared.borrow();
            (s.model_prefix.clone(), s.guide_sites.clone())
        };
        let (res, h) = with_handler(SequentialHandler::new(Side::Model, prefix, skip), model);
        res?;
        shared.borrow_mut().model_done = Some(h.finish()?.0);
        Ok(())
    };

    let mut out = Vec::new();
    let mut runs = 0usize;
    let mut found: Vec<(String, usize)> = Vec::new();
    let note = |found: &mut Vec<(String, usize)>, chosen: &[Choice]| {
        for c in chosen {
            if !found.iter().any(|(n, _)| n == &c.name) {
                found.push((c.name.clone(), c.size));
            }
        }
    };
    let mut guide_stack: Vec<Vec<Choice>> = vec![Vec::new()];
    while let Some(guide_prefix) = guide_stack.pop() {
        {
            let mut s = shared.borrow_mut();
            s.guide_prefix = guide_prefix;
            s.replayed = None;
        }
        let mut model_stack: Vec<Vec<Choice>> = vec![Vec::new()];
        let mut first: Option<(Pass, Vec<Choice>)> = None;
        let mut elbos = Vec::new();
        while let Some(model_prefix) = model_stack.pop() {
            shared.borrow_mut().model_prefix = model_prefix;
            let (p, e) = pass(&wrapped_model, &wrapped_guide)?;
            runs += 1;
            let (guide_done, model_done) = {
                let mut s = shared.borrow_mut();
                (s.guide_done.take(), s.model_done.take())
            };
            let model_done = model_done.ok_or_else(|| internal("the model did not run"))?;
            note(&mut found, &model_done.chosen);
            model_stack.extend(model_done.branches);
            if first.is_none() {
                let guide_done = guide_done.ok_or_else(|| internal("the guide did not run"))?;
                note(&mut found, &guide_done.chosen);
                guide_stack.extend(guide_done.branches);
                if !model_stack.is_empty() {
                    // Each run's ELBO is then already an expectation over the guide's parallel
                    // sites; the log-sum-exp over the model's runs must come inside it.
                    if let Some(g) = p.guide.nodes().find(|s| s.infer.enum_dim.is_some()) {
                        let m = model_done.chosen.first().map_or("?", |c| c.name.as_str());
                        return Err(Error::Enumeration(format!(
                            "the model site `{m}` is enumerated sequentially while the guide enumerates `{}` in \
                             parallel; that combination is not supported: mark `{m}` `enumerate = parallel`",
                            g.name
                        )));
                    }
                    shared.borrow_mut().replayed = Some(replayable(&p.guide)?);
                }
                first = Some((p, guide_done.chosen));
            }
            elbos.push(e);
            if runs + model_stack.len() + guide_stack.len() > max_runs {
                return Err(too_many_runs(max_runs, &found));
            }
        }
        let (pass, chosen) = first.ok_or_else(|| internal("no run"))?;
        let elbo = match elbos.len() {
            1 => elbos.remove(0),
            _ => {
                let flat = elbos.iter().map(|e| e.reshape(1)).collect::<candle_core::Result<Vec<_>>>()?;
                log_sum_exp(&Tensor::cat(&flat, 0)?, 0)?
            }
        };
        let mut log_weight: Option<Tensor> = None;
        for c in &chosen {
            let site = pass.guide.get(&c.name).ok_or_else(|| internal("a sequential site is not in the guide trace"))?;
            let lq = crate::infer::elbo::baseline::score_log_prob(site)?.sum_all()?;
            log_weight = Some(match log_weight {
                None => lq,
                Some(w) => (w + lq)?,
            });
        }
        if let Some(lw) = &log_weight
            && lw.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()? == f64::NEG_INFINITY
        {
            continue;
        }
        let sites = chosen.into_iter().map(|c| c.name).collect();
        out.push(SequentialRun { pass, elbo, log_weight, sites });
    }
    Ok(out)
}
