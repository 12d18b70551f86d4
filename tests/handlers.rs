//! Handler semantics, after Pyro's poutine tests: each handler alone, composed, and the stack's
//! behaviour on errors and panics.

use ppl::dist::{Bernoulli, Normal};
use ppl::handlers::{self, Block, Handler, Lift, data};
use ppl::prelude::*;
use ppl::{Message, SiteKind};
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
    let got = scalar(&tr.log_prob_sum()?.unwrap());
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
    let lp = scalar(Trace::site_log_prob(model_tr.get("z").unwrap())?.unwrap());
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
    let a = scalar(&plain.log_prob_sum()?.unwrap());
    let b = scalar(&scaled.log_prob_sum()?.unwrap());
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
    let lp = vec1(Trace::site_log_prob(tr.get("x").unwrap())?.unwrap());
    let want = [normal_lp(0.1, 0.0, 1.0), 0.0, normal_lp(2.0, 0.0, 1.0), 0.0];
    for (g, w) in lp.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{lp:?} vs {want:?}");
    }
    // The same through a site-level mask and the distribution's own `.mask()`.
    let (_, tr2) = handlers::trace(|| {
        ppl::sample_with("x", Normal::new(0.0, 1.0)?.expand(&[4])?, SampleOptions { obs: Some(xs.clone()), mask: Some(m.clone()), ..Default::default() })
    })?;
    assert_eq!(vec1(Trace::site_log_prob(tr2.get("x").unwrap())?.unwrap()), lp);
    let (_, tr3) = handlers::trace(|| ppl::observe("x", Normal::new(0.0, 1.0)?.expand(&[4])?.mask(&m)?, &xs))?;
    assert_eq!(vec1(Trace::site_log_prob(tr3.get("x").unwrap())?.unwrap()), lp);
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
    assert_eq!(Trace::site_log_prob(z)?.unwrap().dims(), &[3, 4]);
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
    let got = scalar(&tr.log_prob_sum()?.unwrap());
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
    assert!(Trace::site_log_prob(zs)?.is_none());
    // Only x contributes, with z = 2 downstream.
    let got = scalar(&tr.log_prob_sum()?.unwrap());
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
    let cfg = |m: &Message| (m.name == "c").then(|| ppl::InferConfig { enumerate: Some(ppl::Enumerate::Parallel), ..Default::default() });
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
    assert_eq!(scalar(&tr.log_prob_sum()?.unwrap()), -1.5);
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
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[2].starts_with("x") && lines[2].contains("[3, 4] | []") && lines[2].contains("cols[4]@-1 rows[3]@-2"), "{table}");
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
        if i == 2 {
            break;
        }
        assert_eq!(ppl::runtime::stack_depth(), depth + 1);
    }
    assert_eq!(ppl::runtime::stack_depth(), depth);
    // Advancing the iterator inside another handler's scope removes only its own frame.
    let mut it = ppl::seq_plate_iter("outer", 3)?;
    it.next();
    let (_, tr) = handlers::trace(|| {
        it.next();
        ppl::sample("w", Normal::new(0.0, 1.0)?)
    })?;
    assert_eq!(tr.get("w").unwrap().cond_indep_stack[0].counter, 1);
    drop(it);
    assert_eq!(ppl::runtime::stack_depth(), depth);
    Ok(())
}
