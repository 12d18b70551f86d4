//! The autoguide row of the SVI benchmark: one SVI step (guide traced, model replayed, ELBO,
//! backward, Adam) on a 25-D Bayesian logistic regression with N = 1000, with `AutoNormal`
//! against the same guide hand-written with `param!`/`sample!`. Both steps run the identical
//! loop, so the ratio is the cost of the autoguide's machinery. Included by `benches/svi.rs`
//! (`#[path = "svi_autoguide.rs"] mod svi_autoguide;`), which calls [`run`].

use ppl::handlers::{replay, seed, trace};
use ppl::optim::{Adam, Optimizer};
use ppl::prelude::*;
use ppl::{ParamInit, ParamStore};
use std::hint::black_box;
use std::time::Instant;
use super::median;

const N: usize = 1000;
const D: usize = 25;

#[model]
fn logistic(d: &(Tensor, Tensor)) -> Result<()> {
    let (x, y) = d;
    let w = sample!("w", Normal::new(&Tensor::zeros(D, DType::F32, x.device())?, 1.0)?.to_event(1)?);
    let logits = x.matmul(&w.unsqueeze(1)?)?.squeeze(1)?;
    plate!("data", N, |_| {
        sample!("y", Bernoulli::from_logits(&logits)?, obs = y);
        Ok(())
    })
}

#[guide(model = logistic)]
fn hand(d: &(Tensor, Tensor)) -> Result<()> {
    let dev = d.0.device();
    let loc = param!("loc", ParamInit::lazy(|| Ok(Tensor::zeros(D, DType::F32, dev)?)));
    let scale =
        param!("scale", ParamInit::lazy(|| Ok((Tensor::ones(D, DType::F32, dev)? * 0.1)?)), constraint = positive);
    sample!("w", Normal::new(&loc, &scale)?.to_event(1)?);
    Ok(())
}

fn data() -> Result<(Tensor, Tensor)> {
    let mut rng = ppl::Rng::seed_from_u64(0);
    let x = rng.normal_tensor(&[N, D], DType::F32, &Device::Cpu)?;
    let w = (rng.normal_tensor(&[D, 1], DType::F32, &Device::Cpu)? * 0.5)?;
    let p = candle_nn::ops::sigmoid(&x.matmul(&w)?.squeeze(1)?)?;
    let u = rng.uniform_tensor(&[N], DType::F32, &Device::Cpu)?;
    let y = u.lt(&p)?.to_dtype(DType::F32)?;
    Ok((x, y))
}

/// One SVI step: single-particle ELBO, backward, Adam.
fn step<M>(
    guide: &impl Program<(Tensor, Tensor), M>,
    args: &(Tensor, Tensor),
    store: &ParamStore,
    adam: &mut Adam,
    i: u64,
) -> Result<()> {
    let loss = store.scope(|| {
        seed(i, || -> Result<Tensor> {
            let (_, gtr) = trace(|| guide.run(args))?;
            let (_, mtr) = trace(|| replay(&gtr, || logistic(args)))?;
            Ok((gtr.log_prob_sum()? - mtr.log_prob_sum()?)?)
        })
    })?;
    adam.step(store, &loss.backward()?)?;
    black_box(loss);
    Ok(())
}

fn per_step_us<M>(
    guide: &impl Program<(Tensor, Tensor), M>,
    args: &(Tensor, Tensor),
    store: &ParamStore,
    adam: &mut Adam,
    steps: u64,
) -> Result<f64> {
    let t = Instant::now();
    for i in 0..steps {
        step(guide, args, store, adam, i)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / steps as f64)
}


/// Prints `svi autonormal_logistic: ppl X us, hand Y us, ppl/hand Z` (medians of interleaved
/// repeats; validation off, as a speed-minded user runs).
pub fn run() -> Result<()> {
    let _v = ppl::defaults::set_validation(false);
    let args = data()?;
    let auto = AutoNormal::new(logistic);
    let (s_auto, s_hand) = (ParamStore::new(), ParamStore::new());
    let (mut a_auto, mut a_hand) = (Adam::new(0.01), Adam::new(0.01));
    per_step_us(&auto, &args, &s_auto, &mut a_auto, 50)?;
    per_step_us(&hand, &args, &s_hand, &mut a_hand, 50)?;
    let (mut ta, mut th) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        ta.push(per_step_us(&auto, &args, &s_auto, &mut a_auto, 40)?);
        th.push(per_step_us(&hand, &args, &s_hand, &mut a_hand, 40)?);
    }
    let (p, h) = (median(ta), median(th));
    println!("svi autonormal_logistic: ppl {p:.1} us, hand {h:.1} us, ppl/hand {:.2}", p / h);
    Ok(())
}
