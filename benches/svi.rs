//! The cost of one SVI step of the coin model (Pyro's SVI tutorial: Beta(10, 10) prior, ten
//! Bernoulli flips, Beta guide with two positive parameters) in ppl, against the same step
//! written directly in Candle: the same distributions, draws, log-densities, backward pass and
//! fused Adam update, with no handlers, traces, checks or parameter store lookups.
//!
//! Repeats alternate between the two and the medians are reported. Validation is off for both
//! (it copies parameters to the host). Run with `cargo bench --bench svi`. The binary uses
//! mimalloc as its global allocator, as the README advises for training binaries (glibc's
//! page-faulting of large per-op buffers and its consolidation on free grow with the graph).

use ppl::dist::{Bernoulli, Beta, Distribution};
use ppl::optim::Optimizer;
use ppl::prelude::*;
use std::hint::black_box;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn positive() -> ParamOptions {
    ParamOptions { constraint: Constraint::Positive, ..Default::default() }
}

fn coin(x: &Tensor) -> Result<()> {
    let p = ppl::sample("p", Beta::new(10.0, 10.0)?)?;
    ppl::plate("flips", 10, |_| ppl::observe("x", Bernoulli::new(&p)?, x).map(|_| ()))
}

fn coin_guide(_: &Tensor) -> Result<()> {
    let a = ppl::param_with("alpha_q", 15.0, positive())?;
    let b = ppl::param_with("beta_q", 15.0, positive())?;
    ppl::sample("p", Beta::new(&a, &b)?).map(|_| ())
}

/// The hand-written step: parameters as log-space Vars, the same ops, ppl's fused Adam.
struct Hand {
    store: ParamStore,
    a: Var,
    b: Var,
    adam: Adam,
    rng: ppl::Rng,
}

impl Hand {
    fn new() -> Result<Hand> {
        let store = ParamStore::new();
        let init = Tensor::new(15f32, &Device::Cpu)?;
        store.set("alpha_q", &init, Constraint::Positive)?;
        store.set("beta_q", &init, Constraint::Positive)?;
        let (a, b) = (store.get_unconstrained("alpha_q").unwrap(), store.get_unconstrained("beta_q").unwrap());
        Ok(Hand { store, a, b, adam: Adam::new(0.005), rng: ppl::Rng::seed_from_u64(0) })
    }

    fn step(&mut self, x: &Tensor) -> Result<f64> {
        let q = Beta::new(&self.a.as_tensor().exp()?, &self.b.as_tensor().exp()?)?;
        let p = q.rsample(&mut self.rng, &[])?;
        let lik = Bernoulli::new(&p)?.expand(&[10])?.log_prob(x)?.sum_all()?;
        let model = (Beta::new(10.0, 10.0)?.log_prob(&p)? + lik)?;
        let elbo = (model - q.log_prob(&p)?)?;
        let loss = elbo.neg()?;
        let grads = loss.backward()?;
        self.adam.step(&self.store, &grads)?;
        Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }
}

/// This thread's CPU time in seconds (Linux; clock ticks of 10 ms), to tell the step's own cost
/// from time spent waiting for a core on a loaded machine.
fn thread_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[path = "svi_autoguide.rs"]
mod svi_autoguide;
#[path = "svi_graph.rs"]
mod svi_graph;
#[path = "svi_enum.rs"]
mod svi_enum;

fn main() -> Result<()> {
    let _validation = ppl::defaults::set_validation(false);
    let x = Tensor::new(&[1f32, 1., 1., 1., 1., 1., 0., 0., 0., 0.], &Device::Cpu)?;
    let mut svi = Svi::new(coin, coin_guide, Adam::new(0.005), TraceElbo::default()).seed(0);
    let mut hand = Hand::new()?;
    for _ in 0..300 {
        black_box(svi.step(&x)?);
        black_box(hand.step(&x)?);
    }
    let (reps, n) = (21, 400);
    let (mut ppl_us, mut hand_us) = (Vec::new(), Vec::new());
    let (mut ppl_cpu, mut hand_cpu) = (0.0, 0.0);
    for _ in 0..reps {
        let (t, c) = (Instant::now(), thread_cpu_secs());
        for _ in 0..n {
            black_box(svi.step(&x)?);
        }
        ppl_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        ppl_cpu += thread_cpu_secs().zip(c).map_or(0.0, |(b, a)| b - a);
        let (t, c) = (Instant::now(), thread_cpu_secs());
        for _ in 0..n {
            black_box(hand.step(&x)?);
        }
        hand_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        hand_cpu += thread_cpu_secs().zip(c).map_or(0.0, |(b, a)| b - a);
    }
    let (p, h) = (median(ppl_us), median(hand_us));
    println!("svi coin: ppl {p:.1} us, hand {h:.1} us, ppl/hand {:.2}", p / h);
    let steps = (reps * n) as f64;
    eprintln!(
        "# thread cpu time per step: ppl {:.1} us, hand {:.1} us (wall time exceeds it when the machine is loaded)",
        ppl_cpu * 1e6 / steps,
        hand_cpu * 1e6 / steps
    );
    svi_autoguide::run()?;
    svi_graph::run()?;
    svi_enum::run()
}
