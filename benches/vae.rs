//! The VAE of the Pyro paper (784 inputs, batch 128, MLP encoder and decoder with softplus
//! hidden layers, Bernoulli likelihood, Trace ELBO, Adam), milliseconds per update for:
//!
//! - `ppl`: `Svi` + `TraceElbo` + `Adam` over a model and guide written with `ppl::nn`;
//! - `hand`: the same math hand-written with ppl's kernels (`nn::linear`, `nn::softplus`, the
//!   fused log-densities, ppl's fused `Adam` over a `ParamStore`) but no PPL: no handlers, no
//!   traces;
//! - `naive`: plain Candle (`candle_nn::Linear`, composed ops, `candle_nn::AdamW` with no
//!   weight decay, i.e. Adam).
//!
//! One line per configuration: `vae z=10 h=400: ppl 9.8 ms, hand 9.5 ms, naive 47.0 ms,
//! ppl/hand 1.03, ppl/naive 0.21`, then indented detail lines. Times are medians of per-step
//! wall times; `ppl/hand` is the median of the per-round ratios (each ppl step over the hand step
//! of its round), which load drifts disturb less than the ratio of the two medians (also given).
//! Data: random binary images (pixel probability 0.13, as MNIST's mean) from a fixed seed. The
//! binary uses mimalloc as its global allocator (see `ppl::nn`'s docs on allocation; build with
//! `VAE_SYSTEM_ALLOC=1` for the system allocator).
//!
//! Measurement, made for a shared machine: after 5 warm-up steps of each variant, `ppl` and
//! `hand` alternate step by step in alternating order (ppl, hand, hand, ppl, ...),
//! so that load changes and order effects hit both alike: 500 rounds at h = 400, 150 at h = 2000
//! (`VAE_STEPS=n` rounds instead), then `naive` alone for a quarter as many steps (its Candle
//! thread pool spins after its ops and would slow the step after it); about a minute on an idle
//! 2-core machine.
//! The detail lines give a distribution-free 95% confidence interval of `ppl/hand`, that median
//! split by which variant went first, each variant's time by its predecessor, quartiles, and
//! each variant's process CPU time per step (all threads, `CLOCK_PROCESS_CPUTIME_ID`), which a
//! busy machine disturbs less than wall time. `RAYON_NUM_THREADS=1` measures one thread.
//! `VAE_CONFIGS=10x400,30x2000` picks configurations; `VAE_ONLY=ppl|hand|naive` runs one
//! variant alone (for profilers).

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Optimizer as _, ParamsAdamW, VarBuilder, VarMap};
use ppl::dist::{Bernoulli, DistributionExt, Normal};
use ppl::infer::{Svi, TraceElbo};
use ppl::nn::{self, Activation, Linear, Mlp, fused};
use ppl::optim::{Adam, Optimizer};
use ppl::rng::Rng;
use ppl::{ParamStore, Result};
use std::time::Instant;

/// mimalloc, unless the bench was built with `VAE_SYSTEM_ALLOC=1` in the environment (then the
/// system's malloc, to measure what the allocator is worth; glibc's thresholds can then be
/// raised at run time with `GLIBC_TUNABLES`).
struct BenchAlloc;

const SYSTEM_ALLOC: bool = option_env!("VAE_SYSTEM_ALLOC").is_some();

// SAFETY: every call is forwarded to one allocator, fixed at compile time, so each block is
// freed by the allocator that made it.
unsafe impl std::alloc::GlobalAlloc for BenchAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        unsafe { if SYSTEM_ALLOC { std::alloc::System.alloc(l) } else { mimalloc::MiMalloc.alloc(l) } }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        unsafe { if SYSTEM_ALLOC { std::alloc::System.alloc_zeroed(l) } else { mimalloc::MiMalloc.alloc_zeroed(l) } }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        unsafe { if SYSTEM_ALLOC { std::alloc::System.dealloc(p, l) } else { mimalloc::MiMalloc.dealloc(p, l) } }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        unsafe { if SYSTEM_ALLOC { std::alloc::System.realloc(p, l, n) } else { mimalloc::MiMalloc.realloc(p, l, n) } }
    }
}

#[global_allocator]
static GLOBAL: BenchAlloc = BenchAlloc;

const BATCH: usize = 128;
const PIXELS: usize = 784;
const LR: f64 = 1e-3;

fn data(seed: u64) -> Result<Tensor> {
    let mut rng = Rng::seed_from_u64(seed);
    let u = rng.uniform_tensor(&[BATCH, PIXELS], DType::F32, &Device::Cpu)?;
    Ok(u.lt(0.13)?.to_dtype(DType::F32)?)
}

// ---------------------------------------------------------------------------------------------
// ppl: model and guide with ppl::nn layers, Svi.

struct Networks {
    enc: Mlp,
    enc_loc: Linear,
    enc_scale: Linear,
    dec: Mlp,
}

impl Networks {
    fn new(z: usize, h: usize) -> Result<Networks> {
        Ok(Networks {
            enc: Mlp::new("encoder.fc1", &[PIXELS, h])?.output_activation(Activation::Softplus),
            enc_loc: Linear::new("encoder.fc21", h, z),
            enc_scale: Linear::new("encoder.fc22", h, z),
            dec: Mlp::new("decoder", &[z, h, PIXELS])?.hidden_activation(Activation::Softplus),
        })
    }
}

fn model(nets: &Networks, x: &Tensor, z_dim: usize) -> Result<()> {
    ppl::plate("data", BATCH, |_| {
        let zeros = Tensor::zeros((BATCH, z_dim), DType::F32, &Device::Cpu)?;
        let prior = Normal::new(&zeros, 1.0)?.to_event(1)?;
        let z = ppl::sample("z", prior)?;
        let logits = nets.dec.forward(&z)?;
        ppl::observe("x", Bernoulli::from_logits(&logits)?.to_event(1)?, x)?;
        Ok(())
    })
}

fn guide(nets: &Networks, x: &Tensor) -> Result<()> {
    ppl::plate("data", BATCH, |_| {
        let hid = nets.enc.forward(x)?;
        let loc = nets.enc_loc.forward(&hid)?;
        let scale = nets.enc_scale.forward(&hid)?.exp()?;
        ppl::sample("z", Normal::new(&loc, &scale)?.to_event(1)?)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// hand: the same step with ppl's kernels, no handlers and no traces.

struct Hand {
    store: ParamStore,
    adam: Adam,
    rng: Rng,
    z: usize,
    h: usize,
    layers: Vec<(Var, Var)>,
}

impl Hand {
    fn new(z: usize, h: usize, seed: u64) -> Hand {
        Hand { store: ParamStore::new(), adam: Adam::new(LR), rng: Rng::seed_from_u64(seed), z, h, layers: vec![] }
    }

    /// Layer `i` (created, in the order the ppl variant creates them, on first use).
    fn layer(&mut self, i: usize, name: &str, n_in: usize, n_out: usize) -> Result<(Tensor, Tensor)> {
        if self.layers.len() == i {
            let w = nn::init::linear_weight(&mut self.rng, n_in, n_out, DType::F32, &Device::Cpu)?;
            let b = nn::init::linear_bias(&mut self.rng, n_in, n_out, DType::F32, &Device::Cpu)?;
            self.store.set(&format!("{name}.weight"), &w, ppl::dist::Constraint::Real)?;
            self.store.set(&format!("{name}.bias"), &b, ppl::dist::Constraint::Real)?;
            let get = |n: String| self.store.get_unconstrained(&n).expect("just set");
            self.layers.push((get(format!("{name}.weight")), get(format!("{name}.bias"))));
        }
        let (w, b) = &self.layers[i];
        Ok((w.as_tensor().clone(), b.as_tensor().clone()))
    }

    fn step(&mut self, x: &Tensor) -> Result<f64> {
        let (z, h) = (self.z, self.h);
        let (w, b) = self.layer(0, "encoder.fc1.0", PIXELS, h)?;
        let hid = nn::softplus(&nn::linear(x, &w, Some(&b))?)?;
        let (w, b) = self.layer(1, "encoder.fc21", h, z)?;
        let loc = nn::linear(&hid, &w, Some(&b))?;
        let (w, b) = self.layer(2, "encoder.fc22", h, z)?;
        let scale = nn::linear(&hid, &w, Some(&b))?.exp()?;
        let eps = self.rng.normal_tensor(&[BATCH, z], DType::F32, &Device::Cpu)?;
        let zs = (&loc + (&scale * eps)?)?;
        let (w, b) = self.layer(3, "decoder.0", z, h)?;
        let hd = nn::softplus(&nn::linear(&zs, &w, Some(&b))?)?;
        let (w, b) = self.layer(4, "decoder.1", h, PIXELS)?;
        let logits = nn::linear(&hd, &w, Some(&b))?;
        let zero = Tensor::zeros(1, DType::F32, &Device::Cpu)?;
        let one = Tensor::ones(1, DType::F32, &Device::Cpu)?;
        let log_lik = fused::bernoulli_logits_log_prob(&logits, x, 1)?.sum_all()?;
        let log_prior = fused::normal_log_prob(&zs, &zero, &one, 1)?.sum_all()?;
        let log_q = fused::normal_log_prob(&zs, &loc, &scale, 1)?.sum_all()?;
        let loss = ((log_q - log_prior)? - log_lik)?;
        let grads = loss.backward()?;
        self.adam.step(&self.store, &grads)?;
        Ok(loss.to_scalar::<f32>()? as f64)
    }
}

// ---------------------------------------------------------------------------------------------
// naive: plain Candle.

struct Naive {
    fc1: candle_nn::Linear,
    fc21: candle_nn::Linear,
    fc22: candle_nn::Linear,
    dfc1: candle_nn::Linear,
    dfc2: candle_nn::Linear,
    opt: candle_nn::AdamW,
    z: usize,
}

fn softplus_ops(x: &Tensor) -> candle_core::Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

impl Naive {
    fn new(z: usize, h: usize) -> candle_core::Result<Naive> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let fc1 = candle_nn::linear(PIXELS, h, vb.pp("fc1"))?;
        let fc21 = candle_nn::linear(h, z, vb.pp("fc21"))?;
        let fc22 = candle_nn::linear(h, z, vb.pp("fc22"))?;
        let dfc1 = candle_nn::linear(z, h, vb.pp("dfc1"))?;
        let dfc2 = candle_nn::linear(h, PIXELS, vb.pp("dfc2"))?;
        let opt = candle_nn::AdamW::new(vars.all_vars(), ParamsAdamW { lr: LR, weight_decay: 0.0, ..Default::default() })?;
        Ok(Naive { fc1, fc21, fc22, dfc1, dfc2, opt, z })
    }

    fn step(&mut self, x: &Tensor) -> candle_core::Result<f64> {
        let hid = softplus_ops(&self.fc1.forward(x)?)?;
        let loc = self.fc21.forward(&hid)?;
        let scale = self.fc22.forward(&hid)?.exp()?;
        let eps = Tensor::randn(0f32, 1f32, (BATCH, self.z), &Device::Cpu)?;
        let zs = (&loc + (&scale * eps)?)?;
        let logits = self.dfc2.forward(&softplus_ops(&self.dfc1.forward(&zs)?)?)?;
        let log_lik = ((x * &logits)? - softplus_ops(&logits)?)?.sum_all()?;
        let log_prior = (zs.sqr()? * -0.5)?.sum_all()?;
        let zq = ((&zs - &loc)? / &scale)?;
        let log_q = ((zq.sqr()? * -0.5)? - scale.log()?)?.sum_all()?;
        // The 2π constants cancel between prior and guide.
        let loss = ((log_q - log_prior)? - log_lik)?;
        self.opt.backward_step(&loss)?;
        loss.to_scalar::<f32>().map(|v| v as f64)
    }
}

// ---------------------------------------------------------------------------------------------

fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

/// The `q`-quantile of `v` (the order statistic at rank `round(q·(n−1))`).
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A distribution-free ~95% confidence interval of the median of `v`: the order statistics at
/// ranks `n/2 ∓ 1.96·√n/2` (the binomial count of values below the median, normal approximation).
fn median_ci(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len() as f64;
    let half = 1.96 * n.sqrt() / 2.0;
    let lo = ((n / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n / 2.0 + half).ceil() as usize).min(v.len() - 1);
    (v[lo], v[hi])
}

/// CPU time of the whole process (all threads, user + system) in milliseconds, from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (nanosecond resolution; Linux only, 0 elsewhere): a
/// busy shared machine moves it far less than wall time.
#[cfg(target_os = "linux")]
fn cpu_ms() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec (two 64-bit fields on 64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 { ts.sec as f64 * 1e3 + ts.nsec as f64 * 1e-6 } else { 0.0 }
}

#[cfg(not(target_os = "linux"))]
fn cpu_ms() -> f64 {
    0.0
}

fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

/// Wall and CPU milliseconds of one call of `f`.
fn timed(f: impl FnOnce() -> Result<f64>) -> Result<(f64, f64)> {
    let (c, t) = (cpu_ms(), Instant::now());
    let loss = f()?;
    let wall = t.elapsed().as_secs_f64() * 1e3;
    assert!(loss.is_finite(), "non-finite loss");
    Ok((wall, cpu_ms() - c))
}

/// Per-step wall and CPU times of one variant.
#[derive(Default)]
struct Times {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Times {
    fn push(&mut self, (wall, cpu): (f64, f64)) {
        self.wall.push(wall);
        self.cpu.push(cpu);
    }
}

fn main() -> Result<()> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let steps_override: Option<usize> = env("VAE_STEPS").and_then(|s| s.parse().ok());
    // `VAE_ONLY=ppl|hand|naive`: run one variant alone (for profilers), no comparison printed.
    let only = env("VAE_ONLY");
    // `VAE_CONFIGS=10x400,30x2000`: a subset of the configurations.
    let configs: Vec<(usize, usize)> = match env("VAE_CONFIGS") {
        Some(list) => list
            .split(',')
            .filter_map(|c| c.split_once('x').and_then(|(z, h)| Some((z.trim().parse().ok()?, h.trim().parse().ok()?))))
            .collect(),
        None => vec![(10, 400), (30, 400), (10, 2000), (30, 2000)],
    };
    let x = data(0)?;
    for (z, h) in configs {
        let nets = std::rc::Rc::new(Networks::new(z, h)?);
        let (nm, ng) = (nets.clone(), nets.clone());
        let mut svi = Svi::new(move |x: &Tensor| model(&nm, x, z), move |x: &Tensor| guide(&ng, x), Adam::new(LR), TraceElbo::default()).seed(1);
        let mut hand = Hand::new(z, h, 1);
        let mut naive = Naive::new(z, h)?;
        // Timed steps of ppl and hand (naive: one every fourth round); about 20 s per
        // configuration on an idle 2-core machine.
        let steps = steps_override.unwrap_or(if h <= 400 { 500 } else { 150 });
        if let Some(which) = only.as_deref() {
            let mut t = Times::default();
            for i in 0..steps + 5 {
                let s = match which {
                    "ppl" => timed(|| svi.step(&x))?,
                    "hand" => timed(|| hand.step(&x))?,
                    _ => timed(|| Ok(naive.step(&x)?))?,
                };
                if i >= 5 {
                    t.push(s);
                }
            }
            println!("vae z={z} h={h}: {which} {:.2} ms (median of {steps} steps; CPU {:.2} ms)", median(&t.wall), median(&t.cpu));
            continue;
        }
        // Warm up (parameters and optimizer state created, allocator pools filled).
        for _ in 0..5 {
            naive.step(&x)?;
            svi.step(&x)?;
            hand.step(&x)?;
        }
        let rss0 = rss_mb();
        // ppl and hand alternate step by step, in alternating order (ppl, hand, hand, ppl, ...),
        // so that the machine's drifts and any order effect hit both alike; the ratio of their
        // medians is printed, and the median of the per-round ratios as a check. Each step's
        // predecessor is given too: ppl after ppl (even rounds) or after hand (odd rounds).
        let (mut tp, mut th, mut tn) = (Times::default(), Times::default(), Times::default());
        for round in 0..steps {
            if round % 2 == 0 {
                tp.push(timed(|| svi.step(&x))?);
                th.push(timed(|| hand.step(&x))?);
            } else {
                th.push(timed(|| hand.step(&x))?);
                tp.push(timed(|| svi.step(&x))?);
            }
        }
        // naive in a block of its own: Candle's thread pool keeps spinning for a while after its
        // ops, which slowed whichever step came next by ~0.5 ms at 2 threads (interleaved, it
        // always preceded a ppl step and inflated ppl/hand by ~2%).
        for _ in 0..steps.div_ceil(4) {
            tn.push(timed(|| Ok(naive.step(&x)?))?);
        }
        let (p, hd, n) = (median(&tp.wall), median(&th.wall), median(&tn.wall));
        let paired: Vec<f64> = tp.wall.iter().zip(&th.wall).map(|(a, b)| a / b).collect();
        println!("vae z={z} h={h}: ppl {p:.1} ms, hand {hd:.1} ms, naive {n:.1} ms, ppl/hand {:.2}, ppl/naive {:.2}", median(&paired), p / n);
        let (lo, hi) = median_ci(&paired);
        let (first, second): (Vec<f64>, Vec<f64>) = (paired.iter().step_by(2).copied().collect(), paired.iter().skip(1).step_by(2).copied().collect());
        let parity = |v: &[f64], even: bool| -> Vec<f64> { v.iter().skip(if even { 0 } else { 1 }).step_by(2).copied().collect() };
        println!(
            "  order: ppl/hand {:.3} in rounds ppl first, {:.3} hand first; ms: ppl after ppl {:.2}, after hand {:.2}; hand after ppl {:.2}, after hand {:.2}",
            median(&first),
            median(&second),
            median(&parity(&tp.wall, true)),
            median(&parity(&tp.wall, false)),
            median(&parity(&th.wall, true)),
            median(&parity(&th.wall, false)),
        );
        let (cp, ch) = (tp.cpu.iter().sum::<f64>() / steps as f64, th.cpu.iter().sum::<f64>() / steps as f64);
        println!(
            "  {steps} rounds: ppl/hand {:.3} (95% CI {lo:.3}–{hi:.3}), ratio of the medians {:.3}; wall quartiles ppl {:.2}–{:.2}, hand {:.2}–{:.2} ms",
            median(&paired),
            p / hd,
            quantile(&tp.wall, 0.25),
            quantile(&tp.wall, 0.75),
            quantile(&th.wall, 0.25),
            quantile(&th.wall, 0.75),
        );
        println!(
            "  CPU time per update (all threads): ppl {cp:.2} ms, hand {ch:.2} ms, ppl/hand {:.3}; naive {:.2} ms; resident memory {rss0:.0} MB after warm-up, {:.0} MB after",
            cp / ch,
            tn.cpu.iter().sum::<f64>() / tn.cpu.len().max(1) as f64,
            rss_mb()
        );
    }
    Ok(())
}
