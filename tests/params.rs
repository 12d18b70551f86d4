//! The parameter store: creation, constraints, lazy initialisation, modules, save and load.

use ppl::dist::{Constraint, Normal};
use ppl::prelude::*;
use ppl::{ParamInit, ParamOptions};

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn positive() -> ParamOptions {
    ParamOptions { constraint: Constraint::Positive, ..Default::default() }
}

#[test]
fn params_are_created_once_and_kept_unconstrained() -> Result<()> {
    let store = ParamStore::new();
    let s = store.scope(|| ppl::param_with("s", 2.0, positive()))?;
    assert!((scalar(&s) - 2.0).abs() < 1e-6);
    let var = store.get_unconstrained("s").unwrap();
    assert!((scalar(var.as_tensor()) - 2f64.ln()).abs() < 1e-6);
    // A second call ignores the init and returns the stored value.
    let s2 = store.scope(|| ppl::param_with("s", 99.0, positive()))?;
    assert!((scalar(&s2) - 2.0).abs() < 1e-6);
    // Gradients reach the unconstrained Var: d exp(u)/du = exp(u) = 2.
    let g = s2.backward()?;
    assert!((scalar(g.get(var.as_tensor()).unwrap()) - 2.0).abs() < 1e-5);
    Ok(())
}

#[test]
fn lazy_init_runs_only_when_the_param_is_new() -> Result<()> {
    let store = ParamStore::new();
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    for _ in 0..3 {
        let c = calls.clone();
        store.scope(|| {
            ppl::param(
                "w",
                ParamInit::lazy(move || {
                    c.set(c.get() + 1);
                    Ok(Tensor::ones(3, DType::F32, &Device::Cpu)?)
                }),
            )
        })?;
    }
    assert_eq!(calls.get(), 1);
    Ok(())
}

#[test]
fn an_init_outside_its_constraint_is_an_error() {
    let store = ParamStore::new();
    let err = store.scope(|| ppl::param_with("s", -1.0, positive())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`s`") && msg.contains("positive") && msg.contains("-1"), "{msg}");
}

#[test]
fn two_stores_do_not_share_state() -> Result<()> {
    let (a, b) = (ParamStore::new(), ParamStore::new());
    a.scope(|| ppl::param("w", 1.0))?;
    assert!(a.contains("w") && !b.contains("w"));
    Ok(())
}

#[test]
fn save_then_load_round_trips_values_and_constraints() -> Result<()> {
    let store = ParamStore::new();
    store.scope(|| -> Result<()> {
        ppl::param_with("scale", 0.25, positive())?;
        ppl::param_with("p", 0.9, ParamOptions { constraint: Constraint::UnitInterval, ..Default::default() })?;
        ppl::param_with("iv", 3.0, ParamOptions { constraint: Constraint::Interval(2.0, 5.0), ..Default::default() })?;
        ppl::param("loc", Tensor::new(&[[1.0f64, -2.0], [0.5, 4.0]], &Device::Cpu)?)?;
        // Constraints whose bijections change the shape (simplex: K-1 → K; lower Cholesky:
        // n(n+1)/2 → n×n) keep the constrained shape at the user's side.
        ppl::param_with("probs", Tensor::new(&[0.2f64, 0.3, 0.5], &Device::Cpu)?, ParamOptions { constraint: Constraint::Simplex, ..Default::default() })?;
        let l = Tensor::new(&[[2.0f64, 0.0], [0.5, 1.5]], &Device::Cpu)?;
        ppl::param_with("chol", l, ParamOptions { constraint: Constraint::LowerCholesky, ..Default::default() })?;
        Ok(())
    })?;
    let dir = std::env::temp_dir().join(format!("ppl-params-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("params.safetensors");
    store.save(&path)?;
    let loaded = ParamStore::new();
    loaded.load(&path, &Device::Cpu)?;
    let mut names = loaded.names();
    names.sort();
    assert_eq!(names, ["chol", "iv", "loc", "p", "probs", "scale"]);
    for n in store.names() {
        assert_eq!(loaded.constraint(&n), store.constraint(&n), "constraint of {n}");
        let (a, b) = (store.get(&n)?.unwrap(), loaded.get(&n)?.unwrap());
        assert_eq!(a.dims(), b.dims());
        assert_eq!(a.dtype(), b.dtype());
        let d = (a - b)?.abs()?.flatten_all()?.max(0)?;
        assert!(scalar(&d) < 1e-6, "value of {n}");
    }
    assert_eq!(loaded.constraint("iv"), Some(Constraint::Interval(2.0, 5.0)));
    // Loading a file that is not a ppl parameter file is an error naming the file.
    let other = dir.join("other.safetensors");
    candle_core::safetensors::save(&std::collections::HashMap::from([("x".to_string(), Tensor::zeros(2, DType::F32, &Device::Cpu)?)]), &other)?;
    let err = ParamStore::new().load(&other, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("other.safetensors"), "{err}");
    let err = ParamStore::new().load(dir.join("missing.safetensors"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("missing.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn module_registers_every_var_of_a_varmap() -> Result<()> {
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let lin = candle_nn::linear(3, 2, vb.pp("enc"))?;
    let store = ParamStore::new();
    store.scope(|| ppl::module("net", &vm))?;
    let mut names = store.names();
    names.sort();
    assert_eq!(names, ["net.enc.bias", "net.enc.weight"]);
    // The store holds the module's own Var: updating it changes the network.
    let w = store.get_unconstrained("net.enc.weight").unwrap();
    w.set(&Tensor::zeros((2, 3), DType::F32, &Device::Cpu)?)?;
    let out = candle_nn::Module::forward(&lin, &Tensor::ones((1, 3), DType::F32, &Device::Cpu)?)?;
    let b = store.get("net.enc.bias")?.unwrap();
    assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
    // A stored value (e.g. loaded) is copied into a fresh module's Var.
    let vm2 = candle_nn::VarMap::new();
    let vb2 = candle_nn::VarBuilder::from_varmap(&vm2, DType::F32, &Device::Cpu);
    let _ = candle_nn::linear(3, 2, vb2.pp("enc"))?;
    store.scope(|| ppl::module("net", &vm2))?;
    let w2 = vm2.data().lock().unwrap()["enc.weight"].clone();
    assert_eq!(w2.flatten_all()?.to_vec1::<f32>()?, vec![0.0; 6]);
    Ok(())
}

#[test]
fn params_work_with_distributions() -> Result<()> {
    let store = ParamStore::new();
    let (_, tr) = store.scope(|| {
        handlers::seed(0, || {
            handlers::trace(|| {
                let loc = ppl::param("loc", 1.0)?;
                let scale = ppl::param_with("scale", 0.5, positive())?;
                ppl::sample("z", Normal::new(&loc, &scale)?)
            })
        })
    })?;
    assert_eq!(tr.param_sites().count(), 2);
    let lp = tr.log_prob_sum()?;
    let grads = lp.backward()?;
    assert!(grads.get(store.get_unconstrained("loc").unwrap().as_tensor()).is_some());
    Ok(())
}

#[test]
fn get_set_names_and_iterate() -> Result<()> {
    let store = ParamStore::new();
    store.scope(|| -> Result<()> {
        ppl::param("a", 1.0)?;
        ppl::param_with("b", 3.0, positive())?;
        Ok(())
    })?;
    assert_eq!(store.names(), ["a", "b"]);
    let var_b = store.get_unconstrained("b").unwrap();
    // Setting an existing parameter keeps its Var (optimizers keep tracking it).
    store.set("b", &Tensor::new(5.0f32, &Device::Cpu)?, Constraint::Positive)?;
    assert_eq!(store.get_unconstrained("b").unwrap().id(), var_b.id());
    assert!((scalar(var_b.as_tensor()) - 5f64.ln()).abs() < 1e-6);
    let all: Vec<(String, f64)> = store.iter()?.into_iter().map(|(n, t)| (n, scalar(&t))).collect();
    assert_eq!(all[0], ("a".to_string(), 1.0));
    assert!((all[1].1 - 5.0).abs() < 1e-5);
    // A value outside the constraint is refused, and the old value stays.
    let err = store.set("b", &Tensor::new(-1.0f32, &Device::Cpu)?, Constraint::Positive).unwrap_err();
    assert!(err.to_string().contains("positive"), "{err}");
    assert!((scalar(&store.get("b")?.unwrap()) - 5.0).abs() < 1e-5);
    assert!(store.remove("a") && !store.contains("a"));
    store.clear();
    assert!(store.is_empty());
    Ok(())
}

#[test]
fn lazy_init_may_borrow_the_models_arguments() -> Result<()> {
    let x = Tensor::ones((5, 3), DType::F32, &Device::Cpu)?;
    let model = |x: &Tensor| -> Result<Tensor> {
        ppl::param("w", ParamInit::lazy(|| Ok(Tensor::zeros(x.dim(1)?, x.dtype(), x.device())?)))
    };
    let store = ParamStore::new();
    let w = store.scope(|| model(&x))?;
    assert_eq!(w.dims(), &[3]);
    // A trace of the run keeps the site but not the (borrowing) initializer.
    let (_, tr) = store.scope(|| handlers::trace(|| model(&x)))?;
    assert!(tr.get("w").unwrap().param.as_ref().unwrap().init.is_none());
    Ok(())
}

#[test]
fn threads_creating_one_parameter_all_see_the_winners_value() {
    // Before creation was atomic, 8 racing threads saw different values in ~40% of trials.
    for _trial in 0..150 {
        let store = ParamStore::new();
        let barrier = std::sync::Barrier::new(8);
        let seen: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (store, barrier) = (store.clone(), &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        scalar(&store.scope(|| ppl::param("w", i as f64)).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(seen.iter().all(|&v| v == seen[0]), "threads saw {seen:?}");
        assert_eq!(scalar(&store.get("w").unwrap().unwrap()), seen[0]);
    }
}

#[test]
fn a_param_read_twice_in_one_run_is_one_site_and_one_var() -> Result<()> {
    let store = ParamStore::new();
    let ((a, b), tr) = store.scope(|| {
        handlers::trace(|| {
            let a = ppl::param("w", 1.5)?;
            let b = ppl::param("w", 99.0)?;
            Ok((a, b))
        })
    })?;
    assert_eq!((scalar(&a), scalar(&b)), (1.5, 1.5));
    assert_eq!(tr.param_sites().count(), 1);
    let var = store.get_unconstrained("w").unwrap();
    let g = (a + b)?.backward()?;
    assert_eq!(scalar(g.get(var.as_tensor()).unwrap()), 2.0);
    // `module` from model and guide in one run.
    let vm = candle_nn::VarMap::new();
    let _ = candle_nn::linear(2, 1, candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu).pp("l"))?;
    let (_, tr) = store.scope(|| handlers::trace(|| {
        ppl::module("net", &vm)?;
        ppl::module("net", &vm)
    }))?;
    assert_eq!(tr.param_sites().count(), 2);
    Ok(())
}

#[test]
fn local_params_inside_a_subsampled_plate_are_indexed_by_the_subsample() -> Result<()> {
    let store = ParamStore::new();
    let idx = Tensor::new(&[4u32, 1], &Device::Cpu)?;
    let sub = || PlateOptions { subsample: Some(idx.clone()), ..Default::default() };
    // event_dim 0: one value per element.
    let (loc, tr) = store.scope(|| handlers::trace(|| {
        ppl::plate_with("data", 6, sub(), |_| local("loc", Some(0), Tensor::arange(0f32, 6.0, &Device::Cpu)?))
    }))?;
    assert_eq!(loc.to_vec1::<f32>()?, [4.0, 1.0]);
    assert_eq!(tr.get("loc").unwrap().cond_indep_stack[0].name, "data");
    // Gradients reach only the selected rows of the full Var.
    let g = loc.sum_all()?.backward()?;
    let var = store.get_unconstrained("loc").unwrap();
    assert_eq!(g.get(var.as_tensor()).unwrap().to_vec1::<f32>()?, [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
    // event_dim 1: the plate's dim is left of the event dim.
    let init = Tensor::arange(0f32, 12.0, &Device::Cpu)?.reshape((6, 2))?;
    let scale = store.scope(|| ppl::plate_with("data", 6, sub(), |_| local("scale", Some(1), init.clone())))?;
    assert_eq!(scale.to_vec2::<f32>()?, [[8.0, 9.0], [2.0, 3.0]]);
    // Without subsampling, or without an event_dim (as in Pyro), the value is the full parameter.
    let full = store.scope(|| ppl::plate("data", 6, |_| ppl::param("loc", 0.0)))?;
    assert_eq!(full.dims(), &[6]);
    let unmarked = store.scope(|| ppl::plate_with("data", 6, sub(), |_| local("other", None, init.clone())))?;
    assert_eq!(unmarked.dims(), &[6, 2]);
    // A local parameter of the wrong size is an error naming the plate and the parameter.
    let err = store
        .scope(|| ppl::plate_with("data", 6, sub(), |_| local("bad", Some(0), Tensor::zeros(5, DType::F32, &Device::Cpu)?)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("plate `data`") && err.contains("param `bad`") && err.contains("full size 6"), "{err}");
    Ok(())
}

/// A param site with an `event_dim`.
fn local(name: &str, event_dim: Option<usize>, init: Tensor) -> Result<Tensor> {
    ppl::param_with(name, init, ParamOptions { event_dim, ..Default::default() })
}

/// Rewrites the JSON header of a safetensors file with `edit`.
fn edit_header(path: &std::path::Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn load_errors_name_file_and_parameter_and_leave_the_store_unchanged() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ppl-load-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fit.safetensors");
    let saved = ParamStore::new();
    saved.set("a", &Tensor::new(5f32, &Device::Cpu)?, Constraint::Real)?;
    saved.set("b", &Tensor::new(2f32, &Device::Cpu)?, Constraint::Positive)?;
    let fresh = || -> Result<ParamStore> {
        let s = ParamStore::new();
        s.set("a", &Tensor::new(-1f32, &Device::Cpu)?, Constraint::Real)?;
        Ok(s)
    };
    let unchanged = |s: &ParamStore| s.names() == ["a"] && scalar(&s.get("a").unwrap().unwrap()) == -1.0;
    // An impossible constraint is reported as such ("a" loads first, yet the store is untouched).
    saved.save(&path)?;
    edit_header(&path, |h| h["__metadata__"]["constraint.b"] = "interval(1, 0)".into());
    let store = fresh()?;
    let err = store.load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("fit.safetensors") && err.contains("`b`") && err.contains("impossible"), "{err}");
    assert!(unchanged(&store), "a failed load changed the store: {:?}", store.names());
    // A loaded value outside its constraint is a "loaded value", never an "init".
    saved.save(&path)?;
    edit_header(&path, |h| h["__metadata__"]["constraint.b"] = "interval(5, 6)".into());
    let bytes = std::fs::read(&path).unwrap();
    let store = fresh()?;
    assert!(store.load(&path, &Device::Cpu).is_ok(), "any real maps into interval(5, 6)");
    std::fs::write(&path, &bytes).unwrap();
    edit_header(&path, |h| h["__metadata__"]["constraint.b"] = "boolean".into());
    let store = fresh()?;
    let err = store.load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("fit.safetensors") && err.contains("`b`") && !err.contains("init"), "{err}");
    assert!(unchanged(&store));
    // A missing constraint entry.
    saved.save(&path)?;
    edit_header(&path, |h| {
        h["__metadata__"].as_object_mut().unwrap().remove("constraint.b");
    });
    let store = fresh()?;
    let err = store.load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("fit.safetensors") && err.contains("`b`") && err.contains("no constraint"), "{err}");
    assert!(unchanged(&store));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
