//! Run-time behaviour of macro-expanded models: the sites they record, their static metadata
//! (kind, observed, plates, source location), locations quoted in errors, dynamic names,
//! plates and the keyword arguments of each site macro.

use ppl::handlers;
use ppl::prelude::*;
use ppl::{Enumerate, SiteKind, guide, model};
use std::cell::Cell;
use std::rc::Rc;

fn t(v: f32) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// The 1-based (line, column) of the first occurrence of `needle` in this file, found by
/// reading the source independently of the macros.
fn position_in_this_file(needle: &str) -> (u32, u32) {
    let src = include_str!("macros.rs");
    for (i, line) in src.lines().enumerate() {
        if let Some(c) = line.find(needle) {
            return (i as u32 + 1, c as u32 + 1);
        }
    }
    panic!("`{needle}` not found");
}

#[model]
fn simple(x: &Tensor) -> Result<Tensor> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    plate!("data", x.dim(0)?, |_| {
        sample!("x", Normal::new(&mu, 1.0)?, obs = x);
        Ok(())
    })?;
    Ok(mu)
}

#[guide(model = simple)]
fn simple_guide(_x: &Tensor) -> Result<Tensor> {
    let loc = param!("mu_loc", 0.5);
    let scale = param!("mu_scale", 2.0, constraint = positive);
    Ok(sample!("mu", Normal::new(&loc, &scale)?))
}

#[test]
fn model_records_literal_sites_with_static_metadata() -> Result<()> {
    let x = Tensor::new(&[0.5f32, 1.0, 1.5], &Device::Cpu)?;
    let (_, tr) = handlers::seed(0, || handlers::trace(|| simple(&x)))?;
    let names: Vec<&str> = tr.nodes().map(|s| s.name.as_str()).collect();
    // The plate is a site too (its value: the indices it used).
    assert_eq!(names, ["mu", "data", "x"]);
    assert_eq!(tr.get("data").unwrap().kind, SiteKind::Plate);
    let mu = tr.get("mu").unwrap();
    assert_eq!(mu.kind, SiteKind::Sample);
    assert!(!mu.is_observed);
    let meta = mu.meta.expect("a literal site has metadata");
    assert_eq!((meta.name, meta.kind, meta.observed), ("mu", SiteKind::Sample, false));
    assert!(meta.plates.is_empty());
    let xs = tr.get("x").unwrap();
    let meta = xs.meta.expect("a literal site has metadata");
    assert!(meta.observed && xs.is_observed);
    assert_eq!(meta.plates, ["data"]);
    // The static plates agree with the plates the runtime saw.
    assert_eq!(xs.plate_names(), meta.plates);
    // The location is the name literal's position in this file.
    assert_eq!((meta.location.line, meta.location.column), position_in_this_file("\"x\", Normal::new(&mu, 1.0)?, obs"));
    assert!(meta.location.file.ends_with("macros.rs"), "{}", meta.location.file);
    Ok(())
}

#[test]
fn guide_runs_and_creates_its_params() -> Result<()> {
    let store = ParamStore::new();
    let x = t(0.0);
    let (mu, tr) = store.scope(|| handlers::seed(3, || handlers::trace(|| simple_guide(&x))))?;
    assert_eq!(store.names().len(), 2);
    assert!(store.contains("mu_loc") && store.contains("mu_scale"));
    let scale = tr.get("mu_scale").unwrap();
    assert_eq!(scale.kind, SiteKind::Param);
    assert_eq!(scale.meta.unwrap().kind, SiteKind::Param);
    assert!((scalar(scale.value()?) - 2.0).abs() < 1e-6);
    assert_eq!(scalar(tr.value("mu")?), scalar(&mu));
    Ok(())
}

#[model]
fn bad_obs(x: &Tensor) -> Result<()> {
    sample!("bad", Normal::new(0.0, 1.0)?, obs = x);
    Ok(())
}

#[test]
fn runtime_errors_quote_the_sites_source_location() {
    let x = Tensor::new(1.0f64, &Device::Cpu).unwrap(); // f64 observation of an f32 distribution
    let err = handlers::trace(|| bad_obs(&x)).unwrap_err().to_string();
    let (line, column) = position_in_this_file("\"bad\", Normal");
    let want = format!("site `bad` (tests/macros.rs:{line}:{column}): ");
    assert!(err.starts_with(&want), "{err}\nexpected it to start with {want}");
    assert!(err.contains("mixed dtypes"), "{err}");
}

#[model]
fn bad_plate() -> Result<()> {
    plate!("too_small", 3, subsample_size = 5, |_| Ok(()))
}

#[test]
fn plate_errors_quote_the_plates_source_location() {
    let err = handlers::trace(bad_plate).unwrap_err().to_string();
    let (line, column) = position_in_this_file("\"too_small\", 3");
    let want = format!("site `too_small` (tests/macros.rs:{line}:{column}): ");
    assert!(err.starts_with(&want), "{err}\nexpected it to start with {want}");
    assert!(err.contains("larger than the plate's size 3"), "{err}");
}

#[model]
fn dynamic_names(n: usize) -> Result<Vec<Tensor>> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(sample!(format!("z_{i}"), Normal::new(0.0, 1.0)?));
    }
    let seq = plate!("steps", n, sequential, |i| {
        let name = format!("s_{i}");
        Ok(sample!(name, Normal::new(0.0, 1.0)?))
    })?;
    out.extend(seq);
    Ok(out)
}

#[test]
fn dynamic_names_work_and_carry_no_static_metadata() -> Result<()> {
    let (out, tr) = handlers::seed(0, || handlers::trace(|| dynamic_names(3)))?;
    assert_eq!(out.len(), 6);
    let names: Vec<&str> = tr.nodes().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["z_0", "z_1", "z_2", "steps", "s_0", "s_1", "s_2"]);
    assert!(tr.nodes().filter(|s| s.name != "steps").all(|s| s.meta.is_none()));
    // The plate's name is a literal: its site carries the plate's static metadata.
    assert_eq!(tr.get("steps").unwrap().meta.map(|m| m.kind), Some(SiteKind::Plate));
    // Sites of a sequential plate carry its (dim-less) frame with the iteration counter.
    let s1 = &tr.get("s_1").unwrap().cond_indep_stack;
    assert_eq!(s1.len(), 1);
    assert_eq!((s1[0].name.as_str(), s1[0].dim, s1[0].counter), ("steps", None, 1));
    Ok(())
}

#[model]
fn all_kinds(x: &Tensor, mask: &Tensor, calls: &Rc<Cell<u32>>) -> Result<Tensor> {
    // The lazy initializer borrows the model's arguments (no `move`, no clone).
    let w = param!("w", || {
        calls.set(calls.get() + 1);
        Ok(Tensor::new(&[0.5f32, 0.25], x.device())?)
    });
    let p = param!("p", 0.25, constraint = interval(0.0, 1.0));
    let c = sample!("c", Bernoulli::new(&p)?, enumerate = parallel);
    let mu = sample!("mu", Normal::new(0.0, 1.0)?);
    let shifted = deterministic!("shifted", (&mu + 1.0)?);
    factor!("penalty", mu.sqr()?.neg()?);
    plate!("rows", 2, dim = -2, |_| {
        plate!("cols", 4, subsample_size = 2, |idx| {
            let z = sample!("z", Normal::new(&mu, 1.0)?);
            assert_eq!(z.dims(), [2, 2]);
            let xs = x.index_select(idx, 0)?;
            sample!("x", Normal::new(&z, 1.0)?, obs = xs, mask = mask);
            Ok(())
        })
    })?;
    let _ = (w, c);
    Ok(shifted)
}

#[test]
fn every_site_kind_and_keyword_reaches_the_runtime() -> Result<()> {
    let x = Tensor::new(&[0.1f32, 0.2, 0.3, 0.4], &Device::Cpu)?;
    let mask = Tensor::new(&[1u8, 0], &Device::Cpu)?;
    let calls = Rc::new(Cell::new(0));
    let store = ParamStore::new();
    let run = || store.scope(|| handlers::seed(1, || handlers::trace(|| all_kinds(&x, &mask, &calls))));
    let (shifted, tr) = run()?;
    // The lazy initializer runs only when the parameter does not exist yet.
    run()?;
    assert_eq!(calls.get(), 1);
    let kinds: Vec<(&str, SiteKind)> = tr.nodes().map(|s| (s.name.as_str(), s.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("w", SiteKind::Param),
            ("p", SiteKind::Param),
            ("c", SiteKind::Sample),
            ("mu", SiteKind::Sample),
            ("shifted", SiteKind::Deterministic),
            ("penalty", SiteKind::Factor),
            ("rows", SiteKind::Plate),
            ("cols", SiteKind::Plate),
            ("z", SiteKind::Sample),
            ("x", SiteKind::Sample),
        ]
    );
    for s in tr.nodes() {
        let meta = s.meta.expect("all names are literal");
        assert_eq!((meta.name, meta.kind, meta.observed), (s.name.as_str(), s.kind, s.is_observed));
        assert_eq!(s.plate_names(), meta.plates, "site {}", s.name);
    }
    assert_eq!(tr.get("c").unwrap().infer.enumerate, Some(Enumerate::Parallel));
    assert_eq!(tr.get("p").unwrap().param.as_ref().unwrap().constraint, ppl::dist::Constraint::Interval(0.0, 1.0));
    let xsite = tr.get("x").unwrap();
    assert!(xsite.is_observed && xsite.mask.is_some());
    let cols = xsite.cond_indep_stack.iter().find(|f| f.name == "cols").unwrap();
    assert_eq!((cols.size, cols.subsample_size), (4, 2));
    let rows = xsite.cond_indep_stack.iter().find(|f| f.name == "rows").unwrap();
    assert_eq!(rows.dim, Some(-2));
    assert!((scalar(&shifted) - (scalar(tr.value("mu")?) + 1.0)).abs() < 1e-6);
    Ok(())
}

/// A model calling another model and a plain helper: each site is recorded once; the helper's
/// site has no static metadata.
#[model]
fn inner() -> Result<Tensor> {
    Ok(sample!("inner", Normal::new(0.0, 1.0)?))
}

fn helper() -> Result<Tensor> {
    Ok(sample!("helper", Normal::new(0.0, 1.0)?))
}

#[model]
fn outer() -> Result<Tensor> {
    let a = inner()?;
    let b = helper()?;
    Ok((a + b)?)
}

#[test]
fn models_compose_and_helpers_work() -> Result<()> {
    let (_, tr) = handlers::seed(0, || handlers::trace(outer))?;
    let names: Vec<&str> = tr.nodes().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["inner", "helper"]);
    assert_eq!(tr.get("inner").unwrap().meta.unwrap().name, "inner");
    assert!(tr.get("helper").unwrap().meta.is_none());
    Ok(())
}

/// Generic models keep working; the user's error type receives `ppl::Error` through `?`.
#[derive(Debug)]
enum MyError {
    Ppl(ppl::Error),
}

impl From<ppl::Error> for MyError {
    fn from(e: ppl::Error) -> Self {
        MyError::Ppl(e)
    }
}

#[model]
fn generic<T: AsRef<Tensor>>(x: T) -> std::result::Result<Tensor, MyError> {
    let mu = sample!("mu", Normal::new(0.0, 1.0)?);
    sample!("x", Normal::new(&mu, 1.0)?, obs = x.as_ref());
    Ok(mu)
}

#[test]
fn generic_models_and_user_error_types() {
    let (_, tr) = handlers::trace(|| generic(t(0.3)).map_err(|MyError::Ppl(e)| e)).unwrap();
    assert!(tr.get("x").unwrap().is_observed);
    let bad = Tensor::new(0.3f64, &Device::Cpu).unwrap();
    let r = handlers::trace(|| Ok(generic(&bad))).unwrap().0;
    let MyError::Ppl(e) = r.unwrap_err();
    assert!(e.to_string().starts_with("site `x` (tests/macros.rs:"), "{e}");
}

#[model]
fn fit_or_predict(x: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    let w = sample!("w", Normal::new(0.0, 1.0)?);
    plate!("data", x.dim(0)?, |_| Ok(sample!("y", Normal::new(&x.broadcast_mul(&w)?, 0.1)?, obs = y)))
}

/// The guide has no `y`: the check counts `obs = y` as observed even though `y` may be `None`.
#[guide(model = fit_or_predict)]
fn fit_or_predict_guide(_x: &Tensor, _y: Option<&Tensor>) -> Result<Tensor> {
    Ok(sample!("w", Normal::new(2.0, 1e-3)?))
}

#[test]
fn optional_observations_observe_some_and_sample_none() -> Result<()> {
    let x = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu)?;
    let y = Tensor::new(&[2f32, 4.0, 6.0], &Device::Cpu)?;
    let (_, fit) = handlers::seed(0, || handlers::trace(|| fit_or_predict(&x, Some(&y))))?;
    let site = fit.get("y").unwrap();
    assert!(site.is_observed && site.meta.unwrap().observed);
    assert_eq!(site.value.as_ref().unwrap().to_vec1::<f32>()?, [2.0, 4.0, 6.0]);
    // Prediction: y is drawn from the model given the guide's w = 2.
    let (_, guide_tr) = handlers::seed(1, || handlers::trace(|| fit_or_predict_guide(&x, None)))?;
    let (pred, tr) = handlers::seed(2, || handlers::trace(|| handlers::replay(&guide_tr, || fit_or_predict(&x, None))))?;
    assert!(!tr.get("y").unwrap().is_observed);
    for (p, want) in pred.to_vec1::<f32>()?.iter().zip([2.0, 4.0, 6.0]) {
        assert!((p - want).abs() < 0.5, "{p} vs {want}");
    }
    // The primitives take the same `Option`.
    let none: Option<&Tensor> = None;
    let (_, tr) = handlers::trace(|| ppl::sample_with("v", Normal::new(0.0, 1.0)?, SampleOptions::new().obs(none)))?;
    assert!(!tr.get("v").unwrap().is_observed);
    let (_, tr) = handlers::trace(|| ppl::sample_with("v", Normal::new(0.0, 1.0)?, SampleOptions::new().obs(Some(t(0.5)))))?;
    assert!(tr.get("v").unwrap().is_observed);
    Ok(())
}
