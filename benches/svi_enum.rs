//! The cost of one `TraceEnumElbo` SVI step of a 1-D Gaussian mixture with enumerated
//! assignments (K = 3, N = 500; weights on the simplex, locations, a positive scale as
//! parameters, empty guide), against the same step written directly in Candle: the mixture
//! log-likelihood as a `[K, N]` tensor, a log-sum-exp over K, backward and ppl's fused Adam —
//! no handlers, traces, enumeration bookkeeping or contraction planning. Then a discrete HMM
//! step (3 states, 4 symbols, enumerated states under `markov`) at T = 100 and T = 500, whose
//! cost should grow linearly in T; then the same HMM written with `vectorized_markov` (its chain
//! summed out by a parallel scan), with its speed-up over `markov` at the same T.
//!
//! Repeats alternate between ppl and the hand-written step; medians are reported. Validation is
//! off for both. Part of `cargo bench --bench svi`.

use ppl::dist::{Categorical, Distribution, Normal};
use ppl::optim::Optimizer;
use ppl::prelude::*;
use std::hint::black_box;
use std::time::Instant;
use super::median;

const K: usize = 3;
const N: usize = 500;

fn gmm(x: &Tensor) -> Result<()> {
    let dev = x.device();
    let simplex = ParamOptions { constraint: Constraint::Simplex, ..Default::default() };
    let weights = ppl::param_with("weights", Tensor::full(1.0 / K as f32, K, dev)?, simplex)?;
    let locs = ppl::param("locs", Tensor::new(&[-3f32, 0., 3.], dev)?)?;
    let positive = ParamOptions { constraint: Constraint::Positive, ..Default::default() };
    let scale = ppl::param_with("scale", 1f32, positive)?;
    ppl::plate("data", x.dim(0)?, |_| {
        let opts = SampleOptions::new().infer(ppl::InferConfig::new().enumerate(ppl::Enumerate::Parallel));
        let z = ppl::sample_with("z", Categorical::new(&weights)?, opts)?;
        let loc = locs.index_select(&z.flatten_all()?, 0)?.reshape(z.dims())?;
        ppl::observe("x", Normal::new(&loc, &scale)?, x).map(|_| ())
    })
}

fn empty(_: &Tensor) -> Result<()> {
    Ok(())
}

/// The hand-written step: the same parameters (ppl's store, so the same transforms and Adam).
struct Hand {
    store: ParamStore,
    adam: Adam,
}

impl Hand {
    fn new() -> Result<Hand> {
        let store = ParamStore::new();
        let dev = Device::Cpu;
        store.set("weights", &Tensor::full(1.0 / K as f32, K, &dev)?, Constraint::Simplex)?;
        store.set("locs", &Tensor::new(&[-3f32, 0., 3.], &dev)?, Constraint::Real)?;
        store.set("scale", &Tensor::new(1f32, &dev)?, Constraint::Positive)?;
        Ok(Hand { store, adam: Adam::new(0.01) })
    }

    fn step(&mut self, x: &Tensor) -> Result<f64> {
        let get = |n: &str| -> Result<Tensor> { Ok(self.store.get(n)?.expect("set in new")) };
        let (w, locs, scale) = (get("weights")?, get("locs")?, get("scale")?);
        // lp[k, n] = log w_k + log N(x_n | loc_k, scale)
        let normal = Normal::new(&locs.reshape((K, 1))?, &scale)?;
        let lp = normal.log_prob(&x.reshape((1, N))?)?.broadcast_add(&w.log()?.reshape((K, 1))?)?;
        let m = lp.max_keepdim(0)?.detach();
        let lse = (lp.broadcast_sub(&m)?.exp()?.sum_keepdim(0)?.log()? + m)?;
        let loss = lse.sum_all()?.neg()?;
        let grads = loss.backward()?;
        self.adam.step(&self.store, &grads)?;
        Ok(loss.to_scalar::<f32>()? as f64)
    }
}


/// The HMM's parameters: transition and emission matrices on the simplex.
fn hmm_params(dev: &Device) -> Result<(Tensor, Tensor)> {
    let simplex = ParamOptions { constraint: Constraint::Simplex, ..Default::default() };
    let t0: Vec<f32> = (0..9).map(|i| if i / 3 == i % 3 { 0.8 } else { 0.1 }).collect();
    let trans = ppl::param_with("trans", Tensor::from_vec(t0, (3, 3), dev)?, simplex.clone())?;
    let e0: Vec<f32> = (0..12).map(|i| if i % 4 == i / 4 { 0.55 } else { 0.15 }).collect();
    let emit = ppl::param_with("emit", Tensor::from_vec(e0, (3, 4), dev)?, simplex)?;
    Ok((trans, emit))
}

/// Rows `m[x]`, shaped `x.dims() ++ [m.dim(1)]`.
fn rows(m: &Tensor, x: &Tensor) -> Result<Tensor> {
    let mut shape = x.dims().to_vec();
    shape.push(m.dim(1)?);
    Ok(m.index_select(&x.flatten_all()?, 0)?.reshape(shape)?)
}

/// The HMM of [`hmm`] written with `vectorized_markov`: one step at t = 0, one vectorized over
/// t = 1..T, the chain summed out by a parallel scan.
fn vhmm(y: &Tensor) -> Result<()> {
    let dev = y.device();
    let (trans, emit) = hmm_params(dev)?;
    let mut x = Tensor::zeros(1, DType::U32, dev)?;
    ppl::vectorized_markov("time", y.dim(0)?, |t| {
        let opts = SampleOptions::new().infer(ppl::InferConfig::new().enumerate(ppl::Enumerate::Parallel));
        x = ppl::sample_with(format!("x_{t}"), Categorical::new(&rows(&trans, &x)?)?, opts)?;
        ppl::observe(format!("y_{t}"), Categorical::new(&rows(&emit, &x)?)?, &y.index_select(t.indices(), 0)?).map(|_| ())
    })?;
    Ok(())
}

/// Median µs per SVI step of `model` on `T = t` symbols.
fn hmm_step_us(model: fn(&Tensor) -> Result<()>, t: usize) -> Result<f64> {
    let ys: Vec<u32> = (0..t).map(|i| ((i / 9) % 4) as u32).collect();
    let y = Tensor::from_vec(ys, t, &Device::Cpu)?;
    let mut svi = Svi::new(model, empty, Adam::new(0.01), TraceEnumElbo::new()).seed(0);
    for _ in 0..5 {
        black_box(svi.step(&y)?);
    }
    let mut us = Vec::new();
    for _ in 0..7 {
        let s = Instant::now();
        for _ in 0..3 {
            black_box(svi.step(&y)?);
        }
        us.push(s.elapsed().as_secs_f64() * 1e6 / 3.0);
    }
    Ok(median(us))
}

/// A discrete HMM over `y` (`[T]` symbols), hidden states enumerated under `markov`.
fn hmm(y: &Tensor) -> Result<()> {
    let dev = y.device();
    let (trans, emit) = hmm_params(dev)?;
    let mut x = Tensor::zeros(1, DType::U32, dev)?;
    ppl::markov(y.dim(0)?, |t| {
        let opts = SampleOptions::new().infer(ppl::InferConfig::new().enumerate(ppl::Enumerate::Parallel));
        x = ppl::sample_with(format!("x_{t}"), Categorical::new(&rows(&trans, &x)?)?, opts)?;
        ppl::observe(format!("y_{t}"), Categorical::new(&rows(&emit, &x)?)?, &y.get(t)?).map(|_| ())
    })?;
    Ok(())
}

/// Prints the GMM line and the HMM lines (medians of interleaved repeats; validation off).
pub fn run() -> Result<()> {
    let _validation = ppl::defaults::set_validation(false);
    let mut rng = ppl::Rng::seed_from_u64(0);
    let xs: Vec<f32> = (0..N).map(|i| [-3.0, 0.5, 4.0][i % K] + rng.standard_normal() as f32).collect();
    let x = Tensor::from_vec(xs, N, &Device::Cpu)?;
    let mut svi = Svi::new(gmm, empty, Adam::new(0.01), TraceEnumElbo::new()).seed(0);
    let mut hand = Hand::new()?;
    for _ in 0..100 {
        black_box(svi.step(&x)?);
        black_box(hand.step(&x)?);
    }
    let (reps, n) = (15, 100);
    let (mut ppl_us, mut hand_us) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..n {
            black_box(svi.step(&x)?);
        }
        ppl_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            black_box(hand.step(&x)?);
        }
        hand_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let (p, h) = (median(ppl_us), median(hand_us));
    println!("svi gmm enum (K=3, N=500): ppl {p:.1} us, hand {h:.1} us, ppl/hand {:.2}", p / h);

    let mut per_t = Vec::new();
    for t in [100usize, 500] {
        let m = hmm_step_us(hmm, t)?;
        per_t.push(m / t as f64);
        println!("svi hmm enum (3 states, T={t}): ppl {m:.0} us per step, {:.1} us per time step", m / t as f64);
    }
    println!("svi hmm enum: cost per time step T=500 / T=100: {:.2} (1.00 = linear in T)", per_t[1] / per_t[0]);
    let mut per_t_v = Vec::new();
    for (i, t) in [100usize, 500].into_iter().enumerate() {
        let m = hmm_step_us(vhmm, t)?;
        per_t_v.push(m / t as f64);
        println!(
            "svi hmm enum vectorized_markov (3 states, T={t}): ppl {m:.0} us per step, {:.1} us per time step, {:.1}x faster than markov",
            m / t as f64,
            per_t[i] / per_t_v[i]
        );
    }
    println!(
        "svi hmm enum vectorized_markov: cost per time step T=500 / T=100: {:.2} (1.00 = linear in T)",
        per_t_v[1] / per_t_v[0]
    );
    Ok(())
}
