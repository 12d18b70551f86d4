//! Variable elimination over enumerated log-factors that respects plates (Pyro's
//! `contract_tensor_tree`), in the log-sum-exp semiring (marginal likelihood) or the max
//! semiring (MAP), recording what backward sampling and Viterbi decoding need.
//!
//! A [`Factor`] is a log-density tensor whose every dim is named by a [`Sym`]: an enumerated
//! variable (by id, so that dims recycled by `markov` stay distinct) or a plate. Factors are
//! grouped by *ordinal*, the set of plates their site lies in. The deepest ordinal is contracted
//! first: variables used only there are eliminated (the smallest intermediate first), then each
//! remaining factor is multiplied over the plates its remaining variables do not lie in — a sum
//! over the plate dim in log space, times the plate's subsampling ratio, applied outside the
//! log-sum-exp — and moves to the ordinal of those variables. So a variable enumerated outside a
//! plate is summed after the plate's product, and one inside a plate is summed per element.

use crate::error::{Error, Result};
use candle_core::{D, Tensor};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[path = "scan.rs"]
pub(crate) mod scan;
use scan::MarkovChain;

/// The name of a factor's dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Sym {
    /// An enumerated variable, by id.
    Var(usize),
    /// A plate, by index in [`Problem::plates`].
    Plate(usize),
}

/// A log-factor with named dims (`t.rank() == syms.len()`, no two syms equal).
#[derive(Clone, Debug)]
pub(crate) struct Factor {
    pub t: Tensor,
    pub syms: Vec<Sym>,
}

impl Factor {
    pub(crate) fn axis(&self, s: Sym) -> Option<usize> {
        self.syms.iter().position(|x| *x == s)
    }

    pub(crate) fn vars(&self) -> impl Iterator<Item = usize> + '_ {
        self.syms.iter().filter_map(|s| match s {
            Sym::Var(v) => Some(*v),
            Sym::Plate(_) => None,
        })
    }

    /// This factor's tensor laid out along `target` (a superset of its syms), with size-1 dims
    /// where it has no sym.
    pub(crate) fn align(&self, target: &[Sym]) -> Result<Tensor> {
        let order: Vec<usize> = target.iter().filter_map(|s| self.axis(*s)).collect();
        let mut t = self.t.clone();
        if order.iter().enumerate().any(|(i, &a)| i != a) {
            t = t.permute(order.clone())?;
        }
        let shape: Vec<usize> =
            target.iter().map(|s| self.axis(*s).map_or(1, |a| self.t.dim(a).unwrap_or(1))).collect();
        if shape.len() != t.rank() {
            t = t.reshape(shape)?;
        }
        Ok(t)
    }
}

/// A plate of the problem.
#[derive(Clone, Debug)]
pub(crate) struct PlateInfo {
    pub name: String,
    /// The number of elements this run uses.
    pub subsample: usize,
    /// `size / subsample`: the factor a product over this plate is scaled by.
    pub ratio: f64,
}

/// An enumerated variable of the problem.
#[derive(Clone, Debug)]
pub(crate) struct VarInfo {
    pub name: String,
    pub size: usize,
    /// Indices of the plates its site lies in.
    pub ordinal: BTreeSet<usize>,
}

/// Everything the contraction needs: the plates, the variables (indexed by id) and the factors
/// that depend on at least one variable, each with its ordinal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Problem {
    pub plates: Vec<PlateInfo>,
    pub vars: Vec<VarInfo>,
    pub terms: Vec<(BTreeSet<usize>, Factor)>,
}

/// How variables are eliminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Semiring {
    /// log Σ exp: marginal likelihood, and forward filtering for backward sampling.
    LogSum,
    /// max: the most probable joint configuration.
    Max,
}

/// Draws one index per row of log-weights `[.., k]` (backward sampling).
pub(crate) type Sampler<'a> = &'a mut dyn FnMut(&Tensor) -> Result<Tensor>;

/// One elimination, as recorded for the backward pass: `factor` is the sum of every term that
/// held `var` just before `var` was eliminated from it.
#[derive(Clone, Debug)]
pub(crate) struct Elimination {
    pub var: usize,
    pub factor: Factor,
}

/// `log Σ_axis exp(t)`, safe where every entry is `-inf` (gives `-inf`, with finite gradients
/// elsewhere): one fused kernel on the CPU, composed Candle ops elsewhere (see [`super::lse`]).
pub(crate) fn log_sum_exp(t: &Tensor, axis: usize) -> Result<Tensor> {
    super::lse::log_sum_exp(t, axis)
}

fn reduce(t: &Tensor, axis: usize, semiring: Semiring) -> Result<Tensor> {
    match semiring {
        Semiring::LogSum => log_sum_exp(t, axis),
        Semiring::Max => Ok(t.max(axis)?),
    }
}

/// The sum (broadcast, in log space: the product) of `terms`, over the union of their syms.
pub(crate) fn combine(terms: &[Factor]) -> Result<Factor> {
    let mut syms: Vec<Sym> = Vec::new();
    for f in terms {
        for s in &f.syms {
            if !syms.contains(s) {
                syms.push(*s);
            }
        }
    }
    let mut acc: Option<Tensor> = None;
    for f in terms {
        let t = f.align(&syms)?;
        acc = Some(match acc {
            None => t,
            Some(a) => a.broadcast_add(&t)?,
        });
    }
    let t = acc.ok_or_else(|| Error::Enumeration("internal: combining no factors".into()))?;
    // Broadcasting may leave size-1 dims where no term had the sym; give the full shape.
    let shape: Vec<usize> = syms
        .iter()
        .map(|s| terms.iter().find_map(|f| f.axis(*s).map(|a| f.t.dim(a).unwrap_or(1))).unwrap_or(1))
        .collect();
    let t = if t.dims() != shape.as_slice() { t.broadcast_as(shape)? } else { t };
    Ok(Factor { t, syms })
}

fn numel_of_union(terms: &[&Factor]) -> usize {
    let mut seen: Vec<(Sym, usize)> = Vec::new();
    for f in terms {
        for (i, s) in f.syms.iter().enumerate() {
            if !seen.iter().any(|(x, _)| x == s) {
                seen.push((*s, f.t.dims()[i]));
            }
        }
    }
    seen.iter().map(|(_, n)| *n).product()
}

/// Eliminates the variables `local` from `terms` by variable elimination, greedily choosing the
/// variable whose combined factor is smallest (a priority queue updated for the neighbours of
/// each eliminated variable, so a chain of `T` variables costs `O(T log T)` bookkeeping).
pub(crate) fn eliminate(
    terms: Vec<Factor>,
    local: &BTreeSet<usize>,
    semiring: Semiring,
    mut record: Option<&mut Vec<Elimination>>,
) -> Result<Vec<Factor>> {
    let mut slots: Vec<Option<Factor>> = terms.into_iter().map(Some).collect();
    let mut holders: HashMap<usize, BTreeSet<usize>> = local.iter().map(|&v| (v, BTreeSet::new())).collect();
    for (i, f) in slots.iter().enumerate() {
        for v in f.iter().flat_map(|f| f.vars()) {
            if let Some(h) = holders.get_mut(&v) {
                h.insert(i);
            }
        }
    }
    let cost = |held: &BTreeSet<usize>, slots: &[Option<Factor>]| -> usize {
        numel_of_union(&held.iter().filter_map(|&i| slots[i].as_ref()).collect::<Vec<_>>())
    };
    let mut costs: HashMap<usize, usize> = holders.iter().map(|(&v, h)| (v, cost(h, &slots))).collect();
    let mut queue: BTreeSet<(usize, usize)> = costs.iter().map(|(&v, &c)| (c, v)).collect();
    while let Some((_, v)) = queue.pop_first() {
        let held = holders.remove(&v).unwrap_or_default();
        let with: Vec<Factor> = held.iter().filter_map(|&i| slots[i].take()).collect();
        if with.is_empty() {
            continue;
        }
        let mut joint = combine(&with)?;
        if let Some(r) = record.as_mut() {
            r.push(Elimination { var: v, factor: joint.clone() });
        }
        let a = joint.axis(Sym::Var(v)).unwrap_or(0);
        joint.t = reduce(&joint.t, a, semiring)?;
        joint.syms.remove(a);
        let new = slots.len();
        let neighbours: Vec<usize> = joint.vars().collect();
        slots.push(Some(joint));
        for u in neighbours {
            let Some(h) = holders.get_mut(&u) else { continue };
            for i in &held {
                h.remove(i);
            }
            h.insert(new);
            let c = cost(h, &slots);
            if let Some(old) = costs.insert(u, c) {
                queue.remove(&(old, u));
            }
            queue.insert((c, u));
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

/// What [`Problem::walk`] leaves: the scalar contracted so far, the recorded eliminations and,
/// with kept variables, the factors over them with their ordinals.
struct Walked {
    result: Option<Tensor>,
    elims: Vec<Elimination>,
    kept: Vec<(BTreeSet<usize>, Factor)>,
}

/// Puts a factor contracted at a leaf where it belongs: into `result` when it has no dims left,
/// else into `tree` at `ordinal`.
fn place(f: Factor, ordinal: BTreeSet<usize>, tree: &mut BTreeMap<Vec<usize>, Vec<Factor>>, result: &mut Option<Tensor>) -> Result<()> {
    if f.syms.is_empty() {
        *result = Some(match result.take() {
            None => f.t,
            Some(r) => (r + f.t)?,
        });
    } else {
        tree.entry(ordinal.into_iter().collect()).or_default().push(f);
    }
    Ok(())
}

impl Problem {
    fn plate_names(&self, ordinal: &BTreeSet<usize>) -> String {
        let v: Vec<&str> = ordinal.iter().map(|&p| self.plates[p].name.as_str()).collect();
        format!("[{}]", v.join(", "))
    }

    /// Multiplies `f` over `plates` (a sum in log space, scaled by each plate's ratio; a plate
    /// the factor has no dim for counts its `subsample` equal elements).
    pub(crate) fn product_over(&self, mut f: Factor, plates: &BTreeSet<usize>) -> Result<Factor> {
        let mut factor = 1.0;
        for &p in plates {
            let info = &self.plates[p];
            match f.axis(Sym::Plate(p)) {
                Some(a) => {
                    f.t = f.t.sum(a)?;
                    f.syms.remove(a);
                    factor *= info.ratio;
                }
                None => factor *= info.ratio * info.subsample as f64,
            }
        }
        if factor != 1.0 {
            f.t = (f.t * factor)?;
        }
        Ok(f)
    }

    /// Contracts every factor to a scalar. With `record`, also returns each elimination in
    /// order (for [`Problem::backward`]).
    #[cfg(test)]
    pub fn contract(&self, semiring: Semiring, record: bool) -> Result<(Option<Tensor>, Vec<Elimination>)> {
        self.contract_with(semiring, record, &[])
    }

    /// [`Problem::contract`] with the time plates of vectorized markov `chains` eliminated as
    /// chains (see [`scan`]).
    pub fn contract_with(
        &self,
        semiring: Semiring,
        record: bool,
        chains: &[MarkovChain],
    ) -> Result<(Option<Tensor>, Vec<Elimination>)> {
        let walked = self.walk(semiring, record, chains, &BTreeSet::new())?;
        Ok((walked.result, walked.elims))
    }

    /// Sums out (log-sum-exp) every variable not in `keep`, leaving the variables of `keep`
    /// free (Pyro's `contract_tensor_tree` with the guide's enumerated dims left out of the sum
    /// dims). Returns factors over kept variables and plates, each with the ordinal it now lives
    /// at: the union of its kept variables' plates. Each has been multiplied over the plates it
    /// left, but not over those of its ordinal (a factor whose plate dims are still there).
    ///
    /// A variable summed out that would need the product over a plate of a factor holding a kept
    /// variable inside that plate (its sum would couple every element's kept value) is an error.
    pub fn contract_keep(&self, keep: &BTreeSet<usize>) -> Result<Vec<(BTreeSet<usize>, Factor)>> {
        Ok(self.walk(Semiring::LogSum, false, &[], keep)?.kept)
    }

    /// The plate tree walk behind [`Problem::contract_with`] (`keep` empty) and
    /// [`Problem::contract_keep`]: the deepest ordinal first, its variables used nowhere else
    /// (and not kept) eliminated, each remaining factor multiplied over the plates its variables
    /// do not lie in and moved to their ordinal. With `keep` non-empty, a factor left with no
    /// variable to sum out is returned in `kept` instead of being placed.
    fn walk(&self, semiring: Semiring, record: bool, chains: &[MarkovChain], keep: &BTreeSet<usize>) -> Result<Walked> {
        let mut tree: BTreeMap<Vec<usize>, Vec<Factor>> = BTreeMap::new();
        for (ordinal, f) in &self.terms {
            tree.entry(ordinal.iter().copied().collect()).or_default().push(f.clone());
        }
        let mut out = Walked { result: None, elims: Vec::new(), kept: Vec::new() };
        while let Some(leaf) = tree.keys().max_by_key(|k| k.len()).cloned() {
            let terms = tree.remove(&leaf).unwrap_or_default();
            let leaf_set: BTreeSet<usize> = leaf.iter().copied().collect();
            let elsewhere: BTreeSet<usize> = tree.values().flatten().flat_map(|f| f.vars()).collect();
            if let Some(c) = chains.iter().find(|c| c.ordinal == leaf_set) {
                let (f, parent, joint) = self.contract_chain(c, &terms, &elsewhere, semiring)?;
                if record {
                    out.elims.push(Elimination { var: c.pairs[0].1, factor: joint });
                }
                place(f, parent, &mut tree, &mut out.result)?;
                continue;
            }
            let local: BTreeSet<usize> = terms
                .iter()
                .flat_map(|f| f.vars())
                .filter(|v| !elsewhere.contains(v) && !keep.contains(v))
                .collect();
            for &v in &local {
                self.check_inside(v, &leaf_set)?;
            }
            let terms = eliminate(terms, &local, semiring, record.then_some(&mut out.elims))?;
            for f in terms {
                let mut parent = BTreeSet::new();
                // A variable of `f` still to be summed out (not kept).
                let mut pending = None;
                for v in f.vars() {
                    self.check_inside(v, &leaf_set)?;
                    if !keep.contains(&v) {
                        if self.vars[v].ordinal == leaf_set {
                            return Err(self.used_outside(v));
                        }
                        pending = Some(v);
                    }
                    parent.extend(self.vars[v].ordinal.iter().copied());
                }
                if let Some(v) = pending
                    && parent == leaf_set
                    && !keep.is_empty()
                {
                    return Err(self.coupled(v, &f, &leaf_set, keep));
                }
                self.chain_parent(chains, &leaf_set, &f, &mut parent);
                let drop: BTreeSet<usize> = leaf_set.difference(&parent).copied().collect();
                let f = self.product_over(f, &drop)?;
                if pending.is_none() && !keep.is_empty() {
                    out.kept.push((parent, f));
                } else {
                    place(f, parent, &mut tree, &mut out.result)?;
                }
            }
        }
        Ok(out)
    }

    /// The error for a not-kept variable `v` summed out through a factor `f` at `leaf` that also
    /// holds kept variables lying in plates `v` does not.
    fn coupled(&self, v: usize, f: &Factor, leaf: &BTreeSet<usize>, keep: &BTreeSet<usize>) -> Error {
        let kept: Vec<&str> = f
            .vars()
            .filter(|u| keep.contains(u) && !self.vars[v].ordinal.is_superset(&self.vars[*u].ordinal))
            .map(|u| self.vars[u].name.as_str())
            .collect();
        Error::Enumeration(format!(
            "the model's enumerated site `{}` (plates {}) is summed out through a site in plates {} that \
             also depends on the guide's enumerated `{}`, which lies in plates `{}` does not: summing `{}` \
             out would couple the `{}` of every element; enumerate `{}` in the model instead (and leave it \
             out of the guide)",
            self.vars[v].name,
            self.plate_names(&self.vars[v].ordinal),
            self.plate_names(leaf),
            kept.join("`, `"),
            self.vars[v].name,
            self.vars[v].name,
            kept.join("`, `"),
            kept.join("`, `"),
        ))
    }

    /// `f` given the variable `u` has the values `val` (indices over plates): adds a 0/-inf
    /// one-hot mask and sums `u` out.
    fn condition_on(&self, f: Factor, u: usize, val: &Factor) -> Result<Factor> {
        let k = self.vars[u].size;
        let ks = Tensor::arange(0u32, k as u32, f.t.device())?;
        let mut shape = vec![k];
        shape.extend(std::iter::repeat_n(1, val.syms.len()));
        let hit = ks.reshape(shape)?.broadcast_eq(&val.t.unsqueeze(0)?)?;
        let zero = Tensor::zeros(hit.dims(), f.t.dtype(), f.t.device())?;
        let ninf = (zero.ones_like()? * f64::NEG_INFINITY)?;
        let mut syms = vec![Sym::Var(u)];
        syms.extend(&val.syms);
        let mask = Factor { t: hit.where_cond(&zero, &ninf)?, syms };
        let mut joint = combine(&[f, mask])?;
        let a = joint.axis(Sym::Var(u)).unwrap_or(0);
        joint.t = log_sum_exp(&joint.t, a)?;
        joint.syms.remove(a);
        Ok(joint)
    }

    /// A variable used by a factor at `ordinal` must lie in no plate outside `ordinal`.
    pub(crate) fn check_inside(&self, v: usize, ordinal: &BTreeSet<usize>) -> Result<()> {
        if self.vars[v].ordinal.is_subset(ordinal) { Ok(()) } else { Err(self.used_outside(v)) }
    }

    fn used_outside(&self, v: usize) -> Error {
        let var = &self.vars[v];
        Error::Enumeration(format!(
            "the enumerated site `{}` lies in plates {} but a site outside some of those plates depends on it; \
             a site may depend on an enumerated site only inside all of that site's plates",
            var.name,
            self.plate_names(&var.ordinal)
        ))
    }

    /// The backward pass over recorded eliminations: each variable's value (the index into its
    /// support) given those chosen after it, by argmax (`sample == None`) or drawn from its
    /// conditional with `sample(probs [.., k]) -> indices`. Returns, per variable id, the
    /// indices over its plates (`syms` in plate-index order, full subsample sizes).
    /// Through the time plates of `chains` too (see [`scan`]).
    pub fn backward(
        &self,
        elims: &[Elimination],
        mut sample: Option<Sampler<'_>>,
        chains: &[MarkovChain],
    ) -> Result<BTreeMap<usize, Factor>> {
        let mut chosen: BTreeMap<usize, Factor> = BTreeMap::new();
        // A chain's states at t - 1 along its time plate, once the chain is decoded.
        let mut shifted: BTreeMap<usize, Factor> = BTreeMap::new();
        for e in elims.iter().rev() {
            if let Some(c) = chains.iter().find(|c| c.pairs.first().is_some_and(|p| p.1 == e.var)) {
                self.backward_chain(c, &e.factor, &mut chosen, &mut shifted, &mut sample)?;
                continue;
            }
            let mut f = e.factor.clone();
            // Condition on the variables chosen already.
            let others: Vec<usize> = f.vars().filter(|&u| u != e.var).collect();
            for u in others {
                // Inside a chain's time plate, its first states stand for the states at t - 1.
                let in_time = |c: &MarkovChain| {
                    self.vars[e.var].ordinal.contains(&c.plate) && c.pairs.iter().any(|p| p.0 == u)
                };
                let val = if chains.iter().any(in_time) { shifted.get(&u) } else { chosen.get(&u) };
                let val = val.ok_or_else(|| {
                    Error::Enumeration(format!("internal: `{}` decoded before `{}`", self.vars[e.var].name, self.vars[u].name))
                })?;
                f = self.condition_on(f, u, val)?;
            }
            // Put the variable last, then choose along it.
            let mut order: Vec<Sym> = f.syms.iter().copied().filter(|s| *s != Sym::Var(e.var)).collect();
            order.sort();
            let plates = order.clone();
            order.push(Sym::Var(e.var));
            let t = f.align(&order)?.contiguous()?;
            let idx = match sample.as_mut() {
                None => t.argmax(D::Minus1)?,
                Some(draw) => draw(&t)?,
            };
            // Full plate shape: broadcast over the variable's plates the factor did not carry.
            let mut syms: Vec<Sym> = self.vars[e.var].ordinal.iter().map(|&p| Sym::Plate(p)).collect();
            syms.sort();
            let idx_f = Factor { t: idx, syms: plates };
            let shape: Vec<usize> = syms.iter().map(|s| match s {
                Sym::Plate(p) => self.plates[*p].subsample,
                Sym::Var(_) => 1,
            }).collect();
            let t = idx_f.align(&syms)?.broadcast_as(shape)?.contiguous()?;
            chosen.insert(e.var, Factor { t, syms });
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn lse(xs: &[f64]) -> f64 {
        let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    #[test]
    fn log_sum_exp_of_all_neg_inf_is_neg_inf_and_matches_by_hand() -> Result<()> {
        let t = Tensor::new(&[[f64::NEG_INFINITY, f64::NEG_INFINITY], [0.5, -1.0]], &Device::Cpu)?;
        let r: Vec<f64> = log_sum_exp(&t, 1)?.to_vec1()?;
        assert_eq!(r[0], f64::NEG_INFINITY);
        assert!((r[1] - lse(&[0.5, -1.0])).abs() < 1e-12);
        Ok(())
    }

    /// z (2 values) outside plate p (3 elements), x inside depending on z:
    /// log Σ_z p(z) Π_i p(x_i | z), against a direct computation.
    #[test]
    fn variable_outside_a_plate_is_summed_after_the_plate_product() -> Result<()> {
        let dev = Device::Cpu;
        let pz = [0.3f64.ln(), 0.7f64.ln()];
        let px = [[-1.0, -2.0, -0.5], [-0.2, -3.0, -1.5]]; // [z, i]
        let problem = Problem {
            plates: vec![PlateInfo { name: "p".into(), subsample: 3, ratio: 1.0 }],
            vars: vec![VarInfo { name: "z".into(), size: 2, ordinal: BTreeSet::new() }],
            terms: vec![
                (BTreeSet::new(), Factor { t: Tensor::new(&pz, &dev)?, syms: vec![Sym::Var(0)] }),
                (BTreeSet::from([0]), Factor { t: Tensor::new(&px, &dev)?, syms: vec![Sym::Var(0), Sym::Plate(0)] }),
            ],
        };
        let (r, _) = problem.contract(Semiring::LogSum, false)?;
        let got = r.unwrap().to_scalar::<f64>()?;
        let want = lse(&[pz[0] + px[0].iter().sum::<f64>(), pz[1] + px[1].iter().sum::<f64>()]);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // With the plate inside-out (z per element) the answer is a sum of per-element lse.
        let mut inside = problem.clone();
        inside.vars[0].ordinal = BTreeSet::from([0]);
        inside.terms[0] = (BTreeSet::from([0]), Factor { t: Tensor::new(&pz, &dev)?, syms: vec![Sym::Var(0)] });
        let got = inside.contract(Semiring::LogSum, false)?.0.unwrap().to_scalar::<f64>()?;
        let want: f64 = (0..3).map(|i| lse(&[pz[0] + px[0][i], pz[1] + px[1][i]])).sum();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    /// z (kept, 2 values) outside plate p, y (summed, 2 values) inside it, one factor over
    /// (z, y, i): the result is a factor over z at ordinal {} equal to Σ_i log Σ_y exp(f).
    #[test]
    fn contract_keep_leaves_the_kept_variable_free() -> Result<()> {
        let dev = Device::Cpu;
        let f = [[[-1.0, -2.0, -0.5], [-0.2, -3.0, -1.5]], [[-0.7, -0.1, -2.5], [-1.1, -0.4, -0.9]]]; // [z, y, i]
        let problem = Problem {
            plates: vec![PlateInfo { name: "p".into(), subsample: 3, ratio: 2.0 }],
            vars: vec![
                VarInfo { name: "z".into(), size: 2, ordinal: BTreeSet::new() },
                VarInfo { name: "y".into(), size: 2, ordinal: BTreeSet::from([0]) },
            ],
            terms: vec![(
                BTreeSet::from([0]),
                Factor { t: Tensor::new(&f, &dev)?, syms: vec![Sym::Var(0), Sym::Var(1), Sym::Plate(0)] },
            )],
        };
        let out = problem.contract_keep(&BTreeSet::from([0]))?;
        assert_eq!(out.len(), 1);
        let (ordinal, g) = &out[0];
        assert!(ordinal.is_empty());
        assert_eq!(g.syms, vec![Sym::Var(0)]);
        let got: Vec<f64> = g.t.to_vec1()?;
        for z in 0..2 {
            let want: f64 = 2.0 * (0..3).map(|i| lse(&[f[z][0][i], f[z][1][i]])).sum::<f64>();
            assert!((got[z] - want).abs() < 1e-12, "{got:?}");
        }
        // Kept inside the plate and summed outside it: an error naming both.
        let mut coupled = problem.clone();
        coupled.vars[0].ordinal = BTreeSet::from([0]);
        coupled.vars[1].ordinal = BTreeSet::new();
        coupled.terms.push((BTreeSet::new(), Factor { t: Tensor::new(&[-0.3, -1.4], &dev)?, syms: vec![Sym::Var(1)] }));
        let e = coupled.contract_keep(&BTreeSet::from([0])).unwrap_err().to_string();
        assert!(e.contains("`y` (plates [])") && e.contains("`z`"), "{e}");
        Ok(())
    }

    #[test]
    fn a_site_outside_the_plate_of_its_variable_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let problem = Problem {
            plates: vec![PlateInfo { name: "p".into(), subsample: 2, ratio: 1.0 }],
            vars: vec![VarInfo { name: "z".into(), size: 2, ordinal: BTreeSet::from([0]) }],
            terms: vec![
                (BTreeSet::from([0]), Factor { t: Tensor::zeros((2, 2), candle_core::DType::F64, &dev)?, syms: vec![Sym::Var(0), Sym::Plate(0)] }),
                (BTreeSet::new(), Factor { t: Tensor::zeros(2, candle_core::DType::F64, &dev)?, syms: vec![Sym::Var(0)] }),
            ],
        };
        let e = problem.contract(Semiring::LogSum, false).unwrap_err().to_string();
        assert!(e.contains("`z` lies in plates [p]"), "{e}");
        Ok(())
    }
}
