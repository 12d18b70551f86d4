//! The time plates of [`vectorized_markov`](crate::primitives::vectorized_markov) loops, summed
//! out as chains (the part of Pyro's `TraceMarkovEnum_ELBO` that `contract` lacks).
//!
//! In a loop's second run every factor on the time plate `p` (`t = 1..T`) may depend on the
//! first run's enumerated states `a` (standing for the states at `t - 1`) and on the second run's
//! `b` (the states at `t`). Combined, they are one matrix per step, `M_t[a, b]`, batched over the
//! other variables and plates; the time plate is eliminated by the chain product
//! `M_1 ⊗ M_2 ⊗ … ⊗ M_{T-1}` in the log-sum-exp (or max) semiring, computed by a parallel scan:
//! adjacent steps are multiplied pairwise, halving the number of steps per level, so the cost is
//! `O(T S³)` in `log₂ T` batched matrix products and the memory `O(T S²)` (`S`: the number of
//! joint states). The result, a factor on `(a = x_0, b = x_{T-1})`, has `b` summed out and joins
//! the first run's factors on `a` in the usual contraction.
//!
//! For `infer_discrete` the combined factor is recorded; the backward pass computes messages
//! from the last step back, then chooses each step's states from the first on (argmax: Viterbi;
//! draws: the exact joint posterior), sequentially over time.

use super::{Factor, Problem, Sampler, Semiring, Sym, combine, reduce};
use crate::error::{Error, Result};
use crate::handlers::enum_::EnumVar;
use crate::trace::Trace;
use candle_core::{D, DType, Tensor};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One vectorized markov loop of a problem.
#[derive(Clone, Debug)]
pub(crate) struct MarkovChain {
    /// The loop's name (its time plate's).
    pub name: String,
    /// The time plate, by index in [`Problem::plates`].
    pub plate: usize,
    /// The ordinal of the states at `t`: the plates around the loop and the time plate.
    pub ordinal: BTreeSet<usize>,
    /// `(state at t - 1, state at t)` variable ids: the first run's `k`-th enumerated site
    /// paired with the second run's `k`-th (support sizes above 1 only).
    pub pairs: Vec<(usize, usize)>,
}

/// Pairs the enumerated sites of each vectorized markov loop of `tr` (whose problem has plates
/// `plate_index` and variables `vars`, by id).
pub(crate) fn chains(
    tr: &Trace,
    vars: &[EnumVar],
    plate_index: &HashMap<String, usize>,
    problem: &Problem,
) -> Result<Vec<MarkovChain>> {
    // Per loop (by context): its name and the vectorized plates around it (known from the
    // second run's sites, which lie in the time plate).
    let mut loops: BTreeMap<u64, (String, Option<Vec<String>>)> = BTreeMap::new();
    for site in tr.nodes() {
        let Some(step) = &site.infer.vectorized_markov else { continue };
        if loops.iter().any(|(c, (n, _))| *c != step.context && *n == step.name) {
            return Err(Error::Enumeration(format!(
                "two vectorized_markov loops are named `{}` in one run; give each loop its own name (it names its \
                 time plate)",
                step.name
            ))
            .at_site(&site.name, site.location()));
        }
        let entry = loops.entry(step.context).or_insert_with(|| (step.name.clone(), None));
        if !step.first && entry.1.is_none() {
            let plates = site.cond_indep_stack.iter().filter(|f| f.vectorized());
            entry.1 = Some(plates.take_while(|f| f.name != step.name).map(|f| f.name.clone()).collect());
        }
    }
    let mut out = Vec::new();
    for (context, (name, outer)) in loops {
        // Without a second run (size 1, or no sites in it) there is nothing to chain.
        let Some(outer) = outer else { continue };
        let mut prev: Vec<&EnumVar> = Vec::new();
        let mut curr: Vec<&EnumVar> = Vec::new();
        for v in vars {
            let Some(step) = tr.get(&v.name).and_then(|s| s.infer.vectorized_markov.as_ref()) else { continue };
            if step.context != context {
                continue;
            }
            if step.first && v.plates == outer {
                prev.push(v);
            } else if !step.first && v.plates.last() == Some(&name) {
                curr.push(v);
            }
        }
        let names = |vs: &[&EnumVar]| vs.iter().map(|v| format!("`{}`", v.name)).collect::<Vec<_>>().join(", ");
        if prev.len() != curr.len() {
            return Err(Error::Enumeration(format!(
                "vectorized_markov loop `{name}`: the run at t = 0 enumerates {} site(s) in the loop's plates ({}) but the \
                 run over t = 1.. enumerates {} directly in the time plate ({}); each state enumerated at t = 0 pairs, \
                 in order, with the one enumerated at later steps, so both runs must enumerate the same sites",
                prev.len(),
                names(&prev),
                curr.len(),
                names(&curr)
            )));
        }
        let mut pairs = Vec::new();
        for (a, b) in prev.iter().zip(&curr) {
            if a.size != b.size {
                return Err(Error::Enumeration(format!(
                    "vectorized_markov loop `{name}`: `{}` (t = 0) has {} values but `{}`, the state it pairs with at \
                     later steps, has {}; paired states must have the same support",
                    a.name, a.size, b.name, b.size
                )));
            }
            if a.size > 1 {
                pairs.push((a.id, b.id));
            }
        }
        let Some(&(_, b)) = pairs.first() else { continue };
        let plate = *plate_index.get(&name).ok_or_else(|| {
            Error::Enumeration(format!("internal: the time plate of vectorized_markov loop `{name}` is not registered"))
        })?;
        out.push(MarkovChain { name, plate, ordinal: problem.vars[b].ordinal.clone(), pairs });
    }
    Ok(out)
}

/// `x ⊗ y` over the last two axes (batched): `log Σ_j exp(x[.., i, j] + y[.., j, k])` by a
/// matrix product of shifted exponentials (Pyro's `logmatmulexp`; the shifts detached, and at
/// least `-1e30` so that an all `-inf` row gives `-inf`, not NaN; the log of a zero product is
/// taken of 1 and replaced by `-inf`, so that no `0 · ∞` reaches the gradients), or `max_j`
/// for the max semiring.
fn semiring_matmul(x: &Tensor, y: &Tensor, semiring: Semiring) -> Result<Tensor> {
    match semiring {
        Semiring::LogSum => {
            let shift = |m: Tensor| -> Result<Tensor> { Ok(m.detach().maximum(-1e30)?) };
            let mx = shift(x.max_keepdim(D::Minus1)?)?;
            let my = shift(y.max_keepdim(D::Minus2)?)?;
            let ex = x.broadcast_sub(&mx)?.exp()?;
            let ey = y.broadcast_sub(&my)?.exp()?;
            let p = ex.matmul(&ey)?;
            let positive = p.gt(0.0)?;
            let log = positive.where_cond(&p, &p.ones_like()?)?.log()?;
            let log = positive.where_cond(&log, &(p.zeros_like()? - f64::INFINITY)?)?;
            Ok(log.broadcast_add(&mx)?.broadcast_add(&my)?)
        }
        Semiring::Max => {
            let r = x.rank();
            Ok(x.unsqueeze(r)?.broadcast_add(&y.unsqueeze(r - 2)?)?.max(r - 1)?)
        }
    }
}

/// The chain product of `m` (`[batch, L, S, S]`) along its steps, in order: `[batch, S, S]`.
/// A parallel scan: each level multiplies adjacent steps pairwise (an odd last step waits).
fn chain_product(m: &Tensor, semiring: Semiring) -> Result<Tensor> {
    let (batch, _, s, _) = m.dims4()?;
    let mut m = m.clone();
    while m.dim(1)? > 1 {
        let l = m.dim(1)?;
        let half = l / 2;
        let paired = m.narrow(1, 0, 2 * half)?.reshape((batch, half, 2, s, s))?;
        let x = paired.narrow(2, 0, 1)?.squeeze(2)?;
        let y = paired.narrow(2, 1, 1)?.squeeze(2)?;
        let xy = semiring_matmul(&x, &y, semiring)?;
        m = if l % 2 == 1 { Tensor::cat(&[&xy, &m.narrow(1, l - 1, 1)?], 1)? } else { xy };
    }
    Ok(m.squeeze(1)?)
}

impl Problem {
    /// Sums (or maximizes) `chain`'s time plate and its states at `t` out of `terms`, the
    /// factors at the chain's ordinal (`elsewhere`: the variables of every other factor).
    /// Returns the resulting factor, already multiplied over the plates none of its variables
    /// lies in, the ordinal it belongs to, and the combined factor before the scan (laid out
    /// `[others.., time, states at t - 1.., states at t..]`, for [`Problem::backward_chain`]).
    pub(super) fn contract_chain(
        &self,
        chain: &MarkovChain,
        terms: &[Factor],
        elsewhere: &BTreeSet<usize>,
        semiring: Semiring,
    ) -> Result<(Factor, BTreeSet<usize>, Factor)> {
        let info = &self.plates[chain.plate];
        if info.ratio != 1.0 {
            return Err(Error::Enumeration(format!(
                "vectorized_markov loop `{}`: its time plate is subsampled; every time step is needed to chain the \
                 steps together",
                chain.name
            )));
        }
        let is_curr = |v: usize| chain.pairs.iter().any(|p| p.1 == v);
        if let Some(&b) = elsewhere.iter().find(|&&v| is_curr(v)) {
            return Err(self.used_outside(b));
        }
        let time = Sym::Plate(chain.plate);
        let joint = combine(terms)?;
        let chained: Vec<Sym> =
            chain.pairs.iter().flat_map(|&(a, b)| [Sym::Var(a), Sym::Var(b)]).chain([time]).collect();
        let others: Vec<Sym> = joint.syms.iter().copied().filter(|s| !chained.contains(s)).collect();
        let rest: BTreeSet<usize> = chain.ordinal.iter().copied().filter(|&p| p != chain.plate).collect();
        let mut other_sizes = Vec::new();
        for &s in &others {
            if let Sym::Var(v) = s {
                self.check_inside(v, &rest)?;
            }
            other_sizes.push(joint.axis(s).map_or(Ok(1), |a| joint.t.dim(a))?);
        }
        let prev: Vec<Sym> = chain.pairs.iter().map(|&(a, _)| Sym::Var(a)).collect();
        let sizes: Vec<usize> = chain.pairs.iter().map(|&(a, _)| self.vars[a].size).collect();
        let s: usize = sizes.iter().product();
        let mut target = others.clone();
        target.push(time);
        target.extend(&prev);
        target.extend(chain.pairs.iter().map(|&(_, b)| Sym::Var(b)));
        let mut full = other_sizes.clone();
        full.push(info.subsample);
        full.extend(&sizes);
        full.extend(&sizes);
        let batch: usize = other_sizes.iter().product();
        let aligned = joint.align(&target)?.broadcast_as(full)?.contiguous()?;
        let m = aligned.reshape((batch, info.subsample, s, s))?;
        let product = chain_product(&m, semiring)?;
        let t = reduce(&product, 2, semiring)?;
        let mut shape = other_sizes;
        shape.extend(&sizes);
        let mut syms = others;
        syms.extend(prev);
        let f = Factor { t: t.reshape(shape)?, syms };
        let mut parent = BTreeSet::new();
        for v in f.vars() {
            parent.extend(self.vars[v].ordinal.iter().copied());
        }
        let drop: BTreeSet<usize> = rest.difference(&parent).copied().collect();
        Ok((self.product_over(f, &drop)?, parent, Factor { t: aligned, syms: target }))
    }

    /// The backward pass through `chain` (`joint`: its combined factor from
    /// [`Problem::contract_chain`]), given the first states and the other variables (`chosen`):
    /// backward messages over the time plate, then each step's states in order, by argmax or
    /// drawn by `sample` — Viterbi decoding, or forward-filtering backward-sampling reversed
    /// (messages from the end, draws from the start). Records the states at `t` in `chosen`
    /// and the first states' values at `t - 1` along the time plate in `shifted`.
    pub(super) fn backward_chain(
        &self,
        chain: &MarkovChain,
        joint: &Factor,
        chosen: &mut BTreeMap<usize, Factor>,
        shifted: &mut BTreeMap<usize, Factor>,
        sample: &mut Option<Sampler<'_>>,
    ) -> Result<()> {
        let internal = |v: usize| Error::Enumeration(format!("internal: `{}` not decoded before its chain", self.vars[v].name));
        let in_chain = |v: usize| chain.pairs.iter().any(|p| p.0 == v || p.1 == v);
        let mut f = Factor { t: joint.t.detach(), syms: joint.syms.clone() };
        let given: Vec<usize> = f.vars().filter(|&v| !in_chain(v)).collect();
        for u in given {
            f = self.condition_on(f, u, chosen.get(&u).ok_or_else(|| internal(u))?)?;
        }
        // Batch over the plates of the factor and of the first states (but time).
        let mut batch: BTreeSet<usize> = BTreeSet::new();
        let prev_vals: Vec<Factor> = chain
            .pairs
            .iter()
            .map(|&(a, _)| chosen.get(&a).cloned().ok_or_else(|| internal(a)))
            .collect::<Result<_>>()?;
        for s in f.syms.iter().chain(prev_vals.iter().flat_map(|v| v.syms.iter())) {
            if let Sym::Plate(p) = *s
                && p != chain.plate
            {
                batch.insert(p);
            }
        }
        let batch_syms: Vec<Sym> = batch.iter().map(|&p| Sym::Plate(p)).collect();
        let batch_sizes: Vec<usize> = batch.iter().map(|&p| self.plates[p].subsample).collect();
        let nb: usize = batch_sizes.iter().product();
        let l = self.plates[chain.plate].subsample;
        let sizes: Vec<usize> = chain.pairs.iter().map(|&(a, _)| self.vars[a].size).collect();
        let s: usize = sizes.iter().product();
        let time = Sym::Plate(chain.plate);
        let mut target = batch_syms.clone();
        target.push(time);
        target.extend(chain.pairs.iter().map(|&(a, _)| Sym::Var(a)));
        target.extend(chain.pairs.iter().map(|&(_, b)| Sym::Var(b)));
        let mut full = batch_sizes.clone();
        full.push(l);
        full.extend(&sizes);
        full.extend(&sizes);
        let m = f.align(&target)?.broadcast_as(full)?.contiguous()?.reshape((nb, l, s, s))?;
        // The first states, as one index into the joint states (the first state most significant).
        let layout = |v: &Factor| -> Result<Tensor> {
            Ok(v.align(&batch_syms)?.broadcast_as(batch_sizes.as_slice())?.to_dtype(DType::F64)?.reshape(nb)?)
        };
        let mut x0 = Tensor::zeros(nb, DType::F64, m.device())?;
        for (v, &k) in prev_vals.iter().zip(&sizes) {
            x0 = ((x0 * k as f64)? + layout(v)?)?;
        }
        // Messages from the end: beta[step][.., j] = what the steps after `step` add to state j.
        let semiring = if sample.is_some() { Semiring::LogSum } else { Semiring::Max };
        let step_matrix = |step: usize| -> Result<Tensor> { Ok(m.narrow(1, step, 1)?.squeeze(1)?) };
        let mut betas = vec![Tensor::zeros((nb, s), m.dtype(), m.device())?];
        for step in (1..l).rev() {
            let next = betas.last().ok_or_else(|| internal(chain.pairs[0].1))?;
            let b = step_matrix(step)?.broadcast_add(&next.unsqueeze(1)?)?;
            betas.push(reduce(&b, 2, semiring)?);
        }
        betas.reverse();
        // Each step's state given the previous one, from the start.
        let mut prev = x0.to_dtype(DType::U32)?;
        let mut picks = Vec::with_capacity(l);
        for (step, beta) in betas.iter().enumerate() {
            let idx = prev.reshape((nb, 1, 1))?.broadcast_as((nb, 1, s))?.contiguous()?;
            let row = step_matrix(step)?.contiguous()?.gather(&idx, 1)?.squeeze(1)?;
            let logits = (row + beta)?.contiguous()?;
            let pick = match sample.as_mut() {
                None => logits.argmax(D::Minus1)?,
                Some(draw) => draw(&logits)?,
            };
            picks.push(pick.clone());
            prev = pick;
        }
        // Back to each variable's index (mixed radix, the last state least significant).
        let mut rest = Tensor::stack(&picks, 1)?.to_dtype(DType::F64)?;
        let mut shape = batch_sizes.clone();
        shape.push(l);
        let mut along = batch_syms.clone();
        along.push(time);
        for (i, &(a, b)) in chain.pairs.iter().enumerate().rev() {
            let k = sizes[i] as f64;
            let q = (&rest / k)?.floor()?;
            let v = (&rest - (&q * k)?)?.to_dtype(DType::U32)?.reshape(shape.as_slice())?;
            rest = q;
            // The state at t - 1 along the time plate: the first state, then the decoded ones.
            let first = layout(&prev_vals[i])?.to_dtype(DType::U32)?.reshape(&shape[..shape.len() - 1])?.unsqueeze(batch.len())?;
            let before = Tensor::cat(&[&first, &v.narrow(batch.len(), 0, l - 1)?], batch.len())?;
            shifted.insert(a, Factor { t: before, syms: along.clone() });
            let mut syms: Vec<Sym> = self.vars[b].ordinal.iter().map(|&p| Sym::Plate(p)).collect();
            syms.sort();
            let full: Vec<usize> = self.vars[b].ordinal.iter().map(|&p| self.plates[p].subsample).collect();
            let t = Factor { t: v, syms: along.clone() }.align(&syms)?.broadcast_as(full)?.contiguous()?;
            chosen.insert(b, Factor { t, syms });
        }
        Ok(())
    }

    /// A factor at `leaf` that depends on a chain's states at `t - 1` belongs to that chain's
    /// ordinal (with its time plate), not to the plates around the loop: adds that ordinal to
    /// `parent`.
    pub(super) fn chain_parent(&self, chains: &[MarkovChain], leaf: &BTreeSet<usize>, f: &Factor, parent: &mut BTreeSet<usize>) {
        for c in chains.iter().filter(|c| leaf.contains(&c.plate)) {
            if f.vars().any(|v| c.pairs.iter().any(|p| p.0 == v)) {
                parent.extend(c.ordinal.iter().copied());
            }
        }
    }
}
