//! Guide-side enumeration (Pyro's `TraceEnum_ELBO` with `Dice`): the ELBO of one pass whose
//! guide enumerated some discrete sites, as the exact expectation over their values.
//!
//! With `z` the guide's enumerated variables and `w` its sampled sites,
//! `ELBO = Σ_z q(z | w) [log Σ_y p(x, y, z, w) − log q(z, w)]`, where `y` are the model's own
//! enumerated variables. The model's factors are contracted over `y` only, keeping `z` free
//! ([`Problem::contract_keep`]); every cost term left (a contracted model factor, or `−log q` of
//! a guide site depending on `z`) is then averaged under the marginal guide probability of the
//! `z` it depends on. That marginal multiplies the `q` factors of the guide's enumerated sites in
//! the cost's plates or outside them, summing out the variables the cost does not depend on: a
//! variable inside a plate is summed per element, so the weight of a cost at an element is that
//! element's probability. Weights keep their gradient: the expectation is exact, so enumerated
//! sites need no score-function term.

use super::build;
use super::contract::{Factor, PlateInfo, Problem, Semiring, Sym, combine, eliminate};
use crate::error::{Error, Result};
use crate::handlers::enum_::EnumVar;
use crate::site::SiteKind;
use crate::trace::Trace;
use candle_core::Tensor;
use std::collections::{BTreeSet, HashMap};

/// The ELBO `Σ_z q(z) [log Σ_y p − log q]` of a pass: `model` (replayed against `guide`, run
/// under the same enum handler, which enumerated `vars`; the guide's are the first
/// `guide_vars`) and `guide`, with `max_plate_nesting` plate dims. A scalar with gradients.
pub(crate) fn guide_enumerated_elbo(
    model: &Trace,
    guide: &Trace,
    vars: &[EnumVar],
    guide_vars: usize,
    max_plate_nesting: usize,
) -> Result<Tensor> {
    check_guide_vars(model, guide, &vars[..guide_vars])?;
    let m = build(model, vars, max_plate_nesting)?;
    if let Some(c) = m.chains.first() {
        return Err(Error::Enumeration(format!(
            "the model's `vectorized_markov` loop `{}` enumerates its states while the guide enumerates `{}`; \
             guide-side enumeration does not yet combine with vectorized markov chains: enumerate in the model only, \
             or write the loop with `markov`",
            c.name,
            vars[..guide_vars].iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join("`, `")
        )));
    }
    let mut problem = m.problem.clone();
    let keep: BTreeSet<usize> = (0..guide_vars).collect();
    let model_costs = problem.contract_keep(&keep)?;

    let g = build(guide, &vars[..guide_vars], max_plate_nesting)?;
    // The `q` factors of the enumerated sites alone: a trace of just those sites.
    let mut enumerated = Trace::new();
    for s in guide.nodes().filter(|s| s.infer.enum_dim.is_some()) {
        enumerated.add(s.clone())?;
    }
    let w = build(&enumerated, &vars[..guide_vars], max_plate_nesting)?;
    let guide_costs = rebase(&mut problem, &g.problem.plates, g.problem.terms);
    let weights = rebase(&mut problem, &w.problem.plates, w.problem.terms);

    let mut dice = Dice { problem: &problem, weights, cache: HashMap::new() };
    let mut total: Option<Tensor> = None;
    let mut add = |t: Tensor| -> Result<()> {
        total = Some(match total.take() {
            None => t,
            Some(a) => {
                let t = t.to_dtype(a.dtype())?;
                (a + t)?
            }
        });
        Ok(())
    };
    if let Some(p) = &m.plain {
        add(p.clone())?;
    }
    for (ordinal, f) in &model_costs {
        add((dice.expect(ordinal, f)? * m.scale)?)?;
    }
    if let Some(p) = &g.plain {
        add(p.neg()?)?;
    }
    for (ordinal, f) in &guide_costs {
        add((dice.expect(ordinal, f)? * -g.scale)?)?;
    }
    total.ok_or_else(|| Error::Enumeration("internal: a guide-enumerated pass with no log-density".into()))
}

/// Every guide-enumerated site is a latent sample site of the model, in (at least) its plates;
/// and no guide site drawn without reparameterization depends on one.
fn check_guide_vars(model: &Trace, guide: &Trace, vars: &[EnumVar]) -> Result<()> {
    for v in vars {
        let at = |msg: String| {
            let loc = guide.get(&v.name).and_then(|s| s.location());
            Error::Enumeration(msg).at_site(&v.name, loc)
        };
        let Some(ms) = model.get(&v.name) else {
            return Err(at(
                "the guide enumerates this site but the model has no site of that name; the guide may enumerate only \
                 the model's latent discrete sites"
                    .into(),
            ));
        };
        if ms.kind != SiteKind::Sample || ms.is_observed {
            return Err(at(format!(
                "the guide enumerates this site but the model's site of that name is {}; the guide may enumerate only \
                 the model's latent discrete sites",
                if ms.is_observed { "observed".to_string() } else { format!("a {} site", ms.kind) }
            )));
        }
        let mplates: Vec<&str> = ms.cond_indep_stack.iter().filter(|f| f.vectorized()).map(|f| f.name.as_str()).collect();
        if let Some(p) = v.plates.iter().find(|p| !mplates.contains(&p.as_str())) {
            return Err(at(format!(
                "the guide enumerates this site in plate `{p}` but the model's site lies in plates [{}]",
                mplates.join(", ")
            )));
        }
    }
    for s in guide.nodes().filter(|s| crate::infer::elbo::particles::needs_score(s)) {
        let Some(lp) = s.log_prob_unscaled()? else { continue };
        let r = lp.rank() as isize;
        let dep = s.infer.dim_to_id.iter().find(|&&(d, _)| r + d >= 0 && lp.dims()[(r + d) as usize] > 1);
        if let Some(&(_, id)) = dep {
            return Err(Error::Enumeration(format!(
                "this guide site is drawn without reparameterization and depends on the guide's enumerated site `{}`; \
                 a score-function term for it is not supported yet under guide enumeration: reparameterize it, or \
                 draw it before the enumerated site",
                vars.get(id).map_or("?", |v| v.name.as_str())
            ))
            .at_site(&s.name, s.location()));
        }
    }
    Ok(())
}

/// Moves factors built against `plates` into `problem`'s plate numbering (adding plates it
/// lacks).
fn rebase(
    problem: &mut Problem,
    plates: &[PlateInfo],
    terms: Vec<(BTreeSet<usize>, Factor)>,
) -> Vec<(BTreeSet<usize>, Factor)> {
    let map: Vec<usize> = plates
        .iter()
        .map(|p| match problem.plates.iter().position(|q| q.name == p.name) {
            Some(i) => i,
            None => {
                problem.plates.push(p.clone());
                problem.plates.len() - 1
            }
        })
        .collect();
    terms
        .into_iter()
        .map(|(ordinal, mut f)| {
            for s in &mut f.syms {
                if let Sym::Plate(p) = s {
                    *p = map[*p];
                }
            }
            (ordinal.into_iter().map(|p| map[p]).collect(), f)
        })
        .collect()
}

/// Expectations under the guide's enumerated variables.
struct Dice<'a> {
    problem: &'a Problem,
    /// `log q` of each enumerated guide site (unscaled), with its ordinal.
    weights: Vec<(BTreeSet<usize>, Factor)>,
    /// Marginal probabilities by (ordinal, variables).
    cache: HashMap<(Vec<usize>, Vec<usize>), Factor>,
}

impl Dice<'_> {
    /// The guide's marginal probability of `vars`, seen from a cost at `ordinal`: the product
    /// of the `q` factors at `ordinal` or outside it, other variables summed out.
    fn marginal(&mut self, ordinal: &BTreeSet<usize>, vars: &BTreeSet<usize>) -> Result<Factor> {
        let key = (ordinal.iter().copied().collect(), vars.iter().copied().collect());
        if let Some(f) = self.cache.get(&key) {
            return Ok(f.clone());
        }
        let factors: Vec<Factor> =
            self.weights.iter().filter(|(o, _)| o.is_subset(ordinal)).map(|(_, f)| f.clone()).collect();
        let others: BTreeSet<usize> = factors.iter().flat_map(|f| f.vars()).filter(|v| !vars.contains(v)).collect();
        let rest = eliminate(factors, &others, Semiring::LogSum, None)?;
        let mut joint = combine(&rest)?;
        joint.t = joint.t.exp()?;
        self.cache.insert(key, joint.clone());
        Ok(joint)
    }

    /// `E_q[cost]` of a cost factor at `ordinal`, multiplied over that ordinal's plates: a scalar.
    fn expect(&mut self, ordinal: &BTreeSet<usize>, cost: &Factor) -> Result<Tensor> {
        let vars: BTreeSet<usize> = cost.vars().collect();
        for &v in &vars {
            self.problem.check_inside(v, ordinal)?;
        }
        let f = if vars.is_empty() {
            cost.clone()
        } else {
            let w = self.marginal(ordinal, &vars)?;
            let mut syms = cost.syms.clone();
            syms.extend(w.syms.iter().filter(|s| !cost.syms.contains(s)));
            let wt = w.align(&syms)?.to_dtype(cost.t.dtype())?;
            let ct = cost.align(&syms)?;
            let shape: Vec<usize> = wt.dims().iter().zip(ct.dims()).map(|(a, b)| *a.max(b)).collect();
            let (wt, ct) = (wt.broadcast_as(shape.as_slice())?, ct.broadcast_as(shape.as_slice())?);
            // A value the guide gives probability 0 adds nothing, even where its cost is infinite.
            let ct = wt.gt(0.0)?.where_cond(&ct, &ct.zeros_like()?)?;
            let mut t = (wt * ct)?;
            let axes: Vec<usize> = (0..syms.len()).filter(|&i| matches!(syms[i], Sym::Var(_))).collect();
            t = t.sum(axes)?;
            Factor { t, syms: syms.into_iter().filter(|s| matches!(s, Sym::Plate(_))).collect() }
        };
        let f = self.problem.product_over(f, ordinal)?;
        if !f.syms.is_empty() {
            return Err(Error::Enumeration(format!("internal: a cost at {ordinal:?} keeps dims {:?}", f.syms)));
        }
        Ok(f.t)
    }
}
