//! The Deep Markov Model of Krishnan, Shalit and Sontag (2017) on Bach's chorales — the second
//! model of the Pyro paper (Bingham et al. 2019, Figure 4), after Pyro's `examples/dmm.py`.
//!
//! Model: a latent Markov chain `z_1..z_T` (`z_t ~ Normal(loc, scale)` from a *gated transition*
//! network of `z_{t-1}`) emits 88-key piano rolls `x_t ~ Bernoulli(emitter(z_t))`. Guide: a GRU
//! runs backwards over each sequence; a *combiner* maps `(z_{t-1}, h_t)` to the posterior
//! `q(z_t | z_{t-1}, x_{t:T})`, optionally followed by `--num-iafs` inverse autoregressive flows.
//! Sequences of a mini-batch have unequal lengths: their padded steps are masked out of every
//! site and of the GRU. Training: SVI with `TraceElbo`, `ClippedAdam`, KL annealing (the `z`
//! sites scaled by an annealing factor rising from `--minimum-annealing-factor` to 1 over
//! `--annealing-epochs`). Reported: the training ELBO per epoch and the test ELBO every
//! `--eval-every` epochs, both in nats per time step (the paper's unit: −6.93 with no IAF,
//! −6.82 with one, −6.80 with two, after 5000 epochs on Boulanger-Lewandowski's files).
//!
//! Differences from Pyro's example: the guide's RNN is a GRU (Pyro's is a ReLU RNN) whose padded
//! steps are masked instead of packed; the emissions of all steps are observed at one site inside
//! a `time` plate (one batched emitter pass; the same joint density as Pyro's site per step); the
//! IAF draw is recorded as a `Delta` carrying its log-density (as `AutoIafNormal` does), which
//! avoids the flow's inverse; the data are the chorales of the music21 corpus (see
//! `data/README.md`), not Boulanger-Lewandowski's pickles.
//!
//! Run: `cargo run --release --example dmm -- --num-iafs 1 --epochs 100 --checkpoint dmm1.st`
//! (add `--resume` to continue from the checkpoint).

use clap::Parser;
use ppl::datasets::{Chorale, JsbChorales, PIANO_KEYS, SequenceBatch};
use ppl::infer::autoguide::Made;
use ppl::nn::{Activation, Direction, Gru, Linear, Mlp};
use ppl::prelude::*;
use ppl::rng::Rng;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[cfg(not(test))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trains a Deep Markov Model on the JSB chorales and reports the test ELBO per time step.
#[derive(Parser, Debug, Clone)]
#[command(name = "dmm", about = "Deep Markov Model with optional IAF guide on Bach chorales (Pyro's examples/dmm.py)")]
pub struct Args {
    /// Inverse autoregressive flows after the guide's Normal at each step (0, 1 or 2).
    #[arg(long, default_value_t = 0)]
    pub num_iafs: usize,
    /// Training epochs (passes over the training chorales).
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Chorales per mini-batch.
    #[arg(long, default_value_t = 20)]
    pub batch_size: usize,
    /// ClippedAdam learning rate.
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// ClippedAdam beta1.
    #[arg(long, default_value_t = 0.96)]
    pub beta1: f64,
    /// ClippedAdam beta2.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    /// ClippedAdam: each gradient element is clamped to ±clip_norm.
    #[arg(long, default_value_t = 10.0)]
    pub clip_norm: f64,
    /// ClippedAdam learning-rate decay per step.
    #[arg(long, default_value_t = 0.99996)]
    pub lrd: f64,
    /// ClippedAdam L2 penalty.
    #[arg(long, default_value_t = 2.0)]
    pub weight_decay: f64,
    /// Epochs over which the KL annealing factor rises to 1 (0: no annealing).
    #[arg(long, default_value_t = 1000)]
    pub annealing_epochs: usize,
    /// The annealing factor at the start.
    #[arg(long, default_value_t = 0.2)]
    pub minimum_annealing_factor: f64,
    /// Latent dimension.
    #[arg(long, default_value_t = 100)]
    pub z_dim: usize,
    /// Hidden units of the emitter.
    #[arg(long, default_value_t = 100)]
    pub emission_dim: usize,
    /// Hidden units of the gated transition.
    #[arg(long, default_value_t = 200)]
    pub transition_dim: usize,
    /// State size of the guide's GRU.
    #[arg(long, default_value_t = 600)]
    pub rnn_dim: usize,
    /// Hidden units of each IAF's MADE.
    #[arg(long, default_value_t = 100)]
    pub iaf_dim: usize,
    /// Mini-batches of similar lengths: chorales sorted by length in buckets of this many steps
    /// (random within a bucket) before cutting into batches; 0 = Pyro's plain shuffle (more padding).
    #[arg(long, default_value_t = 8)]
    pub bucket: usize,
    /// Evaluate the test ELBO every this many epochs (and after the last).
    #[arg(long, default_value_t = 5)]
    pub eval_every: usize,
    /// Checkpoint file (safetensors), written after every evaluation and at the end.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from `--checkpoint` (its step count decides the epoch to resume at).
    #[arg(long)]
    pub resume: bool,
    /// Use only the first N training chorales (0: all).
    #[arg(long, default_value_t = 0)]
    pub train_limit: usize,
    /// Use only the first N test chorales (0: all).
    #[arg(long, default_value_t = 0)]
    pub test_limit: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tiny settings (8 training chorales cut to 24 steps, small networks, at most 10 epochs, learning rate 0.01) for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Training ELBO per time step (nats; annealed, as optimized) of each epoch run.
    pub train_elbo: Vec<f64>,
    /// `(epoch, test ELBO per time step)` at each evaluation (annealing factor 1).
    pub test_elbo: Vec<(usize, f64)>,
    /// Wall time of each epoch run (training steps only).
    pub epoch_times: Vec<Duration>,
    /// The epoch training started at (0, or the resumed checkpoint's).
    pub start_epoch: usize,
    /// Chorales and time steps in the training and test sets used.
    pub n_train: (usize, usize),
    /// See `n_train`.
    pub n_test: (usize, usize),
}

/// The networks' sizes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    z: usize,
    emission: usize,
    transition: usize,
    rnn: usize,
    iaf: usize,
    num_iafs: usize,
}

/// A mini-batch and its KL annealing factor: the argument of model and guide.
pub struct Batch {
    seqs: SequenceBatch,
    annealing: f64,
}

/// The gated transition `p(z_t | z_{t-1})` (Pyro's `GatedTransition`).
struct GatedTransition {
    gate: Mlp,
    proposed_mean: Mlp,
    z_to_loc: Linear,
    sig: Linear,
}

impl GatedTransition {
    fn new(d: Dims) -> Result<Self> {
        Ok(GatedTransition {
            gate: Mlp::new("trans.gate", &[d.z, d.transition, d.z])?.output_activation(Activation::Sigmoid),
            proposed_mean: Mlp::new("trans.proposed_mean", &[d.z, d.transition, d.z])?,
            z_to_loc: Linear::new("trans.z_to_loc", d.z, d.z),
            sig: Linear::new("trans.sig", d.z, d.z),
        })
    }

    /// Creates `z_to_loc` as the identity map (Pyro's initialisation) if it does not exist yet.
    fn init_identity(&self, z: usize, dtype: DType, device: &Device) -> Result<()> {
        let eye = || -> Result<Tensor> { Ok(Tensor::eye(z, dtype, device)?) };
        ppl::param_with("trans.z_to_loc.weight", ppl::site::ParamInit::lazy(eye), ParamOptions::default())?;
        let zeros = || -> Result<Tensor> { Ok(Tensor::zeros(z, dtype, device)?) };
        ppl::param_with("trans.z_to_loc.bias", ppl::site::ParamInit::lazy(zeros), ParamOptions::default())?;
        Ok(())
    }

    /// `(loc, scale)` of `z_t` given `z_{t-1}` `[B, z]`.
    fn forward(&self, z_prev: &Tensor) -> Result<(Tensor, Tensor)> {
        let gate = self.gate.forward(z_prev)?;
        let proposed = self.proposed_mean.forward(z_prev)?;
        let lin = self.z_to_loc.forward(z_prev)?;
        let loc = (&lin + gate.mul(&(&proposed - &lin)?)?)?;
        let scale = ppl::nn::softplus(&self.sig.forward(&proposed.relu()?)?)?;
        Ok((loc, scale))
    }
}

/// The guide's `q(z_t | z_{t-1}, h_t)` (Pyro's `Combiner`).
struct Combiner {
    z_to_hidden: Linear,
    hidden_to_loc: Linear,
    hidden_to_scale: Linear,
}

impl Combiner {
    fn new(d: Dims) -> Self {
        Combiner {
            z_to_hidden: Linear::new("comb.z_to_hidden", d.z, d.rnn),
            hidden_to_loc: Linear::new("comb.hidden_to_loc", d.rnn, d.z),
            hidden_to_scale: Linear::new("comb.hidden_to_scale", d.rnn, d.z),
        }
    }

    fn forward(&self, z_prev: &Tensor, h_rnn: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = ((ppl::nn::tanh(&self.z_to_hidden.forward(z_prev)?)? + h_rnn)? * 0.5)?;
        Ok((self.hidden_to_loc.forward(&h)?, ppl::nn::softplus(&self.hidden_to_scale.forward(&h)?)?))
    }
}

/// The DMM's networks, shared by model and guide.
struct Dmm {
    d: Dims,
    trans: GatedTransition,
    emitter: Mlp,
    combiner: Combiner,
    rnn: Gru,
}

impl Dmm {
    fn new(d: Dims) -> Result<Self> {
        Ok(Dmm {
            d,
            trans: GatedTransition::new(d)?,
            emitter: Mlp::new("emitter", &[d.z, d.emission, d.emission, PIANO_KEYS])?,
            combiner: Combiner::new(d),
            rnn: Gru::new("rnn", PIANO_KEYS, d.rnn),
        })
    }

    fn zeros_param(name: &str, n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let zeros = || -> Result<Tensor> { Ok(Tensor::zeros(n, dtype, device)?) };
        ppl::param_with(name, ppl::site::ParamInit::lazy(zeros), ParamOptions::default())
    }

    /// p(x_{1:T}, z_{1:T}): sequential latent chain, emissions batched over time.
    fn model(&self, b: &Batch) -> Result<()> {
        let (x, mask) = (&b.seqs.x, &b.seqs.mask);
        let (bs, t_max) = (b.seqs.batch_size(), b.seqs.max_len());
        let (dtype, device) = (x.dtype(), x.device());
        self.trans.init_identity(self.d.z, dtype, device)?;
        let z0 = Self::zeros_param("z_0", self.d.z, dtype, device)?;
        ppl::plate("sequences", bs, |_| {
            let mut z_prev = z0.unsqueeze(0)?.broadcast_as((bs, self.d.z))?.contiguous()?;
            let mut zs = Vec::with_capacity(t_max);
            for t in 0..t_max {
                let (loc, scale) = self.trans.forward(&z_prev)?;
                let m_t = mask.narrow(1, t, 1)?.squeeze(1)?;
                let z_t = handlers::scale(b.annealing, || {
                    ppl::sample_with(format!("z_{}", t + 1), Normal::new(&loc, &scale)?.to_event(1)?, SampleOptions::new().mask(&m_t))
                })?;
                zs.push(z_t.clone());
                z_prev = z_t;
            }
            // All emissions at once: [T, B, 88] under a time plate (dim −2).
            let z = Tensor::stack(&zs, 0)?;
            let logits = self.emitter.forward(&z)?;
            let x_tb = x.transpose(0, 1)?.contiguous()?;
            let m_tb = mask.t()?.contiguous()?;
            ppl::plate("time", t_max, |_| {
                ppl::sample_with("obs_x", Bernoulli::from_logits(&logits)?.to_event(1)?, SampleOptions::new().obs(&x_tb).mask(&m_tb))
                    .map(|_| ())
            })
        })
    }

    /// q(z_{1:T} | x_{1:T}): a backwards GRU, the combiner and optional IAFs at each step.
    fn guide(&self, b: &Batch) -> Result<()> {
        let (x, mask) = (&b.seqs.x, &b.seqs.mask);
        let (bs, t_max) = (b.seqs.batch_size(), b.seqs.max_len());
        let (dtype, device) = (x.dtype(), x.device());
        let h0 = Self::zeros_param("h_0", self.d.rnn, dtype, device)?;
        let zq0 = Self::zeros_param("z_q_0", self.d.z, dtype, device)?;
        let hs = self.rnn.forward(x, &h0, Direction::Backward, Some(mask))?;
        let zeros = Tensor::zeros(self.d.z, dtype, device)?;
        let iafs: Vec<Made> = (0..self.d.num_iafs)
            .map(|k| Made::from_store(&format!("iaf{k}"), self.d.z, &[self.d.iaf], k % 2 == 1, &zeros))
            .collect::<Result<_>>()?;
        let std_normal = Normal::new(0f32, 1f32)?;
        ppl::plate("sequences", bs, |_| {
            let mut z_prev = zq0.unsqueeze(0)?.broadcast_as((bs, self.d.z))?.contiguous()?;
            for t in 0..t_max {
                let h_t = hs.narrow(1, t, 1)?.squeeze(1)?;
                let (loc, scale) = self.combiner.forward(&z_prev, &h_t)?;
                let m_t = mask.narrow(1, t, 1)?.squeeze(1)?;
                let name = format!("z_{}", t + 1);
                let z_t = handlers::scale(b.annealing, || {
                    let opts = SampleOptions::new().mask(&m_t);
                    if iafs.is_empty() {
                        return ppl::sample_with(name, Normal::new(&loc, &scale)?.to_event(1)?, opts);
                    }
                    // z = flows(loc + scale ⊙ ε); log q(z) = log N(ε) − Σ log scale − Σ_k Σ s_k.
                    let eps = ppl::runtime::with_rng(|r| r.normal_tensor(&[bs, self.d.z], dtype, device))?;
                    let mut log_q = (std_normal.log_prob(&eps)?.sum(1)? - scale.log()?.sum(1)?)?;
                    let mut z = (&loc + scale.mul(&eps)?)?;
                    for made in &iafs {
                        let (y, log_det) = made.flow(&z)?;
                        z = y;
                        log_q = (log_q - log_det)?;
                    }
                    ppl::sample_with(name, Delta::new(&z, &log_q, 1)?, opts)
                })?;
                z_prev = z_t;
            }
            Ok(())
        })
    }
}

/// The KL annealing factor at a step (Pyro's schedule: linear in the mini-batch count).
fn annealing_factor(args: &Args, epoch: usize, batch: usize, n_batches: usize) -> f64 {
    if args.annealing_epochs == 0 || epoch >= args.annealing_epochs {
        return 1.0;
    }
    let min = args.minimum_annealing_factor;
    min + (1.0 - min) * (batch + epoch * n_batches + 1) as f64 / (args.annealing_epochs * n_batches) as f64
}

/// Shuffles `v` in place (Fisher–Yates).
fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = ((rng.uniform_open01() * (i + 1) as f64) as usize).min(i);
        v.swap(i, j);
    }
}

/// The epoch's mini-batches (indices into `train`), fixed per (seed, epoch): a shuffle of the
/// chorales cut into batches, or with `bucket > 0`, the shuffled chorales stably sorted by
/// `length / bucket` before cutting (similar lengths together, so little padding), and the
/// batches' order shuffled.
fn batches(train: &[Chorale], batch_size: usize, seed: u64, epoch: usize, bucket: usize) -> Vec<Vec<usize>> {
    let mut rng = Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64);
    let mut idx: Vec<usize> = (0..train.len()).collect();
    shuffle(&mut idx, &mut rng);
    if bucket > 0 {
        idx.sort_by_key(|&i| train[i].len() / bucket);
    }
    let mut out: Vec<Vec<usize>> = idx.chunks(batch_size).map(<[usize]>::to_vec).collect();
    shuffle(&mut out, &mut rng);
    out
}

/// Trains (or resumes) and evaluates.
pub fn run(args: &Args) -> Result<Report> {
    if args.num_iafs > 2 {
        return Err(Error::invalid_arg("dmm", "--num-iafs", format!("must be 0, 1 or 2, got {}", args.num_iafs)));
    }
    if args.batch_size == 0 || args.eval_every == 0 {
        return Err(Error::invalid_arg("dmm", "--batch-size/--eval-every", "must be at least 1"));
    }
    if !(0.0..=1.0).contains(&args.minimum_annealing_factor) {
        return Err(Error::invalid_arg(
            "dmm",
            "--minimum-annealing-factor",
            format!("must be in [0, 1], got {}", args.minimum_annealing_factor),
        ));
    }
    if args.resume && args.checkpoint.is_none() {
        return Err(Error::invalid_arg("dmm", "--resume", "needs --checkpoint FILE to resume from"));
    }
    let device = Device::Cpu;
    let _validation = ppl::defaults::set_validation(false);
    let data = JsbChorales::load()?;
    let (mut train, mut test): (Vec<Chorale>, Vec<Chorale>) = (data.train, data.test);
    let mut lr = args.lr;
    let (mut d, mut epochs, mut batch_size) = (
        Dims {
            z: args.z_dim,
            emission: args.emission_dim,
            transition: args.transition_dim,
            rnn: args.rnn_dim,
            iaf: args.iaf_dim,
            num_iafs: args.num_iafs,
        },
        args.epochs,
        args.batch_size,
    );
    if args.train_limit > 0 {
        train.truncate(args.train_limit);
    }
    if args.test_limit > 0 {
        test.truncate(args.test_limit);
    }
    if args.smoke {
        train.truncate(8);
        test.truncate(4);
        for c in train.iter_mut().chain(test.iter_mut()) {
            c.steps.truncate(24);
        }
        d = Dims { z: 8, emission: 16, transition: 16, rnn: 16, iaf: 16, num_iafs: args.num_iafs };
        epochs = args.epochs.min(10);
        batch_size = 4;
        lr = 0.01;
    }
    let steps_of = |s: &[Chorale]| s.iter().map(Chorale::len).sum::<usize>();
    let (train_steps, test_steps) = (steps_of(&train), steps_of(&test));
    // Test chorales in order of length, so that batches pad little.
    let mut test_sorted: Vec<&Chorale> = test.iter().collect();
    test_sorted.sort_by_key(|c| c.len());
    let test_batches: Vec<Batch> = test_sorted
        .chunks(batch_size)
        .map(|c| Ok(Batch { seqs: SequenceBatch::new(c, &device)?, annealing: 1.0 }))
        .collect::<Result<_>>()?;

    let dmm = std::rc::Rc::new(Dmm::new(d)?);
    let (dm, dg) = (dmm.clone(), dmm.clone());
    let optim = ClippedAdam::with_config(ClippedAdamConfig {
        lr,
        betas: (args.beta1, args.beta2),
        clip_norm: args.clip_norm,
        lrd: args.lrd,
        weight_decay: args.weight_decay,
        ..Default::default()
    });
    let mut svi = Svi::new(move |b: &Batch| dm.model(b), move |b: &Batch| dg.guide(b), optim, TraceElbo::default()).seed(args.seed);

    let n_batches = train.len().div_ceil(batch_size);
    let mut start_epoch = 0;
    if args.resume {
        let path = args.checkpoint.as_ref().expect("checked above");
        svi.load(path, &device)?;
        start_epoch = svi.step_count() as usize / n_batches.max(1);
    }
    let evaluate = |svi: &mut Svi<Batch>| -> Result<f64> {
        let mut loss = 0.0;
        for b in &test_batches {
            loss += svi.evaluate_loss(b)?;
        }
        Ok(-loss / test_steps as f64)
    };
    let mut report = Report {
        train_elbo: Vec::new(),
        test_elbo: Vec::new(),
        epoch_times: Vec::new(),
        start_epoch,
        n_train: (train.len(), train_steps),
        n_test: (test.len(), test_steps),
    };
    let quiet = args.smoke;
    for epoch in start_epoch..epochs {
        let order = batches(&train, batch_size, args.seed, epoch, args.bucket);
        let bar = if quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(n_batches as u64) };
        if let Ok(style) = indicatif::ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} train ELBO {msg} [{elapsed_precise}]") {
            bar.set_style(style);
        }
        bar.set_prefix(format!("{}", epoch + 1));
        let start = Instant::now();
        let (mut loss, mut seen) = (0.0, 0usize);
        for (i, chunk) in order.iter().enumerate() {
            let seqs: Vec<&Chorale> = chunk.iter().map(|&j| &train[j]).collect();
            let batch = Batch { seqs: SequenceBatch::new(&seqs, &device)?, annealing: annealing_factor(args, epoch, i, n_batches) };
            loss += svi.step(&batch)?;
            seen += batch.seqs.lengths.iter().sum::<usize>();
            bar.inc(1);
            bar.set_message(format!("{:.4}", -loss / seen as f64));
        }
        bar.finish_and_clear();
        let time = start.elapsed();
        report.epoch_times.push(time);
        report.train_elbo.push(-loss / train_steps as f64);
        let mut line = format!("epoch {:>4}  train ELBO {:>8.4} nats/step  ({:.1} s)", epoch + 1, -loss / train_steps as f64, time.as_secs_f64());
        if (epoch + 1) % args.eval_every == 0 || epoch + 1 == epochs {
            let e = evaluate(&mut svi)?;
            report.test_elbo.push((epoch + 1, e));
            line.push_str(&format!("  test ELBO {e:>8.4} nats/step"));
            if let Some(path) = &args.checkpoint {
                svi.save(path)?;
            }
        }
        if !quiet {
            println!("{line}");
        }
    }
    if let Some(path) = &args.checkpoint {
        svi.save(path)?;
    }
    Ok(report)
}

fn print(args: &Args, r: &Report) {
    let mean_time = r.epoch_times.iter().map(Duration::as_secs_f64).sum::<f64>() / r.epoch_times.len().max(1) as f64;
    println!(
        "\nDMM, {} IAF(s): {} training chorales ({} steps), {} test chorales ({} steps); epochs {}..{}; {:.1} s per epoch",
        args.num_iafs,
        r.n_train.0,
        r.n_train.1,
        r.n_test.0,
        r.n_test.1,
        r.start_epoch + 1,
        r.start_epoch + r.epoch_times.len(),
        mean_time
    );
    if let Some((epoch, e)) = r.test_elbo.last() {
        let paper = [-6.93, -6.82, -6.80][args.num_iafs.min(2)];
        println!("test ELBO after epoch {epoch}: {e:.4} nats per time step (Pyro paper, 5000 epochs: {paper})");
    }
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            print(&args, &r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
