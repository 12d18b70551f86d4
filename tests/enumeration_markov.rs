//! `vectorized_markov`: hidden Markov models written once and vectorized over time, their chains
//! summed out by a parallel scan. Checked against forward algorithms written here in f64 (one
//! sequence, a batch of sequences, a plate inside the step, a global enumerated site), against
//! finite differences and the sequential `markov` gradient, through the NUTS potential, decoded
//! by `infer_discrete` against brute force, and for errors naming the loop.

use super::enumeration::{enum_dims, enumerated, estimate, log_normal, lse, rows, take};
use ppl::infer::{DiscreteMode, Elbo, infer_discrete};
use ppl::prelude::*;
use ppl::{markov, observe, plate_with, sample, sample_with, vectorized_markov, vectorized_markov_with};

const K: usize = 3;
const INIT: [f64; K] = [0.5, 0.3, 0.2];
const TRANS: [[f64; K]; K] = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.15, 0.15, 0.7]];
const MEANS: [f64; K] = [-2.0, 0.0, 2.5];

/// Deterministic observations that visit every state; `shift` varies them between sequences.
fn hmm_data(t: usize, shift: f64) -> Vec<f64> {
    (0..t).map(|i| MEANS[(i / 7 + shift as usize) % K] + 0.8 * ((i as f64) * 1.3 + shift).sin()).collect()
}

/// The forward algorithm in f64: `log p(y_0..T)` of an HMM with unit-scale Normal emissions,
/// plus `extra[t][i]`, a log-factor on the state at `t - 1` added at step `t` (if given).
fn forward(init: &[f64], trans: &[[f64; K]; K], means: &[f64], y: &[f64], extra: Option<&[Vec<f64>]>) -> f64 {
    let mut alpha: Vec<f64> = (0..K).map(|k| init[k].ln() + log_normal(y[0], means[k], 1.0)).collect();
    for (t, &yt) in y.iter().enumerate().skip(1) {
        alpha = (0..K)
            .map(|j| {
                let terms: Vec<f64> =
                    (0..K).map(|i| alpha[i] + trans[i][j].ln() + extra.map_or(0.0, |e| e[t][i])).collect();
                lse(&terms) + log_normal(yt, means[j], 1.0)
            })
            .collect();
    }
    lse(&alpha)
}

/// The HMM with `vectorized_markov`; means shifted by `shift` (a tensor broadcasting against
/// the states, e.g. an enumerated global site).
fn vhmm(y: &Tensor, means: &Tensor, shift: Option<&Tensor>) -> Result<()> {
    vhmm_named("time", "", y, means, shift)
}

/// [`vhmm`] with the loop named `name` and the sites prefixed by `prefix`.
fn vhmm_named(name: &str, prefix: &str, y: &Tensor, means: &Tensor, shift: Option<&Tensor>) -> Result<()> {
    let dev = y.device();
    let init = Tensor::new(&INIT, dev)?;
    let trans = Tensor::new(&TRANS, dev)?;
    let mut x: Option<Tensor> = None;
    vectorized_markov(name, y.dim(0)?, |t| {
        let probs = match &x {
            None => init.clone(),
            Some(prev) => rows(&trans, prev)?,
        };
        let xt = sample_with(format!("{prefix}x_{t}"), Categorical::new(&probs)?, enumerated())?;
        let mut loc = take(means, &xt)?;
        if let Some(s) = shift {
            loc = loc.broadcast_add(s)?;
        }
        observe(format!("{prefix}y_{t}"), Normal::new(&loc, 1.0)?, &y.index_select(t.indices(), 0)?)?;
        x = Some(xt);
        Ok(())
    })?;
    Ok(())
}

/// 3 states, Normal emissions: the loss equals minus the forward algorithm at T = 50 and
/// T = 500, with the same two enum dims (x_0 and x_1..T) at both lengths.
#[test]
fn vectorized_hmm_loss_is_the_forward_algorithm_with_dims_independent_of_t() -> Result<()> {
    let dev = Device::Cpu;
    let means = Tensor::new(&MEANS, &dev)?;
    let mut dims = Vec::new();
    for t in [50, 500] {
        let y = hmm_data(t, 0.0);
        let yt = Tensor::new(y.as_slice(), &dev)?;
        let model = || vhmm(&yt, &means, None);
        let est = estimate(&mut TraceEnumElbo::new(), &model)?;
        let want = -forward(&INIT, &TRANS, &MEANS, &y, None);
        assert!((est.loss - want).abs() < 1e-9 * want.abs(), "T={t}: {} vs {want}", est.loss);
        assert_eq!(est.model_trace.value(&format!("x_1..{t}"))?.dims(), &[3, 1, 1]);
        dims.push(enum_dims(&est.model_trace));
    }
    assert_eq!(dims[0].len(), 2, "{:?}", dims[0]);
    assert_eq!(dims[0], dims[1]);
    // T = 1 (no second run) and T = 2 (a time plate of one step, no time dim) too.
    for t in [1, 2, 3] {
        let y = hmm_data(t, 0.0);
        let yt = Tensor::new(y.as_slice(), &dev)?;
        let est = estimate(&mut TraceEnumElbo::new(), &|| vhmm(&yt, &means, None))?;
        let want = -forward(&INIT, &TRANS, &MEANS, &y, None);
        assert!((est.loss - want).abs() < 1e-9 * want.abs(), "T={t}: {} vs {want}", est.loss);
    }
    Ok(())
}

/// The HMM with transition logits `logits` (a `Var`), vectorized or sequential.
fn logit_hmm<'a>(y: &'a [f64], logits: &'a Var, vectorized: bool) -> impl Fn() -> Result<()> + 'a {
    move || {
        let dev = Device::Cpu;
        let init = Tensor::new(&INIT, &dev)?;
        let means = Tensor::new(&MEANS, &dev)?;
        let ys = Tensor::new(y, &dev)?;
        let mut x: Option<Tensor> = None;
        let mut step = |name: String, data: Tensor| -> Result<()> {
            let dist = match &x {
                None => Categorical::new(&init)?,
                Some(prev) => Categorical::from_logits(&rows(logits.as_tensor(), prev)?)?,
            };
            let xt = sample_with(format!("x_{name}"), dist, enumerated())?;
            observe(format!("y_{name}"), Normal::new(&take(&means, &xt)?, 1.0)?, &data)?;
            x = Some(xt);
            Ok(())
        };
        if vectorized {
            vectorized_markov("time", y.len(), |t| step(t.to_string(), ys.index_select(t.indices(), 0)?))?;
        } else {
            markov(y.len(), |t| step(t.to_string(), ys.get(t)?))?;
        }
        Ok(())
    }
}

fn softmax_rows(l: &[[f64; K]; K]) -> [[f64; K]; K] {
    let mut out = [[0.0; K]; K];
    for i in 0..K {
        let z = lse(&l[i]);
        for j in 0..K {
            out[i][j] = (l[i][j] - z).exp();
        }
    }
    out
}

/// The gradient of the loss w.r.t. the transition logits equals the sequential `markov`
/// version's (1e-8) and central finite differences of the forward algorithm (1e-6).
#[test]
fn vectorized_hmm_gradient_matches_sequential_markov_and_finite_differences() -> Result<()> {
    let y = hmm_data(40, 1.0);
    let l0 = [[1.0, -0.5, 0.2], [0.1, 0.8, -1.0], [-0.3, 0.0, 0.9]];
    let logits = Var::new(&l0, &Device::Cpu)?;
    let grad = |vectorized: bool| -> Result<(f64, Vec<Vec<f64>>)> {
        let est = estimate(&mut TraceEnumElbo::new(), &logit_hmm(&y, &logits, vectorized))?;
        let g = est.surrogate.backward()?.get(logits.as_tensor()).unwrap().to_vec2::<f64>()?;
        Ok((est.loss, g))
    };
    let (loss_v, g_v) = grad(true)?;
    let (loss_s, g_s) = grad(false)?;
    let want = -forward(&INIT, &softmax_rows(&l0), &MEANS, &y, None);
    assert!((loss_v - want).abs() < 1e-9 * want.abs() && (loss_s - want).abs() < 1e-9 * want.abs(), "{loss_v} {loss_s} {want}");
    let h = 1e-5;
    for i in 0..K {
        for j in 0..K {
            assert!((g_v[i][j] - g_s[i][j]).abs() < 1e-8, "[{i}][{j}]: {} vs sequential {}", g_v[i][j], g_s[i][j]);
            let (mut up, mut down) = (l0, l0);
            up[i][j] += h;
            down[i][j] -= h;
            let fd = (forward(&INIT, &softmax_rows(&down), &MEANS, &y, None)
                - forward(&INIT, &softmax_rows(&up), &MEANS, &y, None))
                / (2.0 * h);
            assert!((g_v[i][j] - fd).abs() < 1e-6, "[{i}][{j}]: {} vs finite differences {fd}", g_v[i][j]);
        }
    }
    Ok(())
}

/// Four sequences in a plate at dim -2 around the loop (time plate at dim -1, data `[4, T]`):
/// the loss is minus the sum of the per-sequence forward algorithms.
#[test]
fn batch_of_sequences_is_the_sum_of_forward_algorithms() -> Result<()> {
    let (n, t) = (4, 30);
    let ys: Vec<Vec<f64>> = (0..n).map(|s| hmm_data(t, s as f64)).collect();
    let dev = Device::Cpu;
    let data = Tensor::new(ys.clone(), &dev)?;
    let model = || -> Result<()> {
        let init = Tensor::new(&INIT, &dev)?;
        let trans = Tensor::new(&TRANS, &dev)?;
        let means = Tensor::new(&MEANS, &dev)?;
        plate_with("sequences", n, PlateOptions { dim: Some(-2), ..Default::default() }, |_| {
            let mut x: Option<Tensor> = None;
            let time = PlateOptions { dim: Some(-1), ..Default::default() };
            vectorized_markov_with("time", t, time, |step| {
                let probs = match &x {
                    None => init.clone(),
                    Some(prev) => rows(&trans, prev)?,
                };
                let xt = sample_with(format!("x_{step}"), Categorical::new(&probs)?, enumerated())?;
                observe(format!("y_{step}"), Normal::new(&take(&means, &xt)?, 1.0)?, &data.index_select(step.indices(), 1)?)?;
                x = Some(xt);
                Ok(())
            })
        })?;
        Ok(())
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let want: f64 = -ys.iter().map(|y| forward(&INIT, &TRANS, &MEANS, y, None)).sum::<f64>();
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

/// A plate opened inside the step whose observations depend on the *previous* state
/// (`w[n, t] ~ N(means[x_{t-1}], 1)`, two per step from t = 1): each step's factor joins the
/// chain at its time step, not the first state.
#[test]
fn plate_inside_the_step_depending_on_the_previous_state() -> Result<()> {
    let t = 25;
    let y = hmm_data(t, 2.0);
    let w: Vec<Vec<f64>> = (0..2).map(|n| (0..t).map(|i| ((i * 3 + n) % 5) as f64 - 2.0).collect()).collect();
    let dev = Device::Cpu;
    let (ys, ws) = (Tensor::new(y.as_slice(), &dev)?, Tensor::new(w.clone(), &dev)?);
    let model = || -> Result<()> {
        let init = Tensor::new(&INIT, &dev)?;
        let trans = Tensor::new(&TRANS, &dev)?;
        let means = Tensor::new(&MEANS, &dev)?;
        let mut x: Option<Tensor> = None;
        vectorized_markov("time", t, |step| {
            let probs = match &x {
                None => init.clone(),
                Some(prev) => {
                    let loc = take(&means, prev)?;
                    ppl::plate("obs", 2, |_| {
                        observe(format!("w_{step}"), Normal::new(&loc, 1.0)?, &ws.index_select(step.indices(), 1)?)
                    })?;
                    rows(&trans, prev)?
                }
            };
            let xt = sample_with(format!("x_{step}"), Categorical::new(&probs)?, enumerated())?;
            observe(format!("y_{step}"), Normal::new(&take(&means, &xt)?, 1.0)?, &ys.index_select(step.indices(), 0)?)?;
            x = Some(xt);
            Ok(())
        })?;
        Ok(())
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let extra: Vec<Vec<f64>> =
        (0..t).map(|s| (0..K).map(|i| (0..2).map(|n| log_normal(w[n][s], MEANS[i], 1.0)).sum()).collect()).collect();
    let want = -forward(&INIT, &TRANS, &MEANS, &y, Some(&extra));
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

/// Two loops one after the other are two chains: the loss is minus the sum of their forward
/// algorithms. Two loops of one name in one run are an error naming it.
#[test]
fn two_loops_are_two_chains_and_need_two_names() -> Result<()> {
    let (y1, y2) = (hmm_data(20, 0.0), hmm_data(15, 1.0));
    let dev = Device::Cpu;
    let (t1, t2, means) = (Tensor::new(y1.as_slice(), &dev)?, Tensor::new(y2.as_slice(), &dev)?, Tensor::new(&MEANS, &dev)?);
    let model = || -> Result<()> {
        vhmm_named("first", "a", &t1, &means, None)?;
        vhmm_named("second", "b", &t2, &means, None)
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let want = -forward(&INIT, &TRANS, &MEANS, &y1, None) - forward(&INIT, &TRANS, &MEANS, &y2, None);
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    assert_eq!(enum_dims(&est.model_trace).len(), 4);
    let same = || -> Result<()> {
        vhmm_named("time", "a", &t1, &means, None)?;
        vhmm_named("time", "b", &t2, &means, None)
    };
    let e = estimate(&mut TraceEnumElbo::new(), &same).unwrap_err().to_string();
    assert!(e.contains("two vectorized_markov loops are named `time`"), "{e}");
    Ok(())
}

/// An enumerated global site outside the loop (`z ~ Bernoulli(0.3)` shifting every mean by
/// 1.5 z): the chain is batched over z, and the loss is `-log Σ_z p(z) p(y | z)`.
#[test]
fn global_enumerated_site_batches_the_chain() -> Result<()> {
    let y = hmm_data(60, 0.5);
    let dev = Device::Cpu;
    let (yt, means) = (Tensor::new(y.as_slice(), &dev)?, Tensor::new(&MEANS, &dev)?);
    let model = || -> Result<()> {
        let z = sample_with("z", Bernoulli::new(&Tensor::new(0.3f64, &dev)?)?, enumerated())?;
        vhmm(&yt, &means, Some(&(z * 1.5)?))
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let shifted = |s: f64| MEANS.map(|m| m + s);
    let want = -lse(&[
        0.7f64.ln() + forward(&INIT, &TRANS, &shifted(0.0), &y, None),
        0.3f64.ln() + forward(&INIT, &TRANS, &shifted(1.5), &y, None),
    ]);
    assert!((est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    Ok(())
}

/// Guide-side enumeration does not combine with a vectorized chain yet: an error naming the
/// loop and the guide's site, not a silently wrong loss.
#[test]
fn guide_enumeration_beside_a_vectorized_chain_is_an_error() -> Result<()> {
    let y = hmm_data(10, 0.5);
    let dev = Device::Cpu;
    let (yt, means) = (Tensor::new(y.as_slice(), &dev)?, Tensor::new(&MEANS, &dev)?);
    let model = || -> Result<()> {
        let z = sample("z", Bernoulli::new(&Tensor::new(0.3f64, &dev)?)?)?;
        vhmm(&yt, &means, Some(&(z * 1.5)?))
    };
    let guide = || -> Result<()> { sample_with("z", Bernoulli::new(&Tensor::new(0.6f64, &dev)?)?, enumerated()).map(|_| ()) };
    let e = ParamStore::new().scope(|| TraceEnumElbo::new().estimate(&model, &guide)).unwrap_err().to_string();
    assert!(e.contains("`time`") && e.contains("`z`"), "{e}");
    Ok(())
}

/// The enumerated NUTS potential of an HMM whose means have N(0, 3²) priors: its value is the
/// prior plus the forward algorithm, its gradient that of finite differences.
#[test]
fn nuts_potential_of_a_vectorized_hmm_is_the_forward_algorithm() -> Result<()> {
    let y = hmm_data(40, 1.5);
    let model = |y: &Tensor| -> Result<()> {
        let dev = y.device();
        let ms: Vec<Tensor> = (0..K)
            .map(|k| sample(format!("m{k}"), Normal::new(&Tensor::new(0f64, dev)?, 3.0)?))
            .collect::<Result<_>>()?;
        vhmm(y, &Tensor::stack(&ms, 0)?, None)
    };
    let data = Tensor::new(y.as_slice(), &Device::Cpu)?;
    let mut pot = ModelPotential::new(&model, &data, DType::F64, &Device::Cpu)?;
    assert_eq!(pot.dim(), K);
    let exact = |m: [f64; K]| m.iter().map(|&v| log_normal(v, 0.0, 3.0)).sum::<f64>() + forward(&INIT, &TRANS, &m, &y, None);
    let at = [-1.7, 0.2, 2.0];
    let mut grad = [0.0; K];
    let got = pot.log_density(&at, &mut grad)?;
    let want = exact(at);
    assert!((got - want).abs() < 1e-9 * want.abs(), "{got} vs {want}");
    let h = 1e-5;
    for k in 0..K {
        let (mut up, mut down) = (at, at);
        up[k] += h;
        down[k] -= h;
        let fd = (exact(up) - exact(down)) / (2.0 * h);
        assert!((grad[k] - fd).abs() < 1e-5, "m{k}: {} vs {fd}", grad[k]);
    }
    Ok(())
}

/// Errors name the loop and the sites: states that do not pair (count, support size), a
/// subsampled time plate, a nested vectorized loop.
#[test]
fn pairing_subsampling_and_nesting_errors_name_the_loop() -> Result<()> {
    let dev = Device::Cpu;
    let y = Tensor::new(hmm_data(10, 0.0).as_slice(), &dev)?;
    let init = Tensor::new(&INIT, &dev)?;
    let trans = Tensor::new(&TRANS, &dev)?;
    let means = Tensor::new(&MEANS, &dev)?;
    // The later steps enumerate one more site than t = 0.
    let extra = || -> Result<()> {
        let mut x: Option<Tensor> = None;
        vectorized_markov("time", 10, |t| {
            let probs = match &x {
                None => init.clone(),
                Some(prev) => {
                    sample_with(format!("c_{t}"), Bernoulli::new(0.5)?, enumerated())?;
                    rows(&trans, prev)?
                }
            };
            let xt = sample_with(format!("x_{t}"), Categorical::new(&probs)?, enumerated())?;
            observe(format!("y_{t}"), Normal::new(&take(&means, &xt)?, 1.0)?, &y.index_select(t.indices(), 0)?)?;
            x = Some(xt);
            Ok(())
        })?;
        Ok(())
    };
    let e = estimate(&mut TraceEnumElbo::new(), &extra).unwrap_err().to_string();
    assert!(e.contains("vectorized_markov loop `time`") && e.contains("(`x_0`)") && e.contains("(`c_1..10`, `x_1..10`)"), "{e}");
    // Paired states of different support sizes.
    let two = Tensor::new(&[[0.5f64, 0.5], [0.9, 0.1], [0.2, 0.8]], &dev)?;
    let sizes = || -> Result<()> {
        let mut x: Option<Tensor> = None;
        vectorized_markov("time", 10, |t| {
            let probs = match &x {
                None => init.clone(),
                Some(prev) => rows(&two, prev)?,
            };
            let xt = sample_with(format!("x_{t}"), Categorical::new(&probs)?, enumerated())?;
            x = Some(xt);
            Ok(())
        })?;
        Ok(())
    };
    let e = estimate(&mut TraceEnumElbo::new(), &sizes).unwrap_err().to_string();
    assert!(e.contains("loop `time`") && e.contains("`x_0` (t = 0) has 3 values but `x_1..10`"), "{e}");
    // A subsampled time plate.
    let sub = || -> Result<()> {
        let opts = PlateOptions { subsample_size: Some(4), ..Default::default() };
        vectorized_markov_with("time", 10, opts, |_| Ok(()))?;
        Ok(())
    };
    let e = estimate(&mut TraceEnumElbo::new(), &sub).unwrap_err().to_string();
    assert!(e.contains("plate `time`") && e.contains("cannot be subsampled"), "{e}");
    // A vectorized loop inside another.
    let nested = || -> Result<()> {
        vectorized_markov("outer", 3, |_| {
            vectorized_markov("inner", 3, |t| sample_with(format!("v_{t}"), Bernoulli::new(0.5)?, enumerated()))
        })?;
        Ok(())
    };
    let e = estimate(&mut TraceEnumElbo::new(), &nested).unwrap_err().to_string();
    assert!(e.contains("loop `inner` is nested inside the vectorized_markov loop `outer`") && e.contains("site `v_0`"), "{e}");
    Ok(())
}

/// `log p(x, y)` of the 3-state HMM for one joint configuration `xs`.
fn joint_log_prob(xs: &[usize], y: &[f64]) -> f64 {
    let mut lp = INIT[xs[0]].ln() + log_normal(y[0], MEANS[xs[0]], 1.0);
    for t in 1..xs.len() {
        lp += TRANS[xs[t - 1]][xs[t]].ln() + log_normal(y[t], MEANS[xs[t]], 1.0);
    }
    lp
}

/// All `k^n` configurations of `n` variables with `k` values each (the first varies fastest).
fn configurations(k: usize, n: usize) -> impl Iterator<Item = Vec<usize>> {
    (0..k.pow(n as u32)).map(move |code| (0..n).map(|i| (code / k.pow(i as u32)) % k).collect())
}

/// The decoded states `[x_0, x_1, ..]` from the sites `x_0` and `x_1..T` of `d`.
fn decoded_states(d: &ppl::handlers::Data, t: usize) -> Result<Vec<usize>> {
    let as_usize = |v: &Tensor| -> Result<Vec<usize>> {
        Ok(v.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?.into_iter().map(|x| x as usize).collect())
    };
    let mut xs = as_usize(&d["x_0"])?;
    assert_eq!(d[&format!("x_1..{t}")].dims(), &[t - 1]);
    xs.extend(as_usize(&d[&format!("x_1..{t}")])?);
    Ok(xs)
}

/// `infer_discrete` through the loop: the MAP (Viterbi) path equals the brute-force argmax over
/// all 3^6 paths, and posterior draws (forward filtering, backward sampling) match the exact
/// marginals of each state and of the pair (x_1, x_2) within 4 standard errors.
#[test]
fn infer_discrete_decodes_the_chain_against_brute_force() -> Result<()> {
    let t = 6;
    let y = hmm_data(t, 0.7);
    let dev = Device::Cpu;
    let (yt, means) = (Tensor::new(y.as_slice(), &dev)?, Tensor::new(&MEANS, &dev)?);
    let model = |_: &()| vhmm(&yt, &means, None);
    let joint: Vec<(Vec<usize>, f64)> = configurations(K, t).map(|xs| {
        let lp = joint_log_prob(&xs, &y);
        (xs, lp)
    }).collect();
    let best = joint.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(decoded_states(&infer_discrete(&model, &(), DiscreteMode::Map)?, t)?, best.0);
    let z = lse(&joint.iter().map(|j| j.1).collect::<Vec<_>>());
    let mut exact = vec![[0.0; K]; t];
    let mut exact_pair = [[0.0; K]; K];
    for (xs, lp) in &joint {
        let p = (lp - z).exp();
        for s in 0..t {
            exact[s][xs[s]] += p;
        }
        exact_pair[xs[1]][xs[2]] += p;
    }
    let n = 500;
    let mut counts = vec![[0usize; K]; t];
    let mut pair = [[0usize; K]; K];
    ppl::handlers::seed(11, || -> Result<()> {
        for _ in 0..n {
            let xs = decoded_states(&infer_discrete(&model, &(), DiscreteMode::Sample)?, t)?;
            for s in 0..t {
                counts[s][xs[s]] += 1;
            }
            pair[xs[1]][xs[2]] += 1;
        }
        Ok(())
    })?;
    let check = |got: usize, p: f64, what: &str| {
        let se = (p * (1.0 - p) / n as f64).sqrt().max(1e-3);
        let got = got as f64 / n as f64;
        assert!((got - p).abs() < 4.0 * se, "{what}: {got} vs exact {p}");
    };
    for s in 0..t {
        for k in 0..K {
            check(counts[s][k], exact[s][k], &format!("x_{s} = {k}"));
        }
    }
    for i in 0..K {
        for j in 0..K {
            check(pair[i][j], exact_pair[i][j], &format!("(x_1, x_2) = ({i}, {j})"));
        }
    }
    Ok(())
}

/// MAP through the loop with an enumerated site in a plate inside the step that depends on the
/// *previous* state (`c[j, t] ~ Bernoulli(pc[x_{t-1}])`, `w[j, t] ~ N(2 c - 1, 1)`, two per step
/// from t = 1; 2 states, T = 4): equals the brute-force argmax over the 2^4 paths and 2^6 `c`s.
#[test]
fn infer_discrete_decodes_a_site_depending_on_the_previous_state() -> Result<()> {
    const INIT2: [f64; 2] = [0.6, 0.4];
    const TRANS2: [[f64; 2]; 2] = [[0.7, 0.3], [0.25, 0.75]];
    const MEANS2: [f64; 2] = [-1.0, 1.5];
    const PC: [f64; 2] = [0.2, 0.85];
    let t = 4;
    let y = [-0.8, 0.3, 1.9, 0.2];
    let w = [[0.0, 0.9, -1.3, 0.4], [0.0, -0.2, 1.1, 0.8]]; // [j][t], unused at t = 0
    let dev = Device::Cpu;
    let (yt, wt) = (Tensor::new(&y, &dev)?, Tensor::new(&w, &dev)?);
    let model = |_: &()| -> Result<()> {
        let init = Tensor::new(&INIT2, &dev)?;
        let trans = Tensor::new(&TRANS2, &dev)?;
        let means = Tensor::new(&MEANS2, &dev)?;
        let pc = Tensor::new(&PC, &dev)?;
        let mut x: Option<Tensor> = None;
        vectorized_markov("time", t, |step| {
            let probs = match &x {
                None => init.clone(),
                Some(prev) => {
                    ppl::plate("pair", 2, |_| {
                        let c = sample_with(format!("c_{step}"), Bernoulli::new(&take(&pc, prev)?)?, enumerated())?;
                        let loc = ((c * 2.0)? - 1.0)?;
                        observe(format!("w_{step}"), Normal::new(&loc, 1.0)?, &wt.index_select(step.indices(), 1)?)
                    })?;
                    rows(&trans, prev)?
                }
            };
            let xt = sample_with(format!("x_{step}"), Categorical::new(&probs)?, enumerated())?;
            observe(format!("y_{step}"), Normal::new(&take(&means, &xt)?, 1.0)?, &yt.index_select(step.indices(), 0)?)?;
            x = Some(xt);
            Ok(())
        })?;
        Ok(())
    };
    let mut best = (f64::NEG_INFINITY, vec![], vec![]);
    for xs in configurations(2, t) {
        for cs in configurations(2, 2 * (t - 1)) {
            // cs[j * (t - 1) + s - 1] is c[j, s].
            let mut lp = INIT2[xs[0]].ln() + log_normal(y[0], MEANS2[xs[0]], 1.0);
            for s in 1..t {
                lp += TRANS2[xs[s - 1]][xs[s]].ln() + log_normal(y[s], MEANS2[xs[s]], 1.0);
                for j in 0..2 {
                    let c = cs[j * (t - 1) + s - 1];
                    let p = PC[xs[s - 1]];
                    lp += if c == 1 { p.ln() } else { (1.0 - p).ln() } + log_normal(w[j][s], 2.0 * c as f64 - 1.0, 1.0);
                }
            }
            if lp > best.0 {
                best = (lp, xs.clone(), cs);
            }
        }
    }
    let map = infer_discrete(&model, &(), DiscreteMode::Map)?;
    assert_eq!(decoded_states(&map, t)?, best.1);
    let c = &map[&format!("c_1..{t}")];
    assert_eq!(c.dims(), &[2, t - 1]);
    let c: Vec<usize> = c.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?.into_iter().map(|v| v as usize).collect();
    assert_eq!(c, best.2);
    Ok(())
}

/// Impossible states: a factor `log q[x_t][o_t]` with `q` rows `[1, 0]`, `[0, 1]`,
/// `[0.5, 0.5]` (so `-inf` entries) rules out state 1 where `o_t = 0` and state 0 where
/// `o_t = 1`. The log-space chain products then meet all `-inf` rows and columns and must give
/// `-inf` there (not NaN): the loss equals a forward algorithm with those zeros.
#[test]
fn impossible_states_stay_exact_in_the_chain_products() -> Result<()> {
    let q: [[f64; 2]; K] = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]];
    let t = 40;
    let y = hmm_data(t, 0.3);
    let o: Vec<u32> = (0..t).map(|i| ((i / 5) % 2) as u32).collect();
    let dev = Device::Cpu;
    // log q[j][o_t], as [K, T].
    let logq: Vec<Vec<f64>> = (0..K).map(|j| o.iter().map(|&os| q[j][os as usize].ln()).collect()).collect();
    let (yt, lq, means) = (Tensor::new(y.as_slice(), &dev)?, Tensor::new(logq, &dev)?, Var::new(&MEANS, &dev)?);
    let model = || -> Result<()> {
        let init = Tensor::new(&INIT, &dev)?;
        let trans = Tensor::new(&TRANS, &dev)?;
        let mut x: Option<Tensor> = None;
        vectorized_markov("time", t, |step| {
            let probs = match &x {
                None => init.clone(),
                Some(prev) => rows(&trans, prev)?,
            };
            let xt = sample_with(format!("x_{step}"), Categorical::new(&probs)?, enumerated())?;
            observe(format!("y_{step}"), Normal::new(&take(means.as_tensor(), &xt)?, 1.0)?, &yt.index_select(step.indices(), 0)?)?;
            // lq[x_t, t], selected by `where` (a one-hot product would meet 0 * -inf).
            let lqn = lq.index_select(step.indices(), 1)?;
            let xf = xt.to_dtype(DType::F64)?;
            let shape = xf.zeros_like()?.broadcast_add(&lqn.get(0)?)?.dims().to_vec();
            let mut lw = lqn.get(0)?.broadcast_as(shape.as_slice())?;
            for j in 1..K {
                let hit = xf.broadcast_eq(&Tensor::new(j as f64, &dev)?)?.broadcast_as(shape.as_slice())?;
                lw = hit.where_cond(&lqn.get(j)?.broadcast_as(shape.as_slice())?, &lw)?;
            }
            ppl::factor(format!("o_{step}"), &lw)?;
            x = Some(xt);
            Ok(())
        })?;
        Ok(())
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    let loss = |m: [f64; K]| {
        let emit = |s: usize, j: usize| log_normal(y[s], m[j], 1.0) + q[j][o[s] as usize].ln();
        let mut alpha: Vec<f64> = (0..K).map(|j| INIT[j].ln() + emit(0, j)).collect();
        for s in 1..t {
            alpha = (0..K)
                .map(|j| lse_or_neg_inf(&(0..K).map(|i| alpha[i] + TRANS[i][j].ln()).collect::<Vec<_>>()) + emit(s, j))
                .collect();
        }
        -lse_or_neg_inf(&alpha)
    };
    let want = loss(MEANS);
    assert!(want.is_finite() && (est.loss - want).abs() < 1e-9 * want.abs(), "{} vs {want}", est.loss);
    // Gradients stay finite through the -inf entries: the means' against finite differences.
    let g: Vec<f64> = est.surrogate.backward()?.get(means.as_tensor()).unwrap().to_vec1()?;
    let h = 1e-5;
    for k in 0..K {
        let (mut up, mut down) = (MEANS, MEANS);
        up[k] += h;
        down[k] -= h;
        let fd = (loss(up) - loss(down)) / (2.0 * h);
        assert!((g[k] - fd).abs() < 1e-6, "means[{k}]: {} vs finite differences {fd}", g[k]);
    }
    Ok(())
}

/// `lse`, or `-inf` when every term is.
fn lse_or_neg_inf(xs: &[f64]) -> f64 {
    if xs.iter().all(|x| *x == f64::NEG_INFINITY) { f64::NEG_INFINITY } else { lse(xs) }
}
