//! Handler semantics, after Pyro's poutine tests: each handler alone, composed, and the stack's
//! behaviour on errors and panics.

use ppl::dist::{Bernoulli, Normal};
use ppl::handlers::{self, Block, Handler, Lift, data};
use ppl::prelude::*;
use ppl::{InferConfig, Message, SiteKind};
use std::f64::consts::PI;

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn vec1(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// log N(x | loc, scale), written out independently of the library.
fn normal_lp(x: f64, loc: f64, scale: f64) -> f64 {
    -0.5 * ((x - loc) / scale).powi(2) - scale.ln() - 0.5 * (2.0 * PI).ln()
}

fn t(v: f64) -> Tensor {
    Tensor::new(v as f32, &Device::Cpu).unwrap()
}

/// z ~ N(0, 1); x ~ N(z, 1) observed at `x`.
fn model(x: &Tensor) -> Result<Tensor> {
    let z = ppl::sample("z", Normal::new(0.0, 1.0)?)?;
    ppl::observe("x", Normal::new(&z, 1.0)?, x)?;
    Ok(z)
}

#[test]
fn trace_records_sites_in_order_with_kinds_and_log_prob() -> Result<()> {
    let x = t(0.5);
    let (z, tr) = handlers::seed(1, || handlers::trace(|| model(&x)))?;
    let names: Vec<&str> = tr.nodes().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["z", "x"]);
    assert!(!tr.get("z").unwrap().is_observed);
    assert!(tr.get("x").unwrap().is_observed);
    let zv = scalar(&z);
    let want = normal_lp(zv, 0.0, 1.0) + normal_lp(0.5, zv, 1.0);
    let got = scalar(&tr.log_prob_sum()?);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    Ok(())
}

#[test]
fn replay_makes_the_model_take_the_guides_values() -> Result<()> {
    let guide = || -> Result<Tensor> { ppl::sample("z", Normal::new(3.0, 0.1)?) };
    let (_, guide_tr) = handlers::seed(0, || handlers::trace(guide))?;
    let x = t(0.0);
    let (z, model_tr) = handlers::trace(|| handlers::replay(&guide_tr, || model(&x)))?;
    let gz = scalar(guide_tr.value("z")?);
    assert_eq!(scalar(&z), gz);
    assert_eq!(scalar(model_tr.value("z")?), gz);
    // The replayed value is scored under the model's prior, not the guide's distribution.
    let lp = scalar(model_tr.get("z").unwrap().log_prob()?.unwrap());
    assert!((lp - normal_lp(gz, 0.0, 1.0)).abs() < 1e-5);
    Ok(())
}

#[test]
fn condition_turns_a_latent_into_an_observed_site() -> Result<()> {
    let x = t(0.0);
    let (z, tr) = handlers::trace(|| handlers::condition(data([("z", t(1.25))]), || model(&x)))?;
    assert_eq!(scalar(&z), 1.25);
    let site = tr.get("z").unwrap();
    assert!(site.is_observed);
    assert_eq!(tr.latent_sites().count(), 0);
    Ok(())
}

#[test]
fn substitute_sets_values_without_observing() -> Result<()> {
    let x = t(0.0);
    let (z, tr) = handlers::trace(|| handlers::substitute(data([("z", t(-2.0))]), || model(&x)))?;
    assert_eq!(scalar(&z), -2.0);
    assert!(!tr.get("z").unwrap().is_observed);
    Ok(())
}

#[test]
fn block_hides_sites_from_an_outer_trace() -> Result<()> {
    let x = t(0.0);
    let (_, tr) = handlers::trace(|| handlers::block(Block::hide(["z"]), || model(&x)))?;
    assert!(!tr.contains("z") && tr.contains("x"));
    let (_, tr) = handlers::trace(|| handlers::block(Block::expose(["z"]), || model(&x)))?;
    assert!(tr.contains("z") && !tr.contains("x"));
    let (_, tr) = handlers::trace(|| handlers::block(Block::all(), || model(&x)))?;
    assert!(tr.is_empty());
    let (_, tr) = handlers::trace(|| handlers::block(Block::hide_fn(|m: &Message| m.is_observed), || model(&x)))?;
    assert!(tr.contains("z") && !tr.contains("x"));
    // A trace *inside* the block still sees everything.
    let ((_, inner), outer) = handlers::trace(|| handlers::block(Block::all(), || handlers::trace(|| model(&x))))?;
    assert_eq!(inner.len(), 2);
    assert!(outer.is_empty());
    Ok(())
}

#[test]
fn scale_multiplies_log_prob() -> Result<()> {
    let x = t(0.7);
    let (_, plain) = handlers::seed(3, || handlers::trace(|| model(&x)))?;
    let (_, scaled) = handlers::seed(3, || handlers::trace(|| handlers::scale(2.5, || model(&x))))?;
    let a = scalar(&plain.log_prob_sum()?);
    let b = scalar(&scaled.log_prob_sum()?);
    assert!((b - 2.5 * a).abs() < 1e-4 * a.abs().max(1.0), "{b} vs 2.5 * {a}");
    assert_eq!(scaled.get("x").unwrap().scale, 2.5);
    // Nested scales multiply.
    let (_, nested) = handlers::seed(3, || handlers::trace(|| handlers::scale(2.0, || handlers::scale(3.0, || model(&x)))))?;
    assert_eq!(nested.get("z").unwrap().scale, 6.0);
    assert!(handlers::scale(-1.0, || Ok(())).is_err());
    Ok(())
}

#[test]
fn mask_zeroes_masked_elements() -> Result<()> {
    let xs = Tensor::new(&[0.1f32, -0.3, 2.0, 0.8], &Device::Cpu)?;
    let m = Tensor::new(&[1u8, 0, 1, 0], &Device::Cpu)?;
    let run = || -> Result<()> {
        ppl::plate("n", 4, |_| {
            ppl::observe("x", Normal::new(0.0, 1.0)?, &xs)?;
            Ok(())
        })
    };
    let (_, tr) = handlers::trace(|| handlers::mask(&m, run))?;
    let lp = vec1(tr.get("x").unwrap().log_prob()?.unwrap());
    let want = [normal_lp(0.1, 0.0, 1.0), 0.0, normal_lp(2.0, 0.0, 1.0), 0.0];
    for (g, w) in lp.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{lp:?} vs {want:?}");
    }
    // The same through a site-level mask and the distribution's own `.mask()`.
    let (_, tr2) = handlers::trace(|| {
        ppl::sample_with("x", Normal::new(0.0, 1.0)?.expand(&[4])?, SampleOptions { obs: Some(xs.clone()), mask: Some(m.clone()), ..Default::default() })
    })?;
    assert_eq!(vec1(tr2.get("x").unwrap().log_prob()?.unwrap()), lp);
    let (_, tr3) = handlers::trace(|| ppl::observe("x", Normal::new(0.0, 1.0)?.expand(&[4])?.mask(&m)?, &xs))?;
    assert_eq!(vec1(tr3.get("x").unwrap().log_prob()?.unwrap()), lp);
    Ok(())
}



#[test]
fn nested_plates_give_batch_shape_3_4_with_the_right_dims() -> Result<()> {
    // As in Pyro, dims are allocated from the right in the order plates are entered: the outer
    // plate takes -1, the inner one -2.
    let (_, tr) = handlers::trace(|| {
        ppl::plate("outer", 4, |_| {
            ppl::plate("inner", 3, |_| {
                ppl::sample("z", Normal::new(0.0, 1.0)?)?;
                Ok(())
            })
        })
    })?;
    let z = tr.get("z").unwrap();
    assert_eq!(z.dist.as_ref().unwrap().batch_shape(), &[3, 4]);
    assert_eq!(z.value.as_ref().unwrap().dims(), &[3, 4]);
    let frames: Vec<(&str, Option<isize>, usize)> =
        z.cond_indep_stack.iter().map(|f| (f.name.as_str(), f.dim, f.size)).collect();
    assert_eq!(frames, [("outer", Some(-1), 4), ("inner", Some(-2), 3)]);
    assert_eq!(z.log_prob()?.unwrap().dims(), &[3, 4]);
    // With explicit dims, the outer plate of size 3 can sit at -2.
    let (_, tr) = handlers::trace(|| {
        ppl::plate_with("rows", 3, PlateOptions { dim: Some(-2), ..Default::default() }, |_| {
            ppl::plate_with("cols", 4, PlateOptions { dim: Some(-1), ..Default::default() }, |_| {
                ppl::sample("z", Normal::new(0.0, 1.0)?)
            })
        })
    })?;
    let z = tr.get("z").unwrap();
    assert_eq!(z.value.as_ref().unwrap().dims(), &[3, 4]);
    let dims: Vec<Option<isize>> = z.cond_indep_stack.iter().map(|f| f.dim).collect();
    assert_eq!(dims, [Some(-2), Some(-1)]);
    Ok(())
}

#[test]
fn plates_with_explicit_dims_and_conflicts() -> Result<()> {
    let (_, tr) = handlers::trace(|| {
        ppl::plate_with("a", 5, PlateOptions { dim: Some(-2), ..Default::default() }, |_| {
            ppl::sample("z", Normal::new(0.0, 1.0)?)?;
            Ok(())
        })
    })?;
    assert_eq!(tr.get("z").unwrap().dist.as_ref().unwrap().batch_shape(), &[5, 1]);
    let err = ppl::plate_with("a", 2, PlateOptions { dim: Some(-1), ..Default::default() }, |_| {
        ppl::plate_with("b", 3, PlateOptions { dim: Some(-1), ..Default::default() }, |_| Ok(()))
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("plate `b`") && msg.contains("`a`"), "{msg}");
    // A distribution whose batch size disagrees with the plate is an error naming both.
    let err = ppl::plate("p", 3, |_| ppl::sample("w", Normal::new(Tensor::zeros(4, DType::F32, &Device::Cpu)?, 1.0)?))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("site `w`") && msg.contains("plate `p`") && msg.contains("size 3"), "{msg}");
    // Dims are released after the plate: the next plate reuses -1.
    let (_, tr) = handlers::trace(|| ppl::plate("q", 2, |_| ppl::sample("y", Normal::new(0.0, 1.0)?)))?;
    assert_eq!(tr.get("y").unwrap().cond_indep_stack[0].dim, Some(-1));
    Ok(())
}

#[test]
fn subsampling_scales_log_prob_by_n_over_b() -> Result<()> {
    let n = 100;
    let b = 10;
    let data = Tensor::arange(0f32, n as f32, &Device::Cpu)?.affine(0.01, 0.0)?;
    let (idx, tr) = handlers::seed(5, || {
        handlers::trace(|| {
            ppl::plate_with("data", n, PlateOptions { subsample_size: Some(b), ..Default::default() }, |idx| {
                let batch = data.index_select(idx, 0)?;
                ppl::observe("x", Normal::new(0.0, 1.0)?, &batch)?;
                Ok(idx.clone())
            })
        })
    })?;
    let idx: Vec<u32> = idx.to_vec1()?;
    assert_eq!(idx.len(), b);
    let mut sorted = idx.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), b, "subsample indices must be distinct");
    let site = tr.get("x").unwrap();
    assert_eq!(site.scale, n as f64 / b as f64);
    let want: f64 = idx.iter().map(|&i| normal_lp(i as f64 * 0.01, 0.0, 1.0)).sum::<f64>() * (n / b) as f64;
    let got = scalar(&tr.log_prob_sum()?);
    assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    // An explicit index tensor is used as given.
    let given = Tensor::new(&[3u32, 7], &Device::Cpu)?;
    let (_, tr) = handlers::trace(|| {
        ppl::plate_with("data", n, PlateOptions { subsample: Some(given.clone()), ..Default::default() }, |idx| {
            ppl::observe("x", Normal::new(0.0, 1.0)?, &data.index_select(idx, 0)?)
        })
    })?;
    assert_eq!(tr.get("x").unwrap().scale, 50.0);
    let bad = Tensor::new(&[300u32], &Device::Cpu)?;
    let err = ppl::plate_with("data", n, PlateOptions { subsample: Some(bad), ..Default::default() }, |_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    Ok(())
}

#[test]
fn do_replaces_a_value_without_adding_its_log_prob() -> Result<()> {
    let x = t(0.5);
    let (z, tr) = handlers::trace(|| handlers::do_(data([("z", t(2.0))]), || model(&x)))?;
    assert_eq!(scalar(&z), 2.0);
    let zs = tr.get("z").unwrap();
    assert!(zs.intervened && !zs.is_observed);
    assert!(zs.log_prob()?.is_none());
    // Only x contributes, with z = 2 downstream.
    let got = scalar(&tr.log_prob_sum()?);
    assert!((got - normal_lp(0.5, 2.0, 1.0)).abs() < 1e-5);
    assert_eq!(tr.latent_sites().count(), 0);
    Ok(())
}

#[test]
fn uncondition_samples_observed_sites() -> Result<()> {
    let x = t(100.0);
    let (_, tr) = handlers::seed(0, || handlers::trace(|| handlers::uncondition(|| model(&x))))?;
    let xs = tr.get("x").unwrap();
    assert!(!xs.is_observed);
    assert!(scalar(xs.value.as_ref().unwrap()).abs() < 20.0, "x was drawn, not kept at 100");
    Ok(())
}

#[test]
fn lift_turns_params_into_samples_from_priors() -> Result<()> {
    let prior: DistRef = Normal::new(10.0, 0.001)?.into_ref();
    let f = || ppl::param("w", 0.0);
    let (w, tr) = handlers::seed(0, || handlers::trace(|| handlers::lift(Lift::all(prior.clone()), f)))?;
    assert!((scalar(&w) - 10.0).abs() < 0.01);
    assert_eq!(tr.get("w").unwrap().kind, SiteKind::Sample);
    // Without lift and without a store, a param is an error that names the site.
    let err = ppl::param("w", 0.0).unwrap_err();
    assert!(err.to_string().contains("site `w`") && err.to_string().contains("parameter store"), "{err}");
    Ok(())
}

#[test]
fn infer_config_sets_site_configuration() -> Result<()> {
    let cfg = |m: &Message| (m.name == "c").then(|| ppl::InferConfig::new().enumerate(ppl::Enumerate::Parallel));
    let (_, tr) = handlers::trace(|| handlers::infer_config(cfg, || ppl::sample("c", Bernoulli::new(0.3)?)))?;
    assert_eq!(tr.get("c").unwrap().infer.enumerate, Some(ppl::Enumerate::Parallel));
    Ok(())
}

#[test]
fn factor_and_deterministic_sites() -> Result<()> {
    let (_, tr) = handlers::trace(|| {
        ppl::factor("f", &t(-1.5))?;
        ppl::deterministic("d", &t(4.0))
    })?;
    assert_eq!(tr.get("f").unwrap().kind, SiteKind::Factor);
    assert_eq!(tr.get("d").unwrap().kind, SiteKind::Deterministic);
    assert_eq!(scalar(&tr.log_prob_sum()?), -1.5);
    Ok(())
}

#[test]
fn seeds_reproduce_and_differ() -> Result<()> {
    let draw = |s: u64| -> Result<Vec<f64>> {
        handlers::seed(s, || {
            let z = ppl::sample("z", Normal::new(0.0, 1.0)?.expand(&[5])?)?;
            Ok(vec1(&z))
        })
    };
    assert_eq!(draw(42)?, draw(42)?);
    assert_ne!(draw(42)?, draw(43)?);
    // The innermost seed wins.
    let inner = handlers::seed(1, || handlers::seed(42, || ppl::sample("z", Normal::new(0.0, 1.0)?.expand(&[5])?)))?;
    assert_eq!(vec1(&inner), draw(42)?);
    Ok(())
}

#[test]
fn two_threads_with_different_seeds_are_independent() -> Result<()> {
    let run = |s: u64| {
        std::thread::spawn(move || -> Vec<f64> {
            handlers::seed(s, || {
                let z = ppl::sample("z", Normal::new(0.0, 1.0).unwrap().expand(&[2000]).unwrap()).unwrap();
                vec1(&z)
            })
        })
    };
    let (a, b) = (run(1), run(2));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_ne!(a, b);
    // Sample correlation of independent N(0,1) streams: |r| < 4 / sqrt(n).
    let n = a.len() as f64;
    let r: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / n;
    assert!(r.abs() < 4.0 / n.sqrt(), "correlation {r}");
    // Same seed on another thread: same numbers (and the main thread's stack is untouched).
    let c = run(1).join().unwrap();
    assert_eq!(a, c);
    assert_eq!(ppl::runtime::stack_depth(), 0);
    Ok(())
}

#[test]
fn the_stack_is_intact_after_a_panic_inside_a_model() {
    let before = ppl::runtime::stack_depth();
    let result = std::panic::catch_unwind(|| {
        handlers::trace(|| {
            handlers::seed(0, || {
                handlers::scale(2.0, || -> Result<()> {
                    ppl::sample("z", Normal::new(0.0, 1.0)?)?;
                    panic!("boom inside the model");
                })
            })
        })
    });
    assert!(result.is_err());
    assert_eq!(ppl::runtime::stack_depth(), before);
    // And after an early `?` return.
    let r: Result<((), Trace)> = handlers::trace(|| {
        ppl::sample("z", Normal::new(0.0, -1.0)?)?;
        Ok(())
    });
    assert!(r.is_err());
    assert_eq!(ppl::runtime::stack_depth(), before);
    // A fresh trace sees nothing from the aborted runs.
    let (_, tr) = handlers::trace(|| ppl::sample("y", Normal::new(0.0, 1.0)?)).unwrap();
    assert_eq!(tr.len(), 1);
}

/// Records the order in which handlers see a message.
struct Recorder {
    tag: &'static str,
    log: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    stop: bool,
}

impl Handler for Recorder {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        self.log.borrow_mut().push(format!("process {}", self.tag));
        msg.stop = self.stop;
        Ok(())
    }
    fn postprocess(&mut self, _msg: &mut Message) -> Result<()> {
        self.log.borrow_mut().push(format!("post {}", self.tag));
        Ok(())
    }
}

#[test]
fn apply_stack_order_is_innermost_first_then_unwinds() -> Result<()> {
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let rec = |tag, stop| Recorder { tag, log: log.clone(), stop };
    handlers::with_handler(rec("outer", false), || handlers::with_handler(rec("inner", false), || ppl::sample("z", Normal::new(0.0, 1.0)?)).0)
        .0?;
    assert_eq!(*log.borrow(), ["process inner", "process outer", "post inner", "post outer"]);
    log.borrow_mut().clear();
    // `stop` keeps outer handlers from seeing the message at all.
    handlers::with_handler(rec("outer", false), || handlers::with_handler(rec("inner", true), || ppl::sample("z", Normal::new(0.0, 1.0)?)).0)
        .0?;
    assert_eq!(*log.borrow(), ["process inner", "post inner"]);
    Ok(())
}

#[test]
fn duplicate_site_names_are_an_error_naming_the_site() {
    let err = handlers::trace(|| -> Result<()> {
        ppl::sample("z", Normal::new(0.0, 1.0)?)?;
        ppl::sample("z", Normal::new(0.0, 1.0)?)?;
        Ok(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("site `z`") && err.to_string().contains("duplicate"), "{err}");
}

#[test]
fn sequential_plate_records_counters_without_broadcasting() -> Result<()> {
    let (_, tr) = handlers::trace(|| {
        ppl::seq_plate("s", 3, |i| ppl::sample(format!("z_{i}"), Normal::new(0.0, 1.0)?))
    })?;
    for i in 0..3 {
        let s = tr.get(&format!("z_{i}")).unwrap();
        assert_eq!(s.cond_indep_stack[0].counter, i);
        assert_eq!(s.cond_indep_stack[0].dim, None);
        assert_eq!(s.value.as_ref().unwrap().dims(), &[] as &[usize]);
    }
    Ok(())
}

#[test]
fn format_shapes_lists_every_site() -> Result<()> {
    let x = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
    let (_, tr) = handlers::trace(|| {
        let z = ppl::sample("z", Normal::new(0.0, 1.0)?)?;
        ppl::plate("cols", 4, |_| ppl::plate("rows", 3, |_| ppl::observe("x", Normal::new(&z, 1.0)?, &x)))
    })?;
    let table = tr.format_shapes();
    let lines: Vec<&str> = table.lines().collect();
    // header, z, the two plate sites, x
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].contains("log_prob"), "{table}");
    assert!(lines[2].starts_with("cols") && lines[2].contains("plate") && lines[2].contains("size 4"), "{table}");
    // x: name, kind, dist, batch | event, value shape, log_prob shape, plates.
    let cells: Vec<&str> = lines[4].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["x", "sample", "Normal", "[3, 4] | []", "[3, 4]", "[3, 4]", "obs cols[4]@-1 rows[3]@-2"], "{table}");
    Ok(())
}

#[test]
fn mixed_dtypes_at_a_site_are_an_error_naming_both() {
    let obs = Tensor::new(1.0f64, &Device::Cpu).unwrap();
    let err = ppl::observe("x", Normal::new(0.0, 1.0).unwrap(), &obs).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("site `x`") && msg.contains("F32") && msg.contains("F64"), "{msg}");
}

#[test]
fn sequential_plate_as_an_iterator() -> Result<()> {
    let (_, tr) = handlers::trace(|| {
        for i in ppl::seq_plate_iter("steps", 4)? {
            ppl::sample(format!("z_{i}"), Normal::new(0.0, 1.0)?)?;
        }
        // After the loop no frame is left: this site lies in no plate.
        ppl::sample("after", Normal::new(0.0, 1.0)?)
    })?;
    for i in 0..4 {
        let f = &tr.get(&format!("z_{i}")).unwrap().cond_indep_stack;
        assert_eq!((f.len(), f[0].name.as_str(), f[0].counter, f[0].dim), (1, "steps", i, None));
    }
    assert!(tr.get("after").unwrap().cond_indep_stack.is_empty());
    // Breaking out early drops the iterator and its frame.
    let depth = ppl::runtime::stack_depth();
    for i in ppl::seq_plate_iter("steps", 10)? {
        if *i == 2 {
            break;
        }
        assert_eq!(ppl::runtime::stack_depth(), depth + 1);
    }
    assert_eq!(ppl::runtime::stack_depth(), depth);
    // Advancing the iterator inside another handler's scope: the frame is the live index's.
    let mut it = ppl::seq_plate_iter("outer", 3)?;
    drop(it.next());
    let (_, tr) = handlers::trace(|| {
        let _i = it.next();
        ppl::sample("w", Normal::new(0.0, 1.0)?)
    })?;
    assert_eq!(tr.get("w").unwrap().cond_indep_stack[0].counter, 1);
    drop(it);
    assert_eq!(ppl::runtime::stack_depth(), depth);
    Ok(())
}

// ---- Plates as sites: subsample indices travel with the trace ----

/// A guide with a local latent per data row, centred on that row's value, inside a subsampled
/// plate; returns the indices it used.
fn local_guide(data: &Tensor) -> Result<Tensor> {
    let opts = PlateOptions { subsample_size: Some(5), ..Default::default() };
    ppl::plate_with("data", data.dim(0)?, opts, |idx| {
        ppl::sample("z", Normal::new(&data.index_select(idx, 0)?, 1e-3)?)?;
        Ok(idx.clone())
    })
}

/// The model: the local latent must explain the same rows of `data` as in the guide.
fn local_model(data: &Tensor) -> Result<Tensor> {
    let opts = PlateOptions { subsample_size: Some(5), ..Default::default() };
    ppl::plate_with("data", data.dim(0)?, opts, |idx| {
        let z = ppl::sample("z", Normal::new(0.0, 10.0)?)?;
        ppl::observe("x", Normal::new(&z, 0.1)?, &data.index_select(idx, 0)?)?;
        Ok(idx.clone())
    })
}

#[test]
fn plate_sites_record_the_subsample_and_replay_gives_the_model_the_guides_indices() -> Result<()> {
    let data = Tensor::arange(0f32, 50.0, &Device::Cpu)?;
    let (guide_idx, guide_tr) = handlers::seed(0, || handlers::trace(|| local_guide(&data)))?;
    // The plate is a site: its value is the subsample, it has no log-density and is not latent.
    let p = guide_tr.get("data").unwrap();
    assert_eq!(p.kind, SiteKind::Plate);
    assert_eq!(vec1(p.value.as_ref().unwrap()), vec1(&guide_idx));
    assert_eq!((p.plate.as_ref().unwrap().size, p.plate.as_ref().unwrap().subsample_size), (50, 5));
    assert!(p.log_prob()?.is_none());
    assert_eq!(guide_tr.latent_sites().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["z"]);
    assert_eq!(guide_tr.sample_sites().count(), 1);
    let z_lp = scalar(&guide_tr.get("z").unwrap().log_prob()?.unwrap().sum_all()?);
    assert!((scalar(&guide_tr.log_prob_sum()?) - z_lp).abs() < 1e-3);
    // Replayed under another seed, the model uses the guide's rows: z (≈ the guide's rows)
    // meets the same rows of the data.
    let (model_idx, model_tr) =
        handlers::seed(123, || handlers::trace(|| handlers::replay(&guide_tr, || local_model(&data))))?;
    assert_eq!(vec1(&model_idx), vec1(&guide_idx));
    let z = vec1(model_tr.value("z")?);
    let rows: Vec<f64> = vec1(&guide_idx);
    for (z, r) in z.iter().zip(&rows) {
        assert!((z - r).abs() < 0.01, "z {z} paired with row {r}");
    }
    assert_eq!(model_tr.get("x").unwrap().scale, 10.0);
    Ok(())
}

#[test]
fn a_plate_entered_twice_keeps_one_site_or_names_the_disagreement() -> Result<()> {
    let (_, tr) = handlers::trace(|| {
        ppl::plate("p", 3, |_| ppl::sample("a", Normal::new(0.0, 1.0)?))?;
        ppl::plate("p", 3, |_| ppl::sample("b", Normal::new(0.0, 1.0)?))
    })?;
    assert_eq!(tr.nodes().filter(|s| s.kind == SiteKind::Plate).count(), 1);
    let err = handlers::trace(|| {
        ppl::plate("p", 3, |_| Ok(()))?;
        ppl::plate("p", 4, |_| Ok(()))
    })
    .unwrap_err();
    assert!(err.to_string().contains("plate `p`") && err.to_string().contains("different sizes"), "{err}");
    let sub = || PlateOptions { subsample: None, subsample_size: Some(3), ..Default::default() };
    let err = handlers::seed(1, || {
        handlers::trace(|| {
            ppl::plate_with("q", 1000, sub(), |_| Ok(()))?;
            ppl::plate_with("q", 1000, sub(), |_| Ok(()))
        })
    })
    .unwrap_err();
    assert!(err.to_string().contains("plate `q`") && err.to_string().contains("subsample indices"), "{err}");
    // Replaying a plate of another size is a model/guide mismatch naming the plate.
    let (_, tr) = handlers::trace(|| ppl::plate("r", 3, |_| Ok(())))?;
    let err = handlers::replay(&tr, || ppl::plate("r", 4, |_| Ok(()))).unwrap_err();
    assert!(err.to_string().contains("plate `r` has size 3") && err.to_string().contains("but 4"), "{err}");
    Ok(())
}

#[test]
fn substitute_sets_a_plates_indices_but_explicit_subsamples_win() -> Result<()> {
    let idx = Tensor::new(&[4u32, 1], &Device::Cpu)?;
    let run = |opts: PlateOptions| ppl::plate_with("p", 6, opts, |i| Ok(vec1(i)));
    let got = handlers::substitute(data([("p", idx.clone())]), || run(PlateOptions { subsample_size: Some(2), ..Default::default() }))?;
    assert_eq!(got, [4.0, 1.0]);
    let given = Tensor::new(&[0u32, 5], &Device::Cpu)?;
    let got = handlers::substitute(data([("p", idx)]), || run(PlateOptions { subsample: Some(given), ..Default::default() }))?;
    assert_eq!(got, [0.0, 5.0]);
    // A substituted index out of range is caught like a given one.
    let bad = Tensor::new(&[9u32], &Device::Cpu)?;
    let err = handlers::substitute(data([("p", bad)]), || run(PlateOptions::default())).unwrap_err();
    assert!(err.to_string().contains("plate `p`") && err.to_string().contains("out of range"), "{err}");
    Ok(())
}

// ---- Handlers that create sites; params through block ----

/// Samples an auxiliary site from inside its own `process` whenever it sees `trigger`.
struct Spawner;

impl Handler for Spawner {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if msg.name == "z" {
            let aux = ppl::sample("aux", Normal::new(0.0, 1.0)?)?;
            msg.value = Some(aux.affine(1.0, 100.0)?);
        }
        Ok(())
    }
    fn postprocess(&mut self, msg: &mut Message) -> Result<()> {
        if msg.name == "z" {
            ppl::deterministic("z_seen", msg.value()?)?;
        }
        Ok(())
    }
}

#[test]
fn a_handler_may_sample_inside_process_and_postprocess() -> Result<()> {
    let x = t(0.0);
    let run = || handlers::seed(9, || handlers::trace(|| handlers::with_handler(Spawner, || model(&x)).0));
    let (z, tr) = run()?;
    let names: Vec<&str> = tr.nodes().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["aux", "z_seen", "z", "x"]);
    let aux = scalar(tr.value("aux")?);
    assert!((scalar(&z) - (aux + 100.0)).abs() < 1e-4);
    assert_eq!(scalar(tr.value("z_seen")?), scalar(&z));
    // The nested draw comes from the seeded generator: reproducible.
    assert_eq!(scalar(run()?.1.value("aux")?), aux);
    Ok(())
}

#[test]
fn block_does_not_hide_the_parameter_store() -> Result<()> {
    let store = ParamStore::new();
    let guide = || -> Result<Tensor> {
        let loc = ppl::param("loc", 0.25)?;
        ppl::sample("z", Normal::new(&loc, 1.0)?)
    };
    let (_, tr) = store.scope(|| handlers::seed(0, || handlers::trace(|| handlers::block(Block::all(), guide))))?;
    assert!(tr.is_empty(), "blocked sites stay hidden from the trace");
    assert_eq!(store.names(), ["loc"]);
    // substitute still sets the value first, and lift still turns the param into a sample.
    let v = store.scope(|| handlers::block(Block::all(), || handlers::substitute(data([("loc", t(7.0))]), || ppl::param("loc", 0.25))))?;
    assert_eq!(scalar(&v), 7.0);
    let prior: DistRef = Normal::new(-50.0, 1e-3)?.into_ref();
    let (v, tr) = store.scope(|| handlers::trace(|| handlers::lift(Lift::all(prior.clone()), || ppl::param("loc", 0.25))))?;
    assert!((scalar(&v) + 50.0).abs() < 0.1);
    assert_eq!(tr.get("loc").unwrap().kind, SiteKind::Sample);
    Ok(())
}

// ---- reparameterized ----

#[test]
fn messages_record_whether_their_value_was_reparameterized() -> Result<()> {
    let store = ParamStore::new();
    let x = t(0.3);
    let run = |infer: InferConfig| {
        store.scope(|| {
            handlers::seed(0, || {
                handlers::trace(|| {
                    let loc = ppl::param("loc", 0.5)?;
                    let opts = SampleOptions::new().infer(infer.clone());
                    let z = ppl::sample_with("z", Normal::new(&loc, 1.0)?, opts)?;
                    ppl::sample("c", Bernoulli::new(0.5)?)?;
                    ppl::observe("x", Normal::new(0.0, 1.0)?, &x)?;
                    Ok(z)
                })
            })
        })
    };
    let (z, tr) = run(InferConfig::new())?;
    let flags = |tr: &Trace| ["z", "c", "x"].map(|n| tr.get(n).unwrap().reparameterized);
    assert_eq!(flags(&tr), [true, false, false]);
    let var = store.get_unconstrained("loc").unwrap();
    assert!(z.backward()?.get(var.as_tensor()).is_some(), "an rsample'd value carries the pathwise gradient");
    let (z, tr) = run(InferConfig::new().reparameterize(false))?;
    assert_eq!(flags(&tr), [false, false, false]);
    assert_eq!(tr.get("z").unwrap().infer.reparameterize, Some(false));
    assert!(z.backward()?.get(var.as_tensor()).is_none(), "reparameterize(false) draws without a gradient");
    Ok(())
}

// ---- Validation ----

#[test]
fn fractional_float_subsample_indices_are_an_error_naming_the_expected_dtype() -> Result<()> {
    let opts = |idx: &[f32]| PlateOptions { subsample: Some(Tensor::new(idx, &Device::Cpu).unwrap()), ..Default::default() };
    let err = ppl::plate_with("p", 10, opts(&[1.0, 2.5]), |_| Ok(())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("plate `p`") && msg.contains("2.5") && msg.contains("U32 or I64") && msg.contains("F32"), "{msg}");
    // Whole numbers in a float tensor are accepted as the indices they denote.
    let got = ppl::plate_with("p", 10, opts(&[1.0, 7.0]), |i| Ok(vec1(i)))?;
    assert_eq!(got, [1.0, 7.0]);
    Ok(())
}

/// Sets a mask on every sample site, bypassing `mask`'s own checks.
struct RawMask(Tensor);

impl Handler for RawMask {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        msg.mask = Some(self.0.clone());
        Ok(())
    }
}

#[test]
fn masks_must_be_u8_zeros_and_ones() -> Result<()> {
    let xs = Tensor::new(&[0.1f32, -0.3], &Device::Cpu)?;
    let weights = Tensor::new(&[0.5f32, 1.0], &Device::Cpu)?;
    let twos = Tensor::new(&[2u8, 1], &Device::Cpu)?;
    let observe_masked = |m: &Tensor| {
        ppl::sample_with("x", Normal::new(0.0, 1.0)?.expand(&[2])?, SampleOptions::new().obs(&xs).mask(m))
    };
    let err = observe_masked(&weights).unwrap_err().to_string();
    assert!(err.contains("site `x`") && err.contains("u8") && err.contains("F32") && err.contains("not weights"), "{err}");
    let err = observe_masked(&twos).unwrap_err().to_string();
    assert!(err.contains("site `x`") && err.contains("only 0 and 1") && err.contains("value 2"), "{err}");
    let err = handlers::mask(&weights, || Ok(())).unwrap_err().to_string();
    assert!(err.contains("u8") && err.contains("F32"), "{err}");
    assert!(handlers::mask(&twos, || Ok(())).unwrap_err().to_string().contains("value 2"));
    // A mask set by some other handler is checked when the log-density is computed.
    let (_, tr) = handlers::trace(|| handlers::with_handler(RawMask(weights.clone()), || ppl::observe("x", Normal::new(0.0, 1.0)?.expand(&[2])?, &xs)).0)?;
    let err = tr.log_prob_sum().unwrap_err().to_string();
    assert!(err.contains("site `x`") && err.contains("u8"), "{err}");
    Ok(())
}

#[test]
fn nested_plates_with_one_name_are_an_error() {
    let vectorized = ppl::plate("p", 2, |_| ppl::plate("p", 3, |_| Ok(())));
    let seq_in_vec = ppl::plate("p", 2, |_| ppl::seq_plate("p", 3, |_| Ok(())).map(|_| ()));
    let vec_in_seq = ppl::seq_plate("p", 2, |_| ppl::plate("p", 3, |_| Ok(()))).map(|_| ());
    for r in [vectorized, seq_in_vec, vec_in_seq] {
        let err = r.unwrap_err().to_string();
        assert!(err.contains("plate `p`") && err.contains("same name"), "{err}");
    }
    assert_eq!(ppl::runtime::stack_depth(), 0);
}

#[test]
fn seq_plate_iter_items_collected_first_keep_their_frames() -> Result<()> {
    let (_, tr) = handlers::trace(|| {
        let items: Vec<_> = ppl::seq_plate_iter("steps", 3)?.collect();
        for i in items {
            ppl::sample(format!("z_{i}"), Normal::new(0.0, 1.0)?)?;
        }
        ppl::sample("after", Normal::new(0.0, 1.0)?)
    })?;
    for i in 0..3 {
        let f = &tr.get(&format!("z_{i}")).unwrap().cond_indep_stack;
        assert_eq!((f.len(), f[0].name.as_str(), f[0].counter), (1, "steps", i));
    }
    assert!(tr.get("after").unwrap().cond_indep_stack.is_empty());
    Ok(())
}

#[test]
fn deterministic_and_param_sites_inside_plates_record_their_frames() -> Result<()> {
    let store = ParamStore::new();
    let (_, tr) = store.scope(|| {
        handlers::trace(|| {
            ppl::plate("outer", 2, |_| {
                ppl::seq_plate("s", 1, |_| {
                    ppl::deterministic("d", &t(1.0))?;
                    ppl::param("w", 0.0)
                })
            })
        })
    })?;
    for name in ["d", "w"] {
        let frames: Vec<&str> = tr.get(name).unwrap().cond_indep_stack.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(frames, ["outer", "s"], "{name}");
    }
    Ok(())
}

#[test]
fn a_subsampled_plate_observing_the_full_data_says_what_to_do() {
    let data = Tensor::zeros(100, DType::F32, &Device::Cpu).unwrap();
    let opts = PlateOptions { subsample_size: Some(10), ..Default::default() };
    let err = handlers::seed(0, || ppl::plate_with("data", 100, opts, |_| ppl::observe("x", Normal::new(0.0, 1.0)?, &data)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("plate `data`") && err.contains("subsample size 10") && err.contains("index_select(&idx"),
        "{err}"
    );
    // The same mistake through the distribution's parameters.
    let loc = Tensor::zeros(100, DType::F32, &Device::Cpu).unwrap();
    let opts = PlateOptions { subsample_size: Some(10), ..Default::default() };
    let err = handlers::seed(0, || ppl::plate_with("data", 100, opts, |_| ppl::sample("z", Normal::new(&loc, 1.0)?)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("plate `data`") && err.contains("subsample size 10") && err.contains("index_select"), "{err}");
}

/// Converts observed values to F64 in `process`, as MCMC does.
struct ToF64;

impl Handler for ToF64 {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if let Some(v) = &msg.value {
            msg.value = Some(v.to_dtype(DType::F64)?);
        }
        Ok(())
    }
}

#[test]
fn a_handler_may_convert_an_observation_before_the_dtype_check() -> Result<()> {
    let _g = ppl::defaults::set_default_dtype(DType::F64);
    let obs = t(0.5); // F32, the distribution is F64
    let (_, tr) = handlers::trace(|| handlers::with_handler(ToF64, || ppl::observe("x", Normal::new(0.0, 1.0)?, &obs)).0)?;
    assert!((scalar(&tr.log_prob_sum()?) - normal_lp(0.5, 0.0, 1.0)).abs() < 1e-9);
    let err = ppl::observe("x", Normal::new(0.0, 1.0)?, &obs).unwrap_err().to_string();
    assert!(err.contains("site `x`") && err.contains("F32") && err.contains("F64"), "{err}");
    Ok(())
}

#[test]
fn log_prob_sum_of_an_empty_trace_is_a_zero_scalar_and_unscaled_log_prob_ignores_scale() -> Result<()> {
    let _g = ppl::defaults::set_default_dtype(DType::F64);
    let zero = Trace::new().log_prob_sum()?;
    assert_eq!((zero.dims().len(), zero.dtype(), zero.to_scalar::<f64>()?), (0, DType::F64, 0.0));
    let xs = Tensor::new(&[0.1f64, 2.0], &Device::Cpu)?;
    let keep = Tensor::new(&[1u8, 0], &Device::Cpu)?;
    let (_, tr) = handlers::trace(|| handlers::scale(3.0, || handlers::mask(&keep, || ppl::plate("n", 2, |_| ppl::observe("x", Normal::new(0.0, 1.0)?, &xs)))))?;
    let site = tr.get("x").unwrap();
    let close = |got: Vec<f64>, want: [f64; 2]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12);
    assert!(close(vec1(site.log_prob_unscaled()?.unwrap()), [normal_lp(0.1, 0.0, 1.0), 0.0]));
    assert!(close(vec1(site.log_prob()?.unwrap()), [3.0 * normal_lp(0.1, 0.0, 1.0), 0.0]));
    Ok(())
}
