//! `enum_`: gives every latent sample site configured with `InferConfig::enumerate` *all* the
//! values of its finite support at once, laid out along a fresh tensor dim to the left of every
//! plate dim (Pyro's `EnumMessenger` and `_EnumAllocator`).
//!
//! With at most `max_plate_nesting` nested plates (dims `-1 ..= -max_plate_nesting`), the first
//! enumerated variable takes dim `-1 - max_plate_nesting`, the next the dim left of it, and so on;
//! values broadcast against plates and against each other, so downstream log-densities carry one
//! entry per joint configuration. Inside [`markov`](crate::primitives::markov) loops the dims of
//! variables that the current step may no longer depend on are reused.
//!
//! Every sample and factor site records in `infer.dim_to_id` which enumerated variable sits at
//! each enum dim when it ran: the contraction code reads its log-density's dims through that map.

use crate::dist::DistRef;
use crate::error::{Error, Result};
use crate::runtime::{Handler, with_handler};
use crate::site::{CondIndepFrame, Enumerate, MarkovStep, Message, SiteKind};
use candle_core::Tensor;
use std::collections::BTreeMap;

/// The default largest support [`EnumHandler`] enumerates (see [`EnumHandler::max_support`]).
pub const DEFAULT_MAX_SUPPORT: usize = 4096;

/// One enumerated variable of a run.
#[derive(Clone, Debug)]
pub struct EnumVar {
    /// Unique within the run.
    pub id: usize,
    /// The site's name.
    pub name: String,
    /// Its tensor dim (negative).
    pub dim: isize,
    /// Its support size.
    pub size: usize,
    /// The vectorized plates it lies in (names), outermost first.
    pub plates: Vec<String>,
    markov: Vec<MarkovStep>,
    /// The value the handler gave the site (its support, laid out along `dim`), so that the
    /// contraction can tell it is still untouched.
    pub(crate) support: Tensor,
}

/// Whether a variable created in markov scope `var` may still be depended on by a site in `site`:
/// not when they share a markov loop and lie more than `history` steps apart in it.
fn visible(var: &[MarkovStep], site: &[MarkovStep]) -> bool {
    var.iter().all(|v| site.iter().filter(|s| s.context == v.context).all(|s| s.step.abs_diff(v.step) <= v.history))
}

/// The enum handler. Build with [`EnumHandler::new`]; [`enum_`] runs a closure under one.
#[derive(Debug)]
pub struct EnumHandler {
    max_plate_nesting: usize,
    max_support: usize,
    vars: Vec<EnumVar>,
    /// Indices into `vars` of the variables at each dim, oldest first.
    by_dim: BTreeMap<isize, Vec<usize>>,
}

impl EnumHandler {
    /// Enumerates to the left of `max_plate_nesting` plate dims.
    pub fn new(max_plate_nesting: usize) -> Self {
        EnumHandler { max_plate_nesting, max_support: DEFAULT_MAX_SUPPORT, vars: Vec::new(), by_dim: BTreeMap::new() }
    }

    /// The largest support a site may enumerate (default [`DEFAULT_MAX_SUPPORT`]); a larger one
    /// is an error naming the site.
    pub fn max_support(mut self, n: usize) -> Self {
        self.max_support = n;
        self
    }

    /// The variables enumerated so far, in order.
    pub fn vars(&self) -> &[EnumVar] {
        &self.vars
    }

    fn check_frame(&self, frame: &CondIndepFrame) -> Result<()> {
        let Some(dim) = frame.dim else { return Ok(()) };
        if (-dim) as usize > self.max_plate_nesting {
            return Err(Error::Plate {
                plate: frame.name.clone(),
                message: format!(
                    "sits at dim {dim}, deeper than the {} nested plate(s) seen when the model and guide first ran; \
                     enumerated values use the dims left of those, so the plate nesting must not grow between runs: \
                     set `max_plate_nesting({})` on the inference object",
                    self.max_plate_nesting, -dim
                ),
            });
        }
        Ok(())
    }

    /// The enumerated variables a site in markov scope `scope` may depend on, as `(dim, id)`,
    /// the newest at each dim.
    fn snapshot(&self, scope: &[MarkovStep]) -> Vec<(isize, usize)> {
        self.by_dim
            .iter()
            .filter_map(|(&dim, held)| {
                held.iter().rev().map(|&i| &self.vars[i]).find(|v| visible(&v.markov, scope)).map(|v| (dim, v.id))
            })
            .collect()
    }

    fn enumerate(&mut self, msg: &mut Message, snapshot: &mut Vec<(isize, usize)>) -> Result<()> {
        if msg.infer.enumerate == Some(Enumerate::Sequential) {
            return Err(Error::Enumeration(
                "the site is marked `enumerate = sequential`, which only TraceEnumElbo does (one run per value); \
                 here mark it `enumerate = parallel`"
                    .into(),
            ));
        }
        let dist: DistRef = msg.dist()?.clone();
        if !dist.has_enumerate_support() {
            return Err(Error::Enumeration(format!(
                "the site is marked for enumeration but `{}` (support `{}`) has no finite support to enumerate; \
                 sample it in the guide instead, or replace it by a distribution with a finite support",
                dist.name(),
                dist.support()
            )));
        }
        let support = dist.enumerate_support(false)?;
        let k = support.dim(0)?;
        if k > self.max_support {
            return Err(Error::Enumeration(format!(
                "the support of `{}` has {k} values, more than the {} this enumeration allows; raise `max_support` \
                 if the tensors fit in memory, or sample the site in the guide",
                dist.name(),
                self.max_support
            )));
        }
        let first = -(self.max_plate_nesting as isize) - 1;
        let mut dim = first;
        while snapshot.iter().any(|(d, _)| *d == dim) {
            dim -= 1;
        }
        let event = dist.event_shape().to_vec();
        let mut shape = vec![k];
        shape.extend(std::iter::repeat_n(1, (-dim - 1) as usize));
        shape.extend(&event);
        let value: Tensor = support.reshape(shape)?;
        let id = self.vars.len();
        let support = value.clone();
        self.by_dim.entry(dim).or_default().push(id);
        self.vars.push(EnumVar {
            id,
            name: msg.name.clone(),
            dim,
            size: k,
            plates: msg.cond_indep_stack.iter().filter(|f| f.vectorized()).map(|f| f.name.clone()).collect(),
            markov: msg.infer.markov_scope.clone(),
            support,
        });
        snapshot.push((dim, id));
        snapshot.sort_unstable();
        msg.value = Some(value);
        msg.infer.enum_dim = Some(dim);
        Ok(())
    }
}

impl Handler for EnumHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        match msg.kind {
            SiteKind::Plate => {
                if let Some(f) = &msg.plate {
                    self.check_frame(f)?;
                }
                Ok(())
            }
            SiteKind::Sample | SiteKind::Factor => {
                for f in &msg.cond_indep_stack {
                    self.check_frame(f)?;
                }
                let mut snapshot = self.snapshot(&msg.infer.markov_scope);
                if msg.kind == SiteKind::Sample
                    && msg.infer.enumerate.is_some()
                    && msg.value.is_none()
                    && !msg.is_observed
                    && !msg.intervened
                {
                    self.enumerate(msg, &mut snapshot)?;
                }
                msg.infer.dim_to_id = snapshot;
                Ok(())
            }
            SiteKind::Param | SiteKind::Deterministic => Ok(()),
        }
    }
}

/// Runs `f` with enumerated sites given all their values, left of `max_plate_nesting` plate
/// dims; returns `f`'s result and the variables enumerated.
///
/// ```
/// use ppl_runtime::{dist::{Bernoulli, Normal}, handlers::{enum_, trace}, primitives::{observe, plate, sample_with, SampleOptions}};
/// use ppl_runtime::{Enumerate, InferConfig};
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[0.1f32, -0.3, 2.0], &Device::Cpu)?;
/// let (res, vars) = enum_(1, || trace(|| plate("data", 3, |_| {
///     let c = sample_with("c", Bernoulli::new(0.5)?, SampleOptions::new().infer(InferConfig::new().enumerate(Enumerate::Parallel)))?;
///     observe("x", Normal::new(&c, 1.0)?, &x)
/// })));
/// let (_, tr) = res?;
/// assert_eq!(tr.value("c")?.dims(), &[2, 1]); // both values, at dim -2
/// assert_eq!(tr.get("x").unwrap().log_prob()?.unwrap().dims(), &[2, 3]);
/// assert_eq!(vars[0].dim, -2);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn enum_<R>(max_plate_nesting: usize, f: impl FnOnce() -> R) -> (R, Vec<EnumVar>) {
    let (r, h) = with_handler(EnumHandler::new(max_plate_nesting), f);
    (r, h.vars)
}
