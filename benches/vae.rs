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
//! ppl/hand 1.03, ppl/naive 0.21`. Data: random binary images (pixel probability 0.13, as
//! MNIST's mean) from a fixed seed. The binary uses mimalloc as its global allocator (see
//! `ppl::nn`'s docs on allocation; build with `VAE_SYSTEM_ALLOC=1` for the system allocator);
//! run with `VAE_STEPS=n` to change the number of timed steps (default 20).
//!
//! Each configuration also reports (on stderr) the process's CPU time per update, which a busy
//! shared machine disturbs much less than wall time (use `VAE_STEPS=200` or more: the kernel
//! counts it in 10 ms ticks).

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Milliseconds of each of `n` calls of `f`.
fn time(n: usize, mut f: impl FnMut() -> Result<f64>) -> Result<Vec<f64>> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let loss = f()?;
            assert!(loss.is_finite(), "non-finite loss");
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// CPU time of the whole process (all threads, user + system) in milliseconds, from
/// `/proc/self/stat` (Linux; 0 elsewhere): on a shared machine it moves far less than wall time.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    // Clock ticks are 1/100 s on Linux (`getconf CLK_TCK`).
    f.iter().sum::<f64>() * 10.0
}

fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn main() -> Result<()> {
    let steps: usize = std::env::var("VAE_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let x = data(0)?;
    for (z, h) in [(10, 400), (30, 400), (10, 2000), (30, 2000)] {
        let nets = std::rc::Rc::new(Networks::new(z, h)?);
        let (nm, ng) = (nets.clone(), nets.clone());
        let mut svi = Svi::new(move |x: &Tensor| model(&nm, x, z), move |x: &Tensor| guide(&ng, x), Adam::new(LR), TraceElbo::default()).seed(1);
        let mut ppl_step = || svi.step(&x);
        let mut hand = Hand::new(z, h, 1);
        let mut naive = Naive::new(z, h)?;
        // Warm up (parameters and optimizer state created, allocator pools filled).
        for _ in 0..3 {
            ppl_step()?;
            hand.step(&x)?;
            naive.step(&x)?;
        }
        let rss0 = rss_mb();
        // Interleaved rounds, so that drifts of the machine hit every variant alike.
        let (mut tp, mut th, mut tn) = (vec![], vec![], vec![]);
        let mut cpu = [0.0; 3];
        let rounds = 4;
        let per = steps.div_ceil(rounds);
        for _ in 0..rounds {
            let c = cpu_ms();
            tp.extend(time(per, &mut ppl_step)?);
            let c1 = cpu_ms();
            th.extend(time(per, || hand.step(&x))?);
            let c2 = cpu_ms();
            tn.extend(time(per, || Ok(naive.step(&x)?))?);
            let c3 = cpu_ms();
            for (acc, d) in cpu.iter_mut().zip([c1 - c, c2 - c1, c3 - c2]) {
                *acc += d / (per * rounds) as f64;
            }
        }
        let (p, hd, n) = (median(tp), median(th), median(tn));
        println!("vae z={z} h={h}: ppl {p:.1} ms, hand {hd:.1} ms, naive {n:.1} ms, ppl/hand {:.2}, ppl/naive {:.2}", p / hd, p / n);
        eprintln!(
            "  (CPU time per update, all threads, 10 ms ticks: ppl {:.1} ms, hand {:.1} ms, naive {:.1} ms, ppl/hand {:.2}; resident memory {rss0:.0} MB after warm-up, {:.0} MB after the timed steps)",
            cpu[0],
            cpu[1],
            cpu[2],
            cpu[0] / cpu[1],
            rss_mb()
        );
    }
    Ok(())
}
