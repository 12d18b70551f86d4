//! Run-time checks of a model against its guide (on SVI's first step), and the provenance of
//! non-finite losses and gradients.
//!
//! The `#[guide(model = ..)]` macro checks literal sites at compile time; these checks see what
//! it cannot: dynamic names, data-dependent branches, supports, shapes and plates.

use crate::dist::Constraint;
use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::site::{Site, SiteKind};
use crate::trace::Trace;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Storage, Tensor};

fn located(site: &Site, message: String) -> Error {
    Error::ModelGuideMismatch(message).at_site(&site.name, site.location())
}

fn describe(site: &Site) -> String {
    let dist = match &site.dist {
        Some(d) => format!("`{}` with batch shape {:?} and event shape {:?}", d.name(), d.batch_shape(), d.event_shape()),
        None => "no distribution".into(),
    };
    let plates = plates_of(site);
    let at = site.location().map(|l| format!(" at {l}")).unwrap_or_default();
    format!("{dist} in plates [{}]{at}", plates.join(", "))
}

fn plates_of(site: &Site) -> Vec<&str> {
    site.cond_indep_stack.iter().map(|f| f.name.as_str()).collect()
}

fn is_latent(s: &Site) -> bool {
    s.kind == SiteKind::Sample && !s.is_observed && !s.intervened
}

/// Lower and upper bounds of a real interval support, or `None` for other supports.
fn interval(c: &Constraint) -> Option<(f64, f64)> {
    use Constraint::*;
    Some(match c {
        Real | RealVector => (f64::NEG_INFINITY, f64::INFINITY),
        Positive | Nonnegative => (0.0, f64::INFINITY),
        GreaterThan(a) | GreaterThanEq(a) => (*a, f64::INFINITY),
        LessThan(b) => (f64::NEG_INFINITY, *b),
        Interval(a, b) | HalfOpenInterval(a, b) => (*a, *b),
        UnitInterval => (0.0, 1.0),
        Boolean => (0.0, 1.0),
        NonnegativeInteger => (0.0, f64::INFINITY),
        PositiveInteger => (1.0, f64::INFINITY),
        IntegerInterval(a, b) => (*a as f64, *b as f64),
        IntegerGreaterThanEq(a) => (*a as f64, f64::INFINITY),
        Independent(base, _) => return interval(base),
        _ => return None,
    })
}

fn strip(c: &Constraint) -> &Constraint {
    match c {
        Constraint::Independent(base, _) => strip(base),
        c => c,
    }
}

/// Whether every value the guide can draw lies in the model's support.
pub fn support_contains(model: &Constraint, guide: &Constraint) -> bool {
    let (m, g) = (strip(model), strip(guide));
    if m == g {
        return true;
    }
    if m.is_discrete() != g.is_discrete() {
        return false;
    }
    if matches!(m, Constraint::Real | Constraint::RealVector) && !g.is_discrete() {
        return true;
    }
    match (interval(m), interval(g)) {
        (Some((ml, mu)), Some((gl, gu))) => gl >= ml && gu <= mu,
        // Structured supports (simplex, Cholesky factors, ...) must match exactly.
        _ => false,
    }
}

fn trim_ones(s: &[usize]) -> &[usize] {
    let k = s.iter().take_while(|&&d| d == 1).count();
    &s[k..]
}

/// Checks that `guide` fits `model` (traces of one run, the model replayed against the guide):
///
/// - every latent sample site of the model is in the guide (dynamic names included);
/// - every sample site of the guide is a latent site of the model, unless marked
///   `InferConfig::auxiliary`;
/// - the guide's support lies inside the model's (a `Normal` guide for a positive latent fails);
/// - under the same plates, the batch shapes agree;
/// - the guide's site lies in no plate that the model's site lacks.
///
/// Each error names the site and says what the model and the guide each have.
pub fn check_model_guide(model: &Trace, guide: &Trace) -> Result<()> {
    for ms in model.nodes().filter(|s| is_latent(s) && s.infer.enumerate.is_none()) {
        if !guide.contains(&ms.name) {
            return Err(located(
                ms,
                format!(
                    "the model samples the latent `{}` ({}) but the guide has no site of that name; add \
                     `sample(\"{}\", ..)` to the guide",
                    ms.name,
                    describe(ms),
                    ms.name
                ),
            ));
        }
    }
    for gs in guide.nodes().filter(|s| s.kind == SiteKind::Sample && !s.infer.is_auxiliary) {
        let Some(ms) = model.get(&gs.name) else {
            return Err(located(
                gs,
                format!(
                    "the guide samples `{}` ({}) but the model has no site of that name; mark it \
                     `InferConfig::new().auxiliary()` if it is an auxiliary variable",
                    gs.name,
                    describe(gs)
                ),
            ));
        };
        if ms.kind != SiteKind::Sample {
            return Err(located(gs, format!("the guide samples `{}` but the model has a {} site of that name", gs.name, ms.kind)));
        }
        if ms.is_observed {
            return Err(located(
                gs,
                format!("the guide samples `{}` ({}) but the model observes it; a guide samples only latents", gs.name, describe(gs)),
            ));
        }
        let (Some(md), Some(gd)) = (&ms.dist, &gs.dist) else { continue };
        let (msup, gsup) = (md.support(), gd.support());
        if !support_contains(&msup, &gsup) {
            return Err(located(
                gs,
                format!(
                    "the guide's `{}` has support `{gsup}` but the model's `{}` has support `{msup}`: the guide \
                     can draw values the model gives zero density; use a guide distribution on `{msup}` (e.g. \
                     `LogNormal` for a positive latent)",
                    gd.name(),
                    md.name()
                ),
            ));
        }
        let (mplates, gplates) = (plates_of(ms), plates_of(gs));
        if let Some(p) = gplates.iter().find(|p| !mplates.contains(p)) {
            return Err(located(
                gs,
                format!(
                    "the guide's site lies in plate `{p}` which the model's site does not: model has plates [{}], \
                     guide has [{}]",
                    mplates.join(", "),
                    gplates.join(", ")
                ),
            ));
        }
        if mplates == gplates && trim_ones(md.batch_shape()) != trim_ones(gd.batch_shape()) {
            return Err(located(
                gs,
                format!(
                    "batch shapes disagree under the same plates: model has {}, guide has {}; make the guide's \
                     batch shape match (`.to_event(n)` turns batch dims into event dims)",
                    describe(ms),
                    describe(gs)
                ),
            ));
        }
    }
    Ok(())
}

/// Whether every element of `t` is finite (read in place on the CPU; one reduction elsewhere).
pub fn all_finite(t: &Tensor) -> Result<bool> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            match cpu {
                CpuStorage::F32(v) => return Ok(crate::nn::cpu::all_finite(&v[a..b])),
                CpuStorage::F64(v) => return Ok(crate::nn::cpu::all_finite(&v[a..b])),
                _ => {}
            }
        }
    }
    if !t.dtype().is_float() {
        return Ok(true);
    }
    Ok(t.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?.is_finite())
}

fn kind_of(v: &Tensor) -> Result<&'static str> {
    let x = v.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(if x.iter().any(|x| x.is_nan()) {
        "NaN"
    } else if x.iter().any(|x| *x > 0.0 && x.is_infinite()) {
        "+inf"
    } else {
        "-inf"
    })
}

/// The first site of `tr` whose parameter value, sampled value or log-density is not finite.
fn first_bad_site(tr: &Trace, who: &str) -> Result<Option<(String, Option<crate::error::Location>, String)>> {
    for s in tr.nodes() {
        let what = match s.kind {
            SiteKind::Param => "parameter value",
            SiteKind::Sample | SiteKind::Factor | SiteKind::Deterministic => "value",
            SiteKind::Plate => continue,
        };
        if let Some(v) = &s.value
            && v.dtype().is_float()
            && !all_finite(v)?
        {
            let detail = format!("the {who}'s {what} of `{}` is {}", s.name, kind_of(v)?);
            return Ok(Some((s.name.clone(), s.location(), detail)));
        }
        if let Some(lp) = s.log_prob()?
            && !all_finite(lp)?
        {
            let dist = s.dist.as_ref().map(|d| d.name()).unwrap_or("?");
            let detail = format!("the {who}'s log-density of `{}` under `{dist}` is {}", s.name, kind_of(lp)?);
            return Ok(Some((s.name.clone(), s.location(), detail)));
        }
    }
    Ok(None)
}

/// The error of a non-finite step: names the first site (guide first, in execution order, then
/// the model) whose parameter, value or log-density went non-finite, else the parameter whose
/// gradient did, with its source location and the step number.
pub fn non_finite_error(
    step: u64,
    what: &str,
    model: &Trace,
    guide: &Trace,
    params: &ParamStore,
    grads: Option<&GradStore>,
) -> Result<Error> {
    let wrap = |site: &str, location, detail: String| Error::NonFiniteStep { step, detail }.at_site(site, location);
    for (tr, who) in [(guide, "guide"), (model, "model")] {
        if let Some((site, location, detail)) = first_bad_site(tr, who)? {
            return Ok(wrap(&site, location, format!("{what}: {detail}")));
        }
    }
    if let Some(grads) = grads {
        for (name, var) in params.vars() {
            if let Some(g) = grads.get(var.as_tensor())
                && !all_finite(g)?
            {
                let location = guide.get(&name).or_else(|| model.get(&name)).and_then(|s| s.location());
                return Ok(wrap(&name, location, format!("{what}: the gradient of parameter `{name}` is {}", kind_of(g)?)));
            }
        }
    }
    Ok(Error::NonFiniteStep { step, detail: format!("{what}, but no site or gradient was found non-finite") })
}

/// The first parameter whose gradient is not finite.
pub fn first_non_finite_grad(params: &ParamStore, grads: &GradStore) -> Result<Option<String>> {
    for (name, var) in params.vars() {
        if let Some(g) = grads.get(var.as_tensor())
            && !all_finite(g)?
        {
            return Ok(Some(name));
        }
    }
    Ok(None)
}
