//! Sequential enumeration (`enumerate = sequential`) in `TraceEnumElbo`: guide-side (one run per
//! joint configuration, weighted by q), model-side (log-sum-exp over runs), against losses computed
//! by hand in f64, finite-difference gradients, parallel enumeration, an exact posterior fitted by
//! Svi, and the errors (vectorized plates, too many runs, other inference).

use ppl::handlers::{seed, trace};
use ppl::infer::{Bound, Elbo, ElboEstimate, Layout, infer_discrete, DiscreteMode};
use ppl::prelude::*;
use ppl::{Enumerate, InferConfig, observe, plate, sample, sample_with, seq_plate};
use std::cell::Cell;

fn how(e: Enumerate) -> SampleOptions {
    SampleOptions::new().infer(InferConfig::new().enumerate(e))
}

fn sequential() -> SampleOptions {
    how(Enumerate::Sequential)
}

fn log_normal(x: f64, loc: f64, scale: f64) -> f64 {
    -0.5 * ((x - loc) / scale).powi(2) - scale.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

fn lse(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn log_softmax(l: &[f64]) -> Vec<f64> {
    let z = lse(l);
    l.iter().map(|x| x - z).collect()
}

fn estimate(elbo: &mut TraceEnumElbo, model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
    ParamStore::new().scope(|| seed(0, || elbo.estimate(model, guide)))
}

/// The site's value as an index.
fn index(z: &Tensor) -> Result<usize> {
    Ok(z.to_dtype(DType::F64)?.to_scalar::<f64>()? as usize)
}

const X: [f64; 4] = [0.3, -0.2, 1.1, 0.6];
const MU: [f64; 3] = [-0.3, 0.4, 1.2];
const PI: [f64; 3] = [0.2, 0.5, 0.3];

/// z ~ Categorical(PI), x_i ~ N(MU[z], 1) in a plate of 4; `z` enumerated as `opts` asks.
fn mixture_model<'a>(dev: &'a Device, opts: fn() -> SampleOptions) -> impl Fn() -> Result<()> + 'a {
    move || {
        let z = sample_with("z", Categorical::new(&Tensor::new(&PI, dev)?)?, opts())?;
        let loc = Tensor::new(&MU, dev)?.index_select(&z.flatten_all()?, 0)?;
        let loc = loc.reshape(z.dims())?;
        plate("data", 4, |_| observe("x", Normal::new(&loc, 1.0)?, &Tensor::new(&X, dev)?).map(|_| ()))
    }
}

/// log p(z) + Σ_i log p(x_i | z), by hand.
fn log_joint(z: usize) -> f64 {
    PI[z].ln() + X.iter().map(|&x| log_normal(x, MU[z], 1.0)).sum::<f64>()
}

/// The guide q(z) = Categorical(softmax(logits)), z sequential; the model's z replays it.
/// Loss and gradient against −Σ_z q(z) [log p(x, z) − log q(z)] and central finite differences.
#[test]
fn guide_sequential_site_gives_exact_expectation_and_its_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let l0 = [0.3, -0.4, 0.8];
    let logits = Var::new(&l0, &dev)?;
    let runs = Cell::new(0);
    let model = mixture_model(&dev, SampleOptions::new);
    let guide = || -> Result<()> {
        runs.set(runs.get() + 1);
        sample_with("z", Categorical::from_logits(logits.as_tensor())?, sequential()).map(|_| ())
    };
    let hand = |l: &[f64]| -> f64 {
        let lq = log_softmax(l);
        -(0..3).map(|z| lq[z].exp() * (log_joint(z) - lq[z])).sum::<f64>()
    };
    let mut elbo = TraceEnumElbo::new().max_plate_nesting(1);
    let est = estimate(&mut elbo, &model, &guide)?;
    assert_eq!(runs.get(), 3, "one guide run per value of z");
    let want = hand(&l0);
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    let s = est.surrogate.to_scalar::<f64>()?;
    assert!((s - want).abs() < 1e-9 * want.abs(), "surrogate {s} vs {want}");
    let g: Vec<f64> = est.surrogate.backward()?.get(logits.as_tensor()).unwrap().to_vec1()?;
    let h = 1e-5;
    for k in 0..3 {
        let (mut up, mut down) = (l0, l0);
        up[k] += h;
        down[k] -= h;
        let fd = (hand(&up) - hand(&down)) / (2.0 * h);
        assert!((g[k] - fd).abs() < 1e-6, "d/dlogits[{k}]: {} vs finite differences {fd}", g[k]);
    }
    Ok(())
}

/// Two sequential guide sites, the second's support size (a + 2) and probabilities depending on
/// the first: 2 + 3 + 4 = 9 runs, and the loss of the 9 joint configurations by hand.
#[test]
fn dependent_sequential_sites_run_once_per_joint_configuration() -> Result<()> {
    let dev = Device::Cpu;
    let x = 1.7;
    let qa = [0.2f64, 0.3, 0.5];
    let qb = |a: usize| -> Vec<f64> { (0..a + 2).map(|b| (1.0 + b as f64 + a as f64).ln() * 0.7).collect() };
    let pa = [0.4f64, 0.4, 0.2];
    let pb = |a: usize| -> Vec<f64> { (0..a + 2).map(|b| 0.3 * (b as f64) - 0.2 * a as f64).collect() };
    let runs = Cell::new(0);
    let seen = std::cell::RefCell::new(Vec::new());
    let guide = || -> Result<()> {
        runs.set(runs.get() + 1);
        let a = sample_with("a", Categorical::new(&Tensor::new(&qa, &dev)?)?, sequential())?;
        let ai = index(&a)?;
        let b = sample_with("b", Categorical::from_logits(&Tensor::new(qb(ai).as_slice(), &dev)?)?, sequential())?;
        seen.borrow_mut().push((ai, index(&b)?));
        Ok(())
    };
    let model = || -> Result<()> {
        let a = sample("a", Categorical::new(&Tensor::new(&pa, &dev)?)?)?;
        let ai = index(&a)?;
        let b = sample("b", Categorical::from_logits(&Tensor::new(pb(ai).as_slice(), &dev)?)?)?;
        let loc = (a.to_dtype(DType::F64)? + (b.to_dtype(DType::F64)? * 0.5)?)?;
        observe("x", Normal::new(&loc, 1.0)?, &Tensor::new(x, &dev)?).map(|_| ())
    };
    let est = estimate(&mut TraceEnumElbo::new().max_plate_nesting(0), &model, &guide)?;
    assert_eq!(runs.get(), 9, "one guide run per joint configuration");
    let mut configs = seen.borrow().clone();
    configs.sort_unstable();
    let all: Vec<(usize, usize)> = (0..3).flat_map(|a| (0..a + 2).map(move |b| (a, b))).collect();
    assert_eq!(configs, all);
    let mut want = 0.0;
    for (a, b) in all {
        let lq = qa[a].ln() + log_softmax(&qb(a))[b];
        let lp = pa[a].ln() + log_softmax(&pb(a))[b] + log_normal(x, a as f64 + 0.5 * b as f64, 1.0);
        want -= lq.exp() * (lp - lq);
    }
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

/// A model-side sequential z (no guide): the loss is −log Σ_z p(x, z), by hand, and equals the
/// same model with `enumerate = parallel`; the model runs once per value.
#[test]
fn model_sequential_site_sums_out_like_parallel() -> Result<()> {
    let dev = Device::Cpu;
    let guide = || -> Result<()> { Ok(()) };
    let runs = Cell::new(0);
    let inner = mixture_model(&dev, sequential);
    let model = || -> Result<()> {
        runs.set(runs.get() + 1);
        inner()
    };
    let est = estimate(&mut TraceEnumElbo::new().max_plate_nesting(1), &model, &guide)?;
    assert_eq!(runs.get(), 3);
    let want = -lse(&(0..3).map(log_joint).collect::<Vec<_>>());
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    let parallel = mixture_model(&dev, || how(Enumerate::Parallel));
    let par = estimate(&mut TraceEnumElbo::new(), &parallel, &guide)?;
    assert!((est.loss - par.loss).abs() < 1e-9 * want.abs(), "{} vs parallel {}", est.loss, par.loss);
    Ok(())
}

/// A model-side sequential z depending on a parallel-enumerated c (its distribution carries c's
/// enum dim): one model run per value of z, c summed out inside each; the loss is
/// −log Σ_c Σ_z p(c) p(z | c) N(x | c + 2z, 1) by hand and equals the all-parallel model's.
#[test]
fn model_sequential_site_may_depend_on_parallel_ones() -> Result<()> {
    let dev = Device::Cpu;
    let x = 1.4;
    let (pc, pz) = ([0.3f64, 0.7], [0.2f64, 0.9]);
    let make = |how_z: Enumerate| {
        let dev = &dev;
        move || -> Result<()> {
            let c = sample_with("c", Categorical::new(&Tensor::new(&pc, dev)?)?, how(Enumerate::Parallel))?;
            let p = Tensor::new(&pz, dev)?.index_select(&c.flatten_all()?, 0)?.reshape(c.dims())?;
            let z = sample_with("z", Bernoulli::new(&p)?, how(how_z))?;
            let loc = c.to_dtype(DType::F64)?.broadcast_add(&(z * 2.0)?)?;
            observe("x", Normal::new(&loc, 1.0)?, &Tensor::new(x, dev)?).map(|_| ())
        }
    };
    let guide = || -> Result<()> { Ok(()) };
    let seq = estimate(&mut TraceEnumElbo::new(), &make(Enumerate::Sequential), &guide)?;
    let par = estimate(&mut TraceEnumElbo::new(), &make(Enumerate::Parallel), &guide)?;
    let mut terms = Vec::new();
    for c in 0..2 {
        for z in 0..2 {
            let lz = if z == 1 { pz[c].ln() } else { (1.0 - pz[c]).ln() };
            terms.push(pc[c].ln() + lz + log_normal(x, c as f64 + 2.0 * z as f64, 1.0));
        }
    }
    let want = -lse(&terms);
    assert!((seq.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", seq.loss);
    assert!((par.loss - want).abs() < 1e-9 * want.abs(), "parallel {} vs {want}", par.loss);
    Ok(())
}

/// Guide and model sequential sites together, with a reparameterized guide site: per value of the
/// guide's `g`, the model runs once per value of its `c` against the same guide draw of `w`
/// (replayed), and the loss is −Σ_g q(g) [log Σ_c p(x, w_g, g, c) − log q(w_g) − log q(g)].
#[test]
fn guide_and_model_sequential_sites_nest_with_one_guide_draw() -> Result<()> {
    let dev = Device::Cpu;
    let x = 0.9;
    let qg = [0.35f64, 0.65];
    let pc = [0.1f64, 0.6, 0.3];
    let draws = std::cell::RefCell::new(Vec::new());
    let guide = || -> Result<()> {
        let w = sample("w", Normal::new(Tensor::new(0.4f64, &dev)?, 0.7)?)?;
        let g = sample_with("g", Bernoulli::new(Tensor::new(qg[1], &dev)?)?, sequential())?;
        draws.borrow_mut().push((index(&g)?, w.to_scalar::<f64>()?));
        Ok(())
    };
    let model = || -> Result<()> {
        let w = sample("w", Normal::new(Tensor::new(0.0f64, &dev)?, 1.0)?)?;
        let g = sample("g", Bernoulli::new(Tensor::new(0.5f64, &dev)?)?)?;
        let c = sample_with("c", Categorical::new(&Tensor::new(&pc, &dev)?)?, sequential())?;
        let loc = ((w + (g * 2.0)?)? + c.to_dtype(DType::F64)?)?;
        observe("x", Normal::new(&loc, 1.0)?, &Tensor::new(x, &dev)?).map(|_| ())
    };
    let est = estimate(&mut TraceEnumElbo::new().max_plate_nesting(0), &model, &guide)?;
    // 2 guide configurations × 3 model configurations, one guide run each; within a guide
    // configuration every run sees the first run's draw of `w`.
    let draws = draws.borrow().clone();
    assert_eq!(draws.len(), 6, "{draws:?}");
    let mut w = [f64::NAN; 2];
    for chunk in draws.chunks(3) {
        let (g, wg) = chunk[0];
        assert!(chunk.iter().all(|&d| d == (g, wg)), "{draws:?}");
        w[g] = wg;
    }
    assert!(w.iter().all(|v| v.is_finite()) && w[0] != w[1], "{draws:?}");
    let mut want = 0.0;
    for g in 0..2 {
        let terms: Vec<f64> = (0..3).map(|c| pc[c].ln() + log_normal(x, w[g] + 2.0 * g as f64 + c as f64, 1.0)).collect();
        let lp = log_normal(w[g], 0.0, 1.0) + 0.5f64.ln() + lse(&terms);
        let lq = log_normal(w[g], 0.4, 0.7) + qg[g].ln();
        want -= qg[g] * (lp - lq);
    }
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

#[ppl::model]
fn mixture(x: &Tensor) -> Result<()> {
    let z = sample!("z", Categorical::new(&Tensor::new(&PI, x.device())?)?);
    let loc = Tensor::new(&MU, x.device())?.index_select(&z.flatten_all()?, 0)?.reshape(())?;
    plate!("data", 4, |_| {
        sample!("x", Normal::new(&loc, 1.0)?, obs = x);
        Ok(())
    })
}

#[ppl::guide(model = mixture)]
fn mixture_guide(x: &Tensor) -> Result<()> {
    let logits = param!("logits", Tensor::zeros(3, DType::F64, x.device())?);
    sample!("z", Categorical::from_logits(&logits)?, enumerate = sequential);
    Ok(())
}

/// Svi with a sequential guide q(z) = Categorical(softmax(logits)) (written with the macros,
/// `enumerate = sequential`) over the mixture model: the loss is exact (no sampling), so q
/// converges to the posterior p(z | x) computed by hand, and the loss to −log p(x).
#[test]
fn svi_fits_the_exact_posterior_with_a_sequential_guide() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::new(&X, &dev)?;
    let mut svi = Svi::new(mixture, mixture_guide, Adam::new(0.1), TraceEnumElbo::new()).seed(0);
    let losses = svi.run(&x, 300)?;
    let logits: Vec<f64> = svi.params().get("logits")?.unwrap().to_vec1()?;
    let q: Vec<f64> = log_softmax(&logits).iter().map(|l| l.exp()).collect();
    let joint: Vec<f64> = (0..3).map(log_joint).collect();
    let evidence = lse(&joint);
    let post: Vec<f64> = joint.iter().map(|l| (l - evidence).exp()).collect();
    for k in 0..3 {
        assert!((q[k] - post[k]).abs() < 1e-3, "q {q:?} vs posterior {post:?}");
    }
    let last = *losses.last().unwrap();
    assert!((last + evidence).abs() < 1e-4, "final loss {last} vs -log p(x) {}", -evidence);
    Ok(())
}

/// Errors: a sequential site (guide or model) in a vectorized plate names the site and the plate
/// (in a sequential plate it is fine); so does a scaled model site; too many runs names the sites; NUTS's layout and
/// `infer_discrete` name the site and say to use `parallel`.
#[test]
fn sequential_enumeration_errors_name_sites_and_plates() -> Result<()> {
    let dev = Device::Cpu;
    let empty = || -> Result<()> { Ok(()) };
    let in_plate = || -> Result<()> {
        plate("rows", 3, |_| sample_with("z", Bernoulli::new(0.5)?, sequential()).map(|_| ()))
    };
    let e = estimate(&mut TraceEnumElbo::new(), &in_plate, &empty).unwrap_err().to_string();
    assert!(e.contains("site `z`") && e.contains("plate `rows`") && e.contains("parallel"), "{e}");
    let model = || -> Result<()> { plate("rows", 3, |_| sample("z", Bernoulli::new(0.5)?).map(|_| ())) };
    let e = estimate(&mut TraceEnumElbo::new(), &model, &in_plate).unwrap_err().to_string();
    assert!(e.contains("site `z`") && e.contains("plate `rows`") && e.contains("guide"), "{e}");
    // A guide site whose draw has several elements outside any plate.
    let batched = || sample_with("z", Bernoulli::new(Tensor::new(&[0.5f64, 0.2], &dev)?)?, sequential()).map(|_| ());
    let e = estimate(&mut TraceEnumElbo::new(), &empty, &batched).unwrap_err().to_string();
    assert!(e.contains("site `z`") && e.contains("batch shape [2]"), "{e}");
    // A scaled model site would be summed with its scale inside the log-sum-exp.
    let scaled = || ppl::handlers::scale(2.0, || sample_with("z", Bernoulli::new(0.5)?, sequential()).map(|_| ()));
    let e = estimate(&mut TraceEnumElbo::new(), &scaled, &empty).unwrap_err().to_string();
    assert!(e.contains("site `z`") && e.contains("scaled by 2"), "{e}");
    // A sequential plate is fine: 2 × 2 runs of the model, −log p(x) = −Σ_i log Σ_z p(z) p(x_i | z).
    let xs = [0.2f64, -0.7];
    let seq = || -> Result<()> {
        seq_plate("steps", 2, |i| {
            let z = sample_with(format!("z_{i}"), Bernoulli::new(Tensor::new(0.3f64, &dev)?)?, sequential())?;
            observe(format!("x_{i}"), Normal::new(&z, 1.0)?, &Tensor::new(xs[i], &dev)?).map(|_| ())
        })
        .map(|_| ())
    };
    let est = estimate(&mut TraceEnumElbo::new(), &seq, &empty)?;
    let want: f64 =
        -xs.iter().map(|&x| lse(&[0.7f64.ln() + log_normal(x, 0.0, 1.0), 0.3f64.ln() + log_normal(x, 1.0, 1.0)])).sum::<f64>();
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    // Three sites of 4 values: 64 runs, more than 10.
    let many = || -> Result<()> {
        for name in ["a", "b", "c"] {
            sample_with(name, Categorical::new(&Tensor::new(&[0.25f64; 4], &dev)?)?, sequential())?;
        }
        Ok(())
    };
    let e = estimate(&mut TraceEnumElbo::new().max_sequential_runs(10), &many, &empty).unwrap_err().to_string();
    assert!(e.contains("more than 10 runs") && e.contains("`a` (4 values)") && e.contains("`c` (4 values)"), "{e}");
    assert!(estimate(&mut TraceEnumElbo::new().max_sequential_runs(64), &many, &empty).is_ok());
    // Other inference: MCMC's layout and infer_discrete.
    let (_, tr) = seed(0, || trace(model_with_sequential_z))?;
    let e = Layout::from_trace(&tr).unwrap_err().to_string();
    assert!(e.contains("site `z`") && e.contains("enumerate = parallel"), "{e}");
    let e = infer_discrete(&|_: &()| model_with_sequential_z(), &(), DiscreteMode::Map).unwrap_err().to_string();
    assert!(e.contains("site `z`") && e.contains("enumerate = parallel"), "{e}");
    Ok(())
}

fn model_with_sequential_z() -> Result<()> {
    let z = sample_with("z", Bernoulli::new(0.5)?, sequential())?;
    observe("x", Normal::new(&z, 1.0)?, &Tensor::new(0.5f32, &Device::Cpu)?).map(|_| ())
}

/// A sequential guide site `g` beside a score-function site `w` (drawn afresh per value of g,
/// no baseline): the surrogate's gradients are, per the recorded draws, d/da = −Σ_g dq(g)/da · e_g
/// (the weight's gradient, not detached) and d/db = −Σ_g q(g) (w_g − σ(b)) (e_g − 1) (the score
/// term weighted by the detached q(g), plus the pathwise −log q(w)), with e_g the run's ELBO.
#[test]
fn score_function_terms_are_weighted_by_the_configuration_probability() -> Result<()> {
    let dev = Device::Cpu;
    let (a0, b0, x) = (0.4f64, -0.3f64, 1.3f64);
    let a = Var::new(a0, &dev)?;
    let b = Var::new(b0, &dev)?;
    let draws = std::cell::RefCell::new(Vec::new());
    let guide = || -> Result<()> {
        let g = sample_with("g", Bernoulli::from_logits(a.as_tensor())?, sequential())?;
        let w = sample("w", Bernoulli::from_logits(b.as_tensor())?)?;
        draws.borrow_mut().push((index(&g)?, w.to_scalar::<f64>()?));
        Ok(())
    };
    let model = || -> Result<()> {
        let g = sample("g", Bernoulli::new(Tensor::new(0.5f64, &dev)?)?)?;
        let w = sample("w", Bernoulli::new(Tensor::new(0.4f64, &dev)?)?)?;
        observe("x", Normal::new(&(g + (w * 2.0)?)?, 1.0)?, &Tensor::new(x, &dev)?).map(|_| ())
    };
    let mut elbo = TraceEnumElbo::new().max_plate_nesting(0).baseline("w", Baseline::None);
    let est = estimate(&mut elbo, &model, &guide)?;
    let draws = draws.borrow().clone();
    assert_eq!(draws.iter().map(|d| d.0).collect::<Vec<_>>(), vec![0, 1]);
    let sig = |t: f64| 1.0 / (1.0 + (-t).exp());
    let bern = |v: f64, p: f64| if v == 1.0 { p.ln() } else { (1.0 - p).ln() };
    let (sa, sb) = (sig(a0), sig(b0));
    let (mut loss, mut ga, mut gb) = (0.0, 0.0, 0.0);
    for &(g, w) in &draws {
        let gf = g as f64;
        let e = 0.5f64.ln() + bern(w, 0.4) + log_normal(x, gf + 2.0 * w, 1.0) - bern(gf, sa) - bern(w, sb);
        let q = if g == 1 { sa } else { 1.0 - sa };
        let dq = if g == 1 { sa * (1.0 - sa) } else { -sa * (1.0 - sa) };
        loss -= q * e;
        ga -= dq * e;
        gb -= q * (w - sb) * (e - 1.0);
    }
    assert!((est.loss - loss).abs() < 1e-9 * loss.abs(), "{} vs {loss}", est.loss);
    let grads = est.surrogate.backward()?;
    let got_a = grads.get(a.as_tensor()).unwrap().to_scalar::<f64>()?;
    let got_b = grads.get(b.as_tensor()).unwrap().to_scalar::<f64>()?;
    assert!((got_a - ga).abs() < 1e-9 && (got_b - gb).abs() < 1e-9, "({got_a}, {got_b}) vs ({ga}, {gb})");
    Ok(())
}

/// Guide-side parallel enumeration beside model-side sequential sites (refused: each run's ELBO
/// is already an expectation over the guide's sites), and guide-side sequential then parallel.
#[test]
fn guide_parallel_model_sequential() -> Result<()> {
    let dev = Device::Cpu;
    let x = 0.8;
    let (qa, pa, pc) = (0.3f64, 0.6f64, [0.25f64, 0.75]);
    for guide_how in [Enumerate::Parallel, Enumerate::Sequential] {
        let guide = || -> Result<()> { sample_with("a", Bernoulli::new(Tensor::new(qa, &dev)?)?, how(guide_how)).map(|_| ()) };
        let model = || -> Result<()> {
            let a = sample("a", Bernoulli::new(Tensor::new(pa, &dev)?)?)?;
            let c = sample_with("c", Categorical::new(&Tensor::new(&pc, &dev)?)?, how(Enumerate::Sequential))?;
            let loc = a.broadcast_add(&c.to_dtype(DType::F64)?)?;
            observe("x", Normal::new(&loc, 1.0)?, &Tensor::new(x, &dev)?).map(|_| ())
        };
        let mut elbo = TraceEnumElbo::new().max_plate_nesting(0);
        let est = ParamStore::new().scope(|| seed(0, || elbo.estimate(&model, &guide)));
        if guide_how == Enumerate::Parallel {
            let e = est.unwrap_err().to_string();
            assert!(e.contains("`c`") && e.contains("`a`"), "{e}");
            continue;
        }
        let est = est?;
        let mut want = 0.0;
        for a in 0..2 {
            let q = if a == 1 { qa } else { 1.0 - qa };
            let p = if a == 1 { pa } else { 1.0 - pa };
            let terms: Vec<f64> = (0..2).map(|c| pc[c].ln() + log_normal(x, (a + c) as f64, 1.0)).collect();
            want -= q * (p.ln() + lse(&terms) - q.ln());
        }
        assert!((est.loss - want).abs() < 1e-9, "{guide_how:?}: {} vs {want}", est.loss);
    }
    Ok(())
}

#[test]
fn guide_sequential_then_parallel() -> Result<()> {
    let dev = Device::Cpu;
    let x = -0.4;
    let (qg, qa, pg, pa) = (0.3f64, [0.2f64, 0.7], 0.45f64, [0.6f64, 0.1]);
    let guide = || -> Result<()> {
        let g = sample_with("g", Bernoulli::new(Tensor::new(qg, &dev)?)?, how(Enumerate::Sequential))?;
        let gi = g.to_scalar::<f64>()? as usize;
        sample_with("a", Bernoulli::new(Tensor::new(qa[gi], &dev)?)?, how(Enumerate::Parallel)).map(|_| ())
    };
    let model = || -> Result<()> {
        let g = sample("g", Bernoulli::new(Tensor::new(pg, &dev)?)?)?;
        let gi = g.to_scalar::<f64>()? as usize;
        let a = sample("a", Bernoulli::new(Tensor::new(pa[gi], &dev)?)?)?;
        let loc = (a * 2.0)?.broadcast_add(&g)?;
        observe("x", Normal::new(&loc, 1.0)?, &Tensor::new(x, &dev)?).map(|_| ())
    };
    let b = |v: usize, p: f64| if v == 1 { p } else { 1.0 - p };
    let mut elbo = TraceEnumElbo::new().max_plate_nesting(0);
    let est = ParamStore::new().scope(|| seed(0, || elbo.estimate(&model, &guide)))?;
    let mut want = 0.0;
    for g in 0..2 {
        for a in 0..2 {
            let q = b(g, qg) * b(a, qa[g]);
            let lp = b(g, pg).ln() + b(a, pa[g]).ln() + log_normal(x, (2 * a + g) as f64, 1.0);
            want -= q * (lp - q.ln());
        }
    }
    assert!((est.loss - want).abs() < 1e-9, "{} vs {want}", est.loss);
    Ok(())
}
