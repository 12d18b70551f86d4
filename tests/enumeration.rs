//! Discrete enumeration: `TraceEnumElbo` against marginal likelihoods computed by hand and by the
//! forward algorithm, `markov` dim recycling, `infer_discrete` against brute force and exact
//! marginals, nested plates, subsampling, errors, and NUTS with enumerated assignments.

use ppl::handlers::seed;
use ppl::infer::{Bound, Elbo, config_enumerate, infer_discrete, DiscreteMode};
use ppl::prelude::*;
use ppl::{markov, observe, plate, plate_with, sample, sample_with, Enumerate, InferConfig};
use std::cell::Cell;

pub(crate) fn enumerated() -> SampleOptions {
    SampleOptions::new().infer(InferConfig::new().enumerate(Enumerate::Parallel))
}

pub(crate) fn log_normal(x: f64, loc: f64, scale: f64) -> f64 {
    -0.5 * ((x - loc) / scale).powi(2) - scale.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

pub(crate) fn lse(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `locs[z]`, shaped like `z` (an enumerated index tensor of any shape).
pub(crate) fn take(locs: &Tensor, z: &Tensor) -> Result<Tensor> {
    Ok(locs.index_select(&z.flatten_all()?, 0)?.reshape(z.dims())?)
}

/// Rows `probs[z]`, shaped `z.dims() ++ [k]`.
pub(crate) fn rows(probs: &Tensor, z: &Tensor) -> Result<Tensor> {
    let mut shape = z.dims().to_vec();
    shape.push(probs.dim(1)?);
    Ok(probs.index_select(&z.flatten_all()?, 0)?.reshape(shape)?)
}

pub(crate) fn estimate(elbo: &mut TraceEnumElbo, model: Bound<'_>) -> Result<ppl::infer::ElboEstimate> {
    let guide = || Ok(());
    ParamStore::new().scope(|| elbo.estimate(model, &guide))
}

const GMM_DATA: [f64; 5] = [0.0, 1.0, 10.0, 11.0, 12.0];
const W: [f64; 2] = [0.3, 0.7];
const SCALE: f64 = 1.5;

/// Pyro's GMM tutorial data, K = 2, fixed weights and scale, locs a `Var`: the loss is
/// `-Σ_i log Σ_k w_k N(x_i | loc_k, σ)` and its gradient `-Σ_i r_ik (x_i - loc_k) / σ²`
/// (responsibilities `r`), both computed here by hand.
#[test]
fn gmm_loss_is_minus_log_marginal_likelihood() -> Result<()> {
    let dev = Device::Cpu;
    let locs_v = [0.5, 10.0];
    let locs = Var::new(&locs_v, &dev)?;
    let data = Tensor::new(&GMM_DATA, &dev)?;
    let model = || -> Result<()> {
        let w = Tensor::new(&W, &dev)?;
        plate("data", 5, |_| {
            let z = sample_with("z", Categorical::new(&w)?, enumerated())?;
            observe("x", Normal::new(&take(locs.as_tensor(), &z)?, SCALE)?, &data).map(|_| ())
        })
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let mut want = 0.0;
    let mut grad = [0.0; 2];
    for &x in &GMM_DATA {
        let terms: Vec<f64> = (0..2).map(|k| W[k].ln() + log_normal(x, locs_v[k], SCALE)).collect();
        let l = lse(&terms);
        want -= l;
        for k in 0..2 {
            grad[k] -= (terms[k] - l).exp() * (x - locs_v[k]) / (SCALE * SCALE);
        }
    }
    assert!((est.loss - want).abs() < 1e-9 * want.abs().max(1.0), "{} vs {want}", est.loss);
    let g: Vec<f64> = est.surrogate.backward()?.get(locs.as_tensor()).unwrap().to_vec1()?;
    for k in 0..2 {
        assert!((g[k] - grad[k]).abs() < 1e-9, "{g:?} vs {grad:?}");
    }
    // The assignment is enumerated at dim -2, left of the data plate.
    assert_eq!(est.model_trace.get("z").unwrap().infer.enum_dim, Some(-2));
    Ok(())
}

/// A discrete site outside a plate whose inner sites depend on it: one assignment for all data,
/// `-log Σ_k w_k Π_i N(x_i | loc_k)`, summed after the plate's product.
#[test]
fn global_assignment_is_summed_after_the_plate_product() -> Result<()> {
    let dev = Device::Cpu;
    let locs_v = [0.5, 10.0];
    let data = Tensor::new(&GMM_DATA, &dev)?;
    let model = || -> Result<()> {
        let w = Tensor::new(&W, &dev)?;
        let z = sample_with("z", Categorical::new(&w)?, enumerated())?;
        // Enumerated, `z` has shape [2, 1] (dim -2, left of the plate): it broadcasts as is.
        let loc = take(&Tensor::new(&locs_v, &dev)?, &z)?;
        plate("data", 5, |_| observe("x", Normal::new(&loc, SCALE)?, &data).map(|_| ()))
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let terms: Vec<f64> =
        (0..2).map(|k| W[k].ln() + GMM_DATA.iter().map(|&x| log_normal(x, locs_v[k], SCALE)).sum::<f64>()).collect();
    let want = -lse(&terms);
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

/// A discrete site inside plate `groups` whose observations sit in the nested plate `items`:
/// `-Σ_g log Σ_k w_k Π_n N(x_gn | loc_k)`.
#[test]
#[allow(clippy::needless_range_loop)] // the indices mirror the formula
fn assignment_inside_a_plate_with_observations_in_a_nested_plate() -> Result<()> {
    let dev = Device::Cpu;
    let locs_v = [-1.0, 2.0];
    // x[n][g]: items at dim -2, groups at dim -1.
    let x = [[-1.2, 2.5, 0.4], [-0.7, 1.9, 0.6], [-1.5, 2.2, -0.1], [-0.9, 1.6, 1.2]];
    let data = Tensor::new(&x, &dev)?;
    let model = || -> Result<()> {
        let w = Tensor::new(&W, &dev)?;
        plate("groups", 3, |_| {
            let z = sample_with("z", Categorical::new(&w)?, enumerated())?;
            let loc = take(&Tensor::new(&locs_v, &dev)?, &z)?;
            plate("items", 4, |_| observe("x", Normal::new(&loc, 1.0)?, &data).map(|_| ()))
        })
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    assert_eq!(est.model_trace.get("z").unwrap().infer.enum_dim, Some(-3));
    let mut want = 0.0;
    for g in 0..3 {
        let terms: Vec<f64> =
            (0..2).map(|k| W[k].ln() + (0..4).map(|n| log_normal(x[n][g], locs_v[k], 1.0)).sum::<f64>()).collect();
        want -= lse(&terms);
    }
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

/// With a subsampled plate (2 of 5, explicit indices) the enumerated ELBO averaged over all ten
/// subsets equals the full-data ELBO exactly: each element is in 4 of the 10 subsets and counts
/// 5/2 times in each. A global site outside the plate counts once in every subset.
#[test]
fn subsampled_enumerated_elbo_is_unbiased() -> Result<()> {
    let dev = Device::Cpu;
    let data = Tensor::new(&GMM_DATA, &dev)?;
    let run = |subsample: Option<Vec<u32>>| -> Result<f64> {
        let model = || -> Result<()> {
            let w = Tensor::new(&W, &dev)?;
            let shift = sample("shift", Normal::new(&Tensor::new(0f64, &dev)?, 1.0)?)?;
            let n = subsample.as_ref().map_or(5, |s| s.len());
            let opts = PlateOptions {
                subsample: subsample.as_ref().map(|s| Tensor::new(s.as_slice(), &dev)).transpose()?,
                ..Default::default()
            };
            plate_with("data", 5, opts, |idx| {
                let z = sample_with("z", Categorical::new(&w)?, enumerated())?;
                let loc = take(&Tensor::new(&[0.5, 10.0], &dev)?, &z)?.broadcast_add(&shift)?;
                let x = data.index_select(idx, 0)?;
                assert_eq!(x.dim(0)?, n);
                observe("x", Normal::new(&loc, SCALE)?, &x).map(|_| ())
            })
        };
        // The global latent is fixed through `condition`, so every run sees the same value.
        let fixed = ppl::handlers::data([("shift", Tensor::new(0.3f64, &dev)?)]);
        let conditioned = || ppl::handlers::condition(fixed.clone(), model);
        Ok(estimate(&mut TraceEnumElbo::new(), &conditioned)?.loss)
    };
    let full = run(None)?;
    let mut total = 0.0;
    let mut count = 0;
    for a in 0..5u32 {
        for b in a + 1..5 {
            total += run(Some(vec![a, b]))?;
            count += 1;
        }
    }
    let mean = total / count as f64;
    assert!((mean - full).abs() < 1e-9 * full.abs(), "mean over subsets {mean} vs full {full}");
    // A single subset is not the full value (the test can fail).
    assert!((run(Some(vec![0, 1]))? - full).abs() > 1.0);
    Ok(())
}

const K: usize = 3;
const INIT: [f64; K] = [0.5, 0.3, 0.2];
const TRANS: [[f64; K]; K] = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.15, 0.15, 0.7]];
const MEANS: [f64; K] = [-2.0, 0.0, 2.5];

/// Deterministic observations that visit every state.
fn hmm_data(t: usize) -> Vec<f64> {
    (0..t).map(|i| MEANS[(i / 7) % K] + 0.8 * ((i as f64) * 1.3).sin()).collect()
}

/// The forward algorithm in f64: `log p(y_0..T)`.
fn forward_algorithm(y: &[f64]) -> f64 {
    let mut alpha: Vec<f64> = (0..K).map(|k| INIT[k].ln() + log_normal(y[0], MEANS[k], 1.0)).collect();
    for &yt in &y[1..] {
        alpha = (0..K)
            .map(|j| {
                let terms: Vec<f64> = (0..K).map(|i| alpha[i] + TRANS[i][j].ln()).collect();
                lse(&terms) + log_normal(yt, MEANS[j], 1.0)
            })
            .collect();
    }
    lse(&alpha)
}

fn hmm_model(y: &[f64]) -> impl Fn() -> Result<()> + '_ {
    move || {
        let dev = Device::Cpu;
        let init = Tensor::new(&INIT, &dev)?;
        let trans = Tensor::new(&TRANS, &dev)?;
        let means = Tensor::new(&MEANS, &dev)?;
        let mut x: Option<Tensor> = None;
        markov(y.len(), |t| {
            let probs = match &x {
                None => init.clone(),
                Some(prev) => rows(&trans, prev)?,
            };
            let xt = sample_with(format!("x_{t}"), Categorical::new(&probs)?, enumerated())?;
            observe(format!("y_{t}"), Normal::new(&take(&means, &xt)?, 1.0)?, &Tensor::new(y[t], &dev)?)?;
            x = Some(xt);
            Ok(())
        })?;
        Ok(())
    }
}

pub(crate) fn enum_dims(tr: &Trace) -> std::collections::BTreeSet<isize> {
    tr.nodes().filter_map(|s| s.infer.enum_dim).collect()
}

/// HMM with 3 hidden states: the loss equals minus the forward-algorithm log-likelihood at
/// T = 50 and T = 500, and T = 500 uses no more enum dims than T = 50 (markov recycles them).
#[test]
fn hmm_loss_is_the_forward_algorithm_and_dims_do_not_grow() -> Result<()> {
    let mut dims = Vec::new();
    for t in [50, 500] {
        let y = hmm_data(t);
        let est = estimate(&mut TraceEnumElbo::new(), &hmm_model(&y))?;
        let want = -forward_algorithm(&y);
        assert!((est.loss - want).abs() < 1e-8 * want.abs(), "T={t}: {} vs {want}", est.loss);
        dims.push(enum_dims(&est.model_trace));
    }
    assert_eq!(dims[0].len(), 2, "{:?}", dims[0]);
    assert!(dims[1].len() <= dims[0].len(), "{dims:?}");
    Ok(())
}

/// A small chain (3 ternary states, 4 observations) for `infer_discrete`, and brute force over
/// its 27 joint configurations.
#[allow(clippy::needless_range_loop)] // `t` names the sites too
fn chain_model(y: &[f64]) -> impl Fn(&()) -> Result<()> + '_ {
    move |_| {
        let dev = Device::Cpu;
        let init = Tensor::new(&INIT, &dev)?;
        let trans = Tensor::new(&TRANS, &dev)?;
        let means = Tensor::new(&MEANS, &dev)?;
        let mut x = sample("a_0", Categorical::new(&init)?)?;
        observe("b_0", Normal::new(&take(&means, &x)?, 1.5)?, &Tensor::new(y[0], &dev)?)?;
        for t in 1..y.len() {
            x = sample(format!("a_{t}"), Categorical::new(&rows(&trans, &x)?)?)?;
            observe(format!("b_{t}"), Normal::new(&take(&means, &x)?, 1.5)?, &Tensor::new(y[t], &dev)?)?;
        }
        Ok(())
    }
}

fn brute_force(y: &[f64]) -> Vec<(Vec<usize>, f64)> {
    let n = y.len();
    let mut out = Vec::new();
    for code in 0..K.pow(n as u32) {
        let xs: Vec<usize> = (0..n).map(|i| (code / K.pow(i as u32)) % K).collect();
        let mut lp = INIT[xs[0]].ln() + log_normal(y[0], MEANS[xs[0]], 1.5);
        for t in 1..n {
            lp += TRANS[xs[t - 1]][xs[t]].ln() + log_normal(y[t], MEANS[xs[t]], 1.5);
        }
        out.push((xs, lp));
    }
    out
}

fn decoded(d: &ppl::handlers::Data, n: usize) -> Vec<usize> {
    (0..n).map(|t| d[&format!("a_{t}")].to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap() as usize).collect()
}

/// MAP equals the brute-force argmax; posterior draws match the exact marginals within 4 SE.
#[test]
fn infer_discrete_map_and_samples_match_brute_force() -> Result<()> {
    let y = [-1.0, 0.9, 1.4, -0.3];
    let joint = brute_force(&y);
    let model = config_enumerate(chain_model(&y));
    let map = infer_discrete(&model, &(), DiscreteMode::Map)?;
    let best = joint.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(decoded(&map, 4), best.0);
    // Exact marginals p(a_t = k | b).
    let z = lse(&joint.iter().map(|j| j.1).collect::<Vec<_>>());
    let mut exact = [[0.0; K]; 4];
    for (xs, lp) in &joint {
        for t in 0..4 {
            exact[t][xs[t]] += (lp - z).exp();
        }
    }
    let n = 600;
    let mut counts = [[0usize; K]; 4];
    seed(3, || -> Result<()> {
        for _ in 0..n {
            let d = infer_discrete(&model, &(), DiscreteMode::Sample)?;
            for (t, k) in decoded(&d, 4).into_iter().enumerate() {
                counts[t][k] += 1;
            }
        }
        Ok(())
    })?;
    for t in 0..4 {
        for k in 0..K {
            let p = exact[t][k];
            let se = (p * (1.0 - p) / n as f64).sqrt().max(1e-3);
            let got = counts[t][k] as f64 / n as f64;
            assert!((got - p).abs() < 4.0 * se, "a_{t}={k}: {got} vs exact {p}");
        }
    }
    Ok(())
}

/// Under a plate, `infer_discrete` decodes each element (shape of a draw), against brute force
/// per element.
#[test]
fn infer_discrete_in_a_plate_decodes_each_element() -> Result<()> {
    let dev = Device::Cpu;
    let data = Tensor::new(&GMM_DATA, &dev)?;
    let model = |x: &Tensor| -> Result<()> {
        let w = Tensor::new(&W, x.device())?;
        plate("data", 5, |_| {
            let z = sample("z", Categorical::new(&w)?)?;
            observe("x", Normal::new(&take(&Tensor::new(&[0.5, 10.0], x.device())?, &z)?, SCALE)?, x).map(|_| ())
        })
    };
    let map = infer_discrete(&config_enumerate(model), &data, DiscreteMode::Map)?;
    let z: Vec<u32> = map["z"].to_vec1()?;
    let want: Vec<u32> = GMM_DATA
        .iter()
        .map(|&x| if W[0].ln() + log_normal(x, 0.5, SCALE) > W[1].ln() + log_normal(x, 10.0, SCALE) { 0 } else { 1 })
        .collect();
    assert_eq!(z, want);
    Ok(())
}

/// A latent Poisson that the guide does not sample is an error naming the site; so is one
/// marked for enumeration, and a support larger than `max_support`.
#[test]
fn non_enumerable_and_too_large_sites_are_errors_naming_them() -> Result<()> {
    let dev = Device::Cpu;
    let y = Tensor::new(3f32, &dev)?;
    let poisson = || -> Result<()> {
        let n = sample("count", Poisson::new(2.0)?)?;
        observe("y", Normal::new(&n, 1.0)?, &y).map(|_| ())
    };
    let e = estimate(&mut TraceEnumElbo::new(), &poisson).unwrap_err().to_string();
    assert!(e.contains("site `count`") && e.contains("Poisson") && e.contains("neither enumerated"), "{e}");
    let marked = || -> Result<()> {
        let n = sample_with("count", Poisson::new(2.0)?, enumerated())?;
        observe("y", Normal::new(&n, 1.0)?, &y).map(|_| ())
    };
    let e = estimate(&mut TraceEnumElbo::new(), &marked).unwrap_err().to_string();
    assert!(e.contains("site `count`") && e.contains("no finite support"), "{e}");
    let big = || -> Result<()> {
        sample_with("word", Categorical::from_logits(&Tensor::zeros(10, DType::F32, &dev)?)?, enumerated()).map(|_| ())
    };
    let e = estimate(&mut TraceEnumElbo::new().max_support(8), &big).unwrap_err().to_string();
    assert!(e.contains("site `word`") && e.contains("10 values"), "{e}");
    Ok(())
}

/// A model that nests a plate deeper on a later run than on the first gets an error naming it.
#[test]
fn deeper_plate_nesting_later_is_an_error_naming_the_plate() -> Result<()> {
    let dev = Device::Cpu;
    let calls = Cell::new(0);
    let model = || -> Result<()> {
        calls.set(calls.get() + 1);
        plate("outer", 2, |_| {
            let z = sample_with("z", Bernoulli::new(0.5)?, enumerated())?;
            if calls.get() > 1 {
                plate("inner", 3, |_| observe("x", Normal::new(&z, 1.0)?, &Tensor::zeros((3, 2), DType::F32, &dev)?))?;
            }
            Ok(())
        })
    };
    let e = estimate(&mut TraceEnumElbo::new(), &model).unwrap_err().to_string();
    assert!(e.contains("plate `inner`") && e.contains("max_plate_nesting(2)"), "{e}");
    Ok(())
}

/// A plain `TraceEnumElbo` fit through `Svi` with `config_enumerate`: the run-time model/guide
/// check still catches a guide site the model lacks.
#[test]
fn svi_runs_config_enumerate_models_and_checks_the_guide() -> Result<()> {
    let data = Tensor::new(&[0f32, 1., 10., 11., 12.], &Device::Cpu)?;
    let model = |x: &Tensor| -> Result<()> {
        let locs = ppl::param("locs", Tensor::new(&[1f32, 9.], x.device())?)?;
        plate("data", 5, |_| {
            let z = sample("z", Categorical::new(&Tensor::new(&[0.5f32, 0.5], x.device())?)?)?;
            observe("x", Normal::new(&take(&locs, &z)?, 1.0)?, x).map(|_| ())
        })
    };
    let guide = |_: &Tensor| -> Result<()> { Ok(()) };
    let mut svi = Svi::new(config_enumerate(model), guide, Adam::new(0.1), TraceEnumElbo::new()).seed(0);
    svi.run(&data, 200)?;
    let locs: Vec<f32> = svi.params().get("locs")?.unwrap().to_vec1()?;
    // The MLE of the two-component mixture with unit scales: near the cluster means 0.5 and 11.
    assert!((locs[0] - 0.5).abs() < 0.1 && (locs[1] - 11.0).abs() < 0.1, "{locs:?}");
    let bad_guide = |_: &Tensor| -> Result<()> { sample("extra", Normal::new(0.0, 1.0)?).map(|_| ()) };
    let mut svi = Svi::new(config_enumerate(model), bad_guide, Adam::new(0.1), TraceEnumElbo::new()).seed(0);
    let e = svi.step(&data).unwrap_err().to_string();
    assert!(e.contains("extra") && e.contains("model has no site"), "{e}");
    Ok(())
}

/// NUTS on a two-component mixture with enumerated assignments (unit scales, equal weights,
/// priors loc0 ~ N(-2, 1), loc1 ~ N(2, 1) that make the label-swapped mode negligible):
/// posterior means of the locations against a 2-d grid quadrature of the exact marginal
/// posterior, within 4 MC standard errors (an effective sample size of a quarter of the draws).
#[test]
fn nuts_with_enumerated_assignments_recovers_the_means() -> Result<()> {
    let xs: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { -2.5 } else { 2.5 } + 0.9 * ((i as f64) * 1.7).sin()).collect();
    let model = |x: &Tensor| -> Result<()> {
        let dev = x.device();
        let l0 = sample("loc0", Normal::new(&Tensor::new(-2f64, dev)?, 1.0)?)?;
        let l1 = sample("loc1", Normal::new(&Tensor::new(2f64, dev)?, 1.0)?)?;
        let locs = Tensor::stack(&[&l0, &l1], 0)?;
        let w = Tensor::new(&[0.5f64, 0.5], dev)?;
        plate("data", x.dim(0)?, |_| {
            let z = sample("z", Categorical::new(&w)?)?;
            observe("x", Normal::new(&take(&locs, &z)?, 1.0)?, x).map(|_| ())
        })
    };
    // Grid quadrature of p(loc0, loc1 | x).
    let grid: Vec<f64> = (0..240).map(|i| -5.0 + 10.0 * i as f64 / 239.0).collect();
    let mut logs = Vec::new();
    for &a in &grid {
        for &b in &grid {
            let mut lp = log_normal(a, -2.0, 1.0) + log_normal(b, 2.0, 1.0);
            for &x in &xs {
                lp += lse(&[0.5f64.ln() + log_normal(x, a, 1.0), 0.5f64.ln() + log_normal(x, b, 1.0)]);
            }
            logs.push((a, b, lp));
        }
    }
    let z = lse(&logs.iter().map(|l| l.2).collect::<Vec<_>>());
    let moment = |f: &dyn Fn(f64, f64) -> f64| logs.iter().map(|&(a, b, lp)| f(a, b) * (lp - z).exp()).sum::<f64>();
    let (m0, m1) = (moment(&|a, _| a), moment(&|_, b| b));
    let (sd0, sd1) = ((moment(&|a, _| a * a) - m0 * m0).sqrt(), (moment(&|_, b| b * b) - m1 * m1).sqrt());
    let cfg = McmcConfig { num_warmup: 300, num_samples: 400, num_chains: 1, seed: 5, progress_bar: false, ..Default::default() };
    let data = Tensor::new(xs.as_slice(), &Device::Cpu)?;
    // The potential itself: the exact marginal log-density at one point.
    let enumerated_model = config_enumerate(model);
    let mut pot = ModelPotential::new(&enumerated_model, &data, DType::F64, &Device::Cpu)?;
    assert_eq!(pot.dim(), 2);
    let exact = |a: f64, b: f64| {
        let mut lp = log_normal(a, -2.0, 1.0) + log_normal(b, 2.0, 1.0);
        for &x in &xs {
            lp += lse(&[0.5f64.ln() + log_normal(x, a, 1.0), 0.5f64.ln() + log_normal(x, b, 1.0)]);
        }
        lp
    };
    let (a, b) = (-1.3, 2.2);
    let mut grad = [0.0, 0.0];
    let got = pot.log_density(&[a, b], &mut grad)?;
    let want = exact(a, b);
    assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
    let h = 1e-5;
    let fd = [(exact(a + h, b) - exact(a - h, b)) / (2.0 * h), (exact(a, b + h) - exact(a, b - h)) / (2.0 * h)];
    assert!((grad[0] - fd[0]).abs() < 1e-5 && (grad[1] - fd[1]).abs() < 1e-5, "{grad:?} vs {fd:?}");
    // Start in the main mode's basin: a start near loc0 = loc1 may slide into the label-swapped
    // local mode (posterior mass ~e^-20), which NUTS cannot leave.
    let start = ppl::handlers::data([("loc0", Tensor::new(-1f64, &Device::Cpu)?), ("loc1", Tensor::new(1f64, &Device::Cpu)?)]);
    let nuts = NutsConfig { init_strategy: init_to_value(start), ..Default::default() };
    let s = Mcmc::new(Nuts::with_config(config_enumerate(model), nuts), cfg).run(&data)?;
    let mean = |name: &str| -> f64 {
        let v = s.get(name).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let ess: f64 = 100.0;
    assert!((mean("loc0") - m0).abs() < 4.0 * sd0 / ess.sqrt(), "loc0 {} vs {m0} (sd {sd0})", mean("loc0"));
    assert!((mean("loc1") - m1).abs() < 4.0 * sd1 / ess.sqrt(), "loc1 {} vs {m1} (sd {sd1})", mean("loc1"));
    assert!(s.get("z").is_none(), "enumerated sites are summed out, not sampled");
    Ok(())
}
