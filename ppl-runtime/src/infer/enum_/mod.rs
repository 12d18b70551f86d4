//! Exact marginalization of enumerated discrete sites, shared by [`TraceEnumElbo`](super::TraceEnumElbo),
//! the enumerated NUTS potential and [`infer_discrete`](super::infer_discrete):
//! [`config_enumerate`] marks a model's discrete sites, the [`enum_`](crate::handlers::enum_)
//! handler lays their values out along dims left of the plates, and `contract` sums (or
//! maximizes) them out of the trace's log-densities.

pub(crate) mod contract;
pub(crate) mod expect;
pub(crate) mod lse;
pub(crate) mod sequential;

use crate::error::{Error, Result};
use crate::handlers::enum_::EnumVar;
use crate::handlers::infer_config;
use crate::infer::program::Program;
use crate::site::{Enumerate, InferConfig, Message, Site, SiteKind};
use crate::trace::Trace;
use candle_core::Tensor;
use contract::{Factor, PlateInfo, Problem, Semiring, Sym, VarInfo};
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;

/// A model (or guide) whose latent discrete sites are enumerated: what [`config_enumerate`]
/// returns. It runs wherever the wrapped program does (`Svi::new`, `Mcmc`, `infer_discrete`).
#[derive(Clone, Debug)]
pub struct ConfigEnumerate<P> {
    program: P,
    how: Enumerate,
}

/// Marker of [`ConfigEnumerate`]'s [`Program`] implementation.
pub struct ConfigEnumerateMarker<M>(PhantomData<fn() -> M>);

/// Pyro's `config_enumerate`: `program` with every latent sample site whose distribution has a
/// finite enumerable support (`Bernoulli`, `Categorical`, `Binomial`, ...) configured
/// `enumerate = parallel`, unless the site sets its own configuration.
///
/// ```
/// use ppl_runtime::{dist::{Bernoulli, Normal}, handlers::trace, infer::{config_enumerate, Program}, primitives::sample, Enumerate};
/// let model = |_: &()| -> ppl_runtime::Result<()> {
///     sample("c", Bernoulli::new(0.3)?)?;
///     sample("x", Normal::new(0.0, 1.0)?)?;
///     Ok(())
/// };
/// let (_, tr) = trace(|| config_enumerate(model).run(&()))?;
/// assert_eq!(tr.get("c").unwrap().infer.enumerate, Some(Enumerate::Parallel));
/// assert_eq!(tr.get("x").unwrap().infer.enumerate, None);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn config_enumerate<P>(program: P) -> ConfigEnumerate<P> {
    ConfigEnumerate { program, how: Enumerate::Parallel }
}

/// [`config_enumerate`] with an explicit strategy.
pub fn config_enumerate_with<P>(program: P, how: Enumerate) -> ConfigEnumerate<P> {
    ConfigEnumerate { program, how }
}

impl<A: ?Sized, M, P: Program<A, M>> Program<A, ConfigEnumerateMarker<M>> for ConfigEnumerate<P> {
    type Output = P::Output;
    fn run(&self, args: &A) -> Result<P::Output> {
        let how = self.how;
        let config = move |msg: &Message| {
            let enumerable = msg.dist.as_ref().is_some_and(|d| d.has_enumerate_support());
            (enumerable && !msg.is_observed && msg.infer.enumerate.is_none())
                .then(|| InferConfig::new().enumerate(how))
        };
        infer_config(config, || self.program.run(args))
    }
}

/// The log-densities of an enumerated trace, ready to contract.
pub(crate) struct Built {
    pub problem: Problem,
    /// Σ of the scaled log-densities of the sites that depend on no enumerated variable.
    pub plain: Option<Tensor>,
    /// The scale (beyond subsampling plates) shared by the sites that depend on one.
    pub scale: f64,
    /// The vectorized markov loops, whose time plates are eliminated as chains.
    pub chains: Vec<contract::scan::MarkovChain>,
}

fn add(acc: Option<Tensor>, t: Tensor) -> Result<Option<Tensor>> {
    Ok(Some(match acc {
        None => t,
        Some(a) => (a + t)?,
    }))
}

/// Reads the log-densities of `tr` (a trace run under the enum handler with
/// `max_plate_nesting` plate dims, which enumerated `vars`) as named factors.
pub(crate) fn build(tr: &Trace, vars: &[EnumVar], max_plate_nesting: usize) -> Result<Built> {
    let mut problem = Problem::default();
    let mut plate_index: HashMap<String, usize> = HashMap::new();
    let mut plain = None;
    let mut scale: Option<(f64, &str)> = None;
    for site in tr.nodes().filter(|s| s.has_log_prob()) {
        let located = |e: Error| e.at_site(&site.name, site.location());
        let lp = match enumerated_categorical(site, vars).map_err(located)? {
            Some(lp) => lp,
            None => match site.log_prob_unscaled()? {
                Some(lp) => lp.clone(),
                None => continue,
            },
        };
        let dims = lp.dims().to_vec();
        let r = dims.len();
        let depends = (0..r).any(|i| r - i > max_plate_nesting && dims[i] > 1);
        if !depends {
            if let Some(lp) = site.log_prob()? {
                plain = add(plain, lp.sum_all()?)?;
            }
            continue;
        }
        let mut ordinal = BTreeSet::new();
        let mut ratio = 1.0;
        for f in site.cond_indep_stack.iter().filter(|f| f.vectorized()) {
            let next = plate_index.len();
            let p = *plate_index.entry(f.name.clone()).or_insert(next);
            if p == problem.plates.len() {
                let r = f.size as f64 / f.subsample_size as f64;
                problem.plates.push(PlateInfo { name: f.name.clone(), subsample: f.subsample_size, ratio: r });
            }
            ratio *= problem.plates[p].ratio;
            ordinal.insert(p);
        }
        let mut syms = Vec::new();
        let mut keep = Vec::new();
        let mut lp = lp;
        for (i, &n) in dims.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let dim = i as isize - r as isize;
            let sym = if (-dim) as usize <= max_plate_nesting {
                let frame = site.cond_indep_stack.iter().find(|f| f.dim == Some(dim)).ok_or_else(|| {
                    located(Error::Enumeration(format!(
                        "its log-density has shape {dims:?}, with size {n} at dim {dim}, but the site lies in no plate \
                         at that dim; under enumeration every batch dim must be declared by a plate"
                    )))
                })?;
                // Equal along the plate (a broadcast view): one element stands for all, which
                // the plate product counts `subsample` times.
                if lp.stride()[i] == 0 && n == frame.subsample_size {
                    lp = lp.narrow(i, 0, 1)?;
                    continue;
                }
                Sym::Plate(plate_index[&frame.name])
            } else {
                let id = site.infer.dim_to_id.iter().find(|(d, _)| *d == dim).map(|(_, id)| *id).ok_or_else(|| {
                    located(Error::Enumeration(format!(
                        "its log-density has shape {dims:?}, with size {n} at dim {dim} left of the {max_plate_nesting} \
                         plate dim(s), where no enumerated site in scope lives; a batch dim left of the plates must come \
                         from an enumerated site (declare the others with plates)"
                    )))
                })?;
                Sym::Var(id)
            };
            syms.push(sym);
            keep.push(n);
        }
        let t = lp.reshape(keep)?;
        let rest = site.scale / ratio;
        match scale {
            None => scale = Some((rest, &site.name)),
            Some((s, other)) if (s - rest).abs() > 1e-9 * s.abs().max(1.0) => {
                return Err(located(Error::Enumeration(format!(
                    "its log-density is scaled by {rest} (beyond subsampling plates) but that of `{other}`, which also \
                     depends on an enumerated site, by {s}; enumerated sites and the sites depending on them must share \
                     one `scale`"
                ))));
            }
            Some(_) => {}
        }
        problem.terms.push((ordinal, Factor { t, syms }));
    }
    for v in vars {
        let ordinal = v
            .plates
            .iter()
            .map(|p| {
                plate_index.get(p).copied().ok_or_else(|| {
                    Error::Enumeration(format!("internal: plate `{p}` of enumerated site `{}` not found", v.name))
                })
            })
            .collect::<Result<BTreeSet<usize>>>();
        let ordinal = match ordinal {
            Ok(o) => o,
            // A variable with support size 1 carries no dim, so its plates may not be registered.
            Err(_) if v.size == 1 => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        problem.vars.push(VarInfo { name: v.name.clone(), size: v.size, ordinal });
    }
    let chains = contract::scan::chains(tr, vars, &plate_index, &problem)?;
    Ok(Built { problem, plain, scale: scale.map_or(1.0, |s| s.0), chains })
}

impl Built {
    /// The log-density with every enumerated variable summed out (`LogSum`) or maximized (`Max`).
    pub fn log_joint(&self, semiring: Semiring) -> Result<Tensor> {
        let (contracted, _) = self.problem.contract_with(semiring, false, &self.chains)?;
        let contracted = match contracted {
            Some(c) if self.scale != 1.0 => Some((c * self.scale)?),
            c => c,
        };
        match (contracted, &self.plain) {
            (Some(c), Some(p)) => Ok((c + p)?),
            (Some(c), None) => Ok(c),
            (None, Some(p)) => Ok(p.clone()),
            (None, None) => {
                let d = crate::defaults::current();
                Ok(Tensor::zeros((), d.dtype, &d.device)?)
            }
        }
    }
}

/// The log-density of an enumerated `Categorical` site at the values the enum handler gave it,
/// read off the distribution's normalized logits: `lp[k, 1.., b..] = logits[b.., k]`, a view
/// (plate dims the logits were broadcast along stay broadcast) instead of `log_prob` evaluated
/// at every (value, element) pair. `None` for any other site, or when the site's value is no
/// longer the untouched support or it has a mask: those take `log_prob`.
fn enumerated_categorical(site: &Site, vars: &[EnumVar]) -> Result<Option<Tensor>> {
    let (Some(dim), Some(value), None, Some(dist)) = (site.infer.enum_dim, &site.value, &site.mask, &site.dist) else {
        return Ok(None);
    };
    let Some(cat) = dist.as_any().downcast_ref::<crate::dist::Categorical>() else { return Ok(None) };
    // The variable at the site's dim (ids index `vars`), whose support must be the value itself.
    let var = site.infer.dim_to_id.iter().find(|(d, _)| *d == dim).and_then(|&(_, id)| vars.get(id));
    let untouched = var.is_some_and(|v| v.dim == dim && v.support.id() == value.id());
    let k = cat.num_categories();
    let (r, nb) = (value.rank(), crate::dist::Distribution::batch_shape(cat).len());
    let laid_out = value.dims().first() == Some(&k) && value.dims()[1..].iter().all(|&n| n == 1);
    if !untouched || value.dtype() != candle_core::DType::U32 || !laid_out || r <= nb {
        return Ok(None);
    }
    // [b.., k] -> [k, b..] -> [k, 1.., b..]
    let mut lp = cat.logits().clone();
    if nb > 0 {
        let mut order = vec![nb];
        order.extend(0..nb);
        lp = lp.permute(order)?;
    }
    for _ in 0..r - 1 - nb {
        lp = lp.unsqueeze(1)?;
    }
    Ok(Some(lp))
}

/// Whether `site` is a latent discrete site that enumeration does not handle (not enumerated,
/// with a discrete support).
pub(crate) fn unhandled_discrete(site: &Site) -> bool {
    site.kind == SiteKind::Sample
        && !site.is_observed
        && !site.intervened
        && site.infer.enum_dim.is_none()
        && site.infer.enumerate != Some(Enumerate::Sequential)
        && site.dist.as_ref().is_some_and(|d| d.support().is_discrete())
}

/// The error for a latent discrete model site that neither the guide samples nor enumeration sums out.
pub(crate) fn unhandled_discrete_error(site: &Site, who: &str) -> Error {
    let dist = site.dist.as_ref().map_or("?", |d| d.name());
    let support = site.dist.as_ref().map(|d| d.support().to_string()).unwrap_or_default();
    let hint = if site.dist.as_ref().is_some_and(|d| d.has_enumerate_support()) {
        "mark it `enumerate = parallel` (or wrap the model in `config_enumerate`)"
    } else {
        "its support cannot be enumerated, so sample it in the guide (or marginalize it by hand with `factor`)"
    };
    Error::Enumeration(format!(
        "the latent discrete site (`{dist}`, support `{support}`) is neither enumerated nor sampled by the guide; \
         {who} sums out only enumerated sites: {hint}"
    ))
    .at_site(&site.name, site.location())
}

/// The number of vectorized plates the sites of `tr` are nested in.
pub(crate) fn plate_nesting(tr: &Trace) -> usize {
    crate::infer::elbo::particles::plate_nesting(tr)
}
