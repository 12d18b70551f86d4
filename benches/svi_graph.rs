//! The `TraceGraphElbo` row of the SVI benchmark: one SVI step of a two-component mixture with a
//! discrete assignment per point (N = 200, plate-local Bernoulli latents, a logit per point in
//! the guide), against the same Rao-Blackwellized score-function step written directly in
//! Candle: per-point costs `log p(z_i, x_i) − log q(z_i)`, a decaying-average baseline, the
//! surrogate `Σ log q(z_i) · (cost_i − b)`, backward, ppl's fused Adam. The ratio is the cost of
//! the handlers, traces and the dependency-structure bookkeeping. Included by `benches/svi.rs`
//! (`#[path = "svi_graph.rs"] mod svi_graph;`), which calls [`run`].

use ppl::dist::{Bernoulli, Distribution, Normal};
use ppl::optim::Optimizer;
use ppl::prelude::*;
use std::hint::black_box;
use std::time::Instant;
use super::median;

const N: usize = 200;
const PRIOR: f64 = 0.4;

fn model(x: &Tensor) -> Result<()> {
    ppl::plate("data", N, |_| {
        let z = ppl::sample("z", Bernoulli::new(PRIOR)?)?;
        ppl::observe("x", Normal::new(&z.affine(2.5, -1.0)?, 1.0)?, x).map(|_| ())
    })
}

fn guide(_: &Tensor) -> Result<()> {
    let logits = ppl::param("logits", Tensor::zeros(N, DType::F32, &Device::Cpu)?)?;
    ppl::plate("data", N, |_| ppl::sample("z", Bernoulli::from_logits(&logits)?).map(|_| ()))
}

/// The hand-written step.
struct Hand {
    store: ParamStore,
    logits: Var,
    adam: Adam,
    rng: ppl::Rng,
    baseline: Option<f64>,
}

impl Hand {
    fn new() -> Result<Hand> {
        let store = ParamStore::new();
        store.set("logits", &Tensor::zeros(N, DType::F32, &Device::Cpu)?, Constraint::Real)?;
        let logits = store.get_unconstrained("logits").expect("just set");
        Ok(Hand { store, logits, adam: Adam::new(0.01), rng: ppl::Rng::seed_from_u64(0), baseline: None })
    }

    fn step(&mut self, x: &Tensor) -> Result<f64> {
        let q = Bernoulli::from_logits(self.logits.as_tensor())?;
        let z = q.sample(&mut self.rng, &[])?;
        let lq = q.log_prob(&z)?;
        let prior = Bernoulli::new(PRIOR)?.expand(&[N])?.log_prob(&z)?;
        let lp = (prior + Normal::new(&z.affine(2.5, -1.0)?, 1.0)?.log_prob(x)?)?;
        let cost = (&lp - &lq)?.detach();
        let mean = cost.mean_all()?.to_scalar::<f32>()? as f64;
        let b = self.baseline.unwrap_or(0.0);
        let surrogate = (lp.sum_all()? + (&lq * (&cost - b)?)?.sum_all()?)?;
        let grads = surrogate.neg()?.backward()?;
        self.adam.step(&self.store, &grads)?;
        self.baseline = Some(self.baseline.map_or(mean, |old| 0.9 * old + 0.1 * mean));
        Ok(-(cost.sum_all()?.to_scalar::<f32>()? as f64))
    }
}


/// Prints `svi tracegraph_mixture: ppl X us, hand Y us, ppl/hand Z` (medians of interleaved
/// repeats; validation off).
pub fn run() -> Result<()> {
    let _v = ppl::defaults::set_validation(false);
    let mut rng = ppl::Rng::seed_from_u64(1);
    let x = rng.normal_tensor(&[N], DType::F32, &Device::Cpu)?.affine(1.5, 0.2)?;
    let mut svi = Svi::new(model, guide, Adam::new(0.01), TraceGraphElbo::new()).seed(0);
    let mut hand = Hand::new()?;
    for _ in 0..100 {
        black_box(svi.step(&x)?);
        black_box(hand.step(&x)?);
    }
    let (mut tp, mut th) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        for _ in 0..50 {
            black_box(svi.step(&x)?);
        }
        tp.push(t.elapsed().as_secs_f64() * 1e6 / 50.0);
        let t = Instant::now();
        for _ in 0..50 {
            black_box(hand.step(&x)?);
        }
        th.push(t.elapsed().as_secs_f64() * 1e6 / 50.0);
    }
    let (p, h) = (median(tp), median(th));
    println!("svi tracegraph_mixture: ppl {p:.1} us, hand {h:.1} us, ppl/hand {:.2}", p / h);
    Ok(())
}
