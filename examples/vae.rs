//! The variational autoencoder of the Pyro paper (Bingham et al. 2019; Kingma & Welling 2014) on
//! real MNIST digits shipped with ppl (`data/mnist`: 9,000 training and 1,000 test images).
//!
//! - Model: `z ~ Normal(0, I)` (`--z-dim`), pixels `x ~ Bernoulli(logits = decoder(z))`, a plate
//!   over the images of a mini-batch.
//! - Guide: `z ~ Normal(loc(x), exp(log_scale(x)))`, amortized by the encoder network.
//! - Networks: MLPs with one softplus hidden layer of `--hidden` units (`ppl::nn::Mlp`, `Linear`).
//! - Inference: `Svi` with `TraceElbo` (one reparameterized particle) and `Adam`.
//!
//! Pixels are grey levels in `[0, 1]`; the Bernoulli likelihood needs 0/1 values, so each
//! training batch is binarized afresh (pixel = 1 with probability its grey level: "dynamic
//! binarization"); the test images are binarized once, with a fixed seed, for the test ELBO.
//!
//! Each epoch draws a progress bar (train loss) and then prints the test ELBO; the parameters and
//! optimizer state are saved after each epoch (`--resume` continues from them). At the end a PNG
//! grid shows test digits, their reconstructions (decoder mean at the encoder's mean) and digits
//! decoded from prior draws of `z`.
//!
//! Run: `cargo run --release --example vae` (add `--features cuda` and `--device cuda` for a GPU).

use clap::{Parser, ValueEnum};
use ppl::nn::{Activation, Linear, Mlp};
use ppl::Rng;
use ppl::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

// One copy per example binary; the test crate, which includes several examples, has several.
#[allow(clippy::duplicate_mod)]
#[path = "common/plot.rs"]
pub mod plot;

// glibc's malloc page-faults the large per-op buffers on every step (see `ppl::nn`'s docs). Not
// when the integration tests include this file: a test binary has its own allocator.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the tensors live.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// The first CUDA GPU (needs `--features cuda`).
    Cuda,
    /// The Apple GPU (needs `--features metal`).
    Metal,
}

/// The Pyro paper's VAE on MNIST: trains, reports the test ELBO, draws digits.
#[derive(Parser, Debug, Clone)]
#[command(name = "vae", about = "Variational autoencoder on MNIST (Pyro paper): Trace ELBO + Adam, PNG of reconstructions and samples")]
pub struct Args {
    /// Device: cpu, cuda or metal (the last two need ppl built with that feature).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Dimension of the latent code z.
    #[arg(long, default_value_t = 10)]
    pub z_dim: usize,
    /// Hidden units of the encoder and of the decoder.
    #[arg(long, default_value_t = 400)]
    pub hidden: usize,
    /// Images per SVI step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Epochs to train (more epochs after `--resume`).
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Adam learning rate (Pyro's example uses 1e-3 for 101 epochs of 60,000 digits; the
    /// default trains 15 epochs of 9,000, so it takes larger steps).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Random seed (initial weights, batches, binarization, latent draws).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A directory with the MNIST IDX files (`train-images-idx3-ubyte[.gz]`, ...); default: the
    /// 10,000 digits shipped in `data/mnist`.
    #[arg(long, value_name = "DIR")]
    pub mnist: Option<PathBuf>,
    /// Directory for the checkpoint and the pictures.
    #[arg(long, value_name = "DIR", default_value = "out/vae")]
    pub out: PathBuf,
    /// Continue from the checkpoint in `--out` (saved after every epoch) instead of starting afresh.
    #[arg(long)]
    pub resume: bool,
    /// Tiny settings for a quick check (small networks, 1,000 training images, 2 epochs).
    #[arg(long)]
    pub smoke: bool,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Mean training loss (−ELBO, nats per image) of each epoch of this run.
    pub train_loss: Vec<f64>,
    /// Test ELBO (nats per image) after each epoch of this run.
    pub test_elbo: Vec<f64>,
    /// Test ELBO before this run's first step (random networks, or the resumed checkpoint).
    pub test_elbo_start: f64,
    /// Mean loss of the first ten steps of this run (nats per image).
    pub first_steps_loss: f64,
    /// SVI steps taken in total, counting those of a resumed checkpoint.
    pub total_steps: u64,
    /// Training and test images used.
    pub n_train: usize,
    /// See `n_train`.
    pub n_test: usize,
    /// The PNG grid and its size in pixels.
    pub png: PathBuf,
    /// See `png`.
    pub png_size: (u32, u32),
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// The model's graph, Graphviz DOT.
    pub dot: PathBuf,
    /// Wall time of the training (excluding data loading and the picture).
    pub time: Duration,
}

/// The device named by `--device`, or a one-line error saying which feature it needs.
pub fn device(d: DeviceArg) -> Result<Device> {
    let needs = |feature: &str| {
        Error::invalid_arg(
            "vae",
            "--device",
            format!("this binary was built without GPU support; rebuild with `cargo run --release --features {feature} --example vae -- --device {feature}`"),
        )
    };
    match d {
        DeviceArg::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => Ok(Device::new_cuda(0)?),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => Err(needs("cuda")),
        #[cfg(feature = "metal")]
        DeviceArg::Metal => Ok(Device::new_metal(0)?),
        #[cfg(not(feature = "metal"))]
        DeviceArg::Metal => Err(needs("metal")),
    }
}

const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// The encoder and decoder (parameters live in the SVI's `ParamStore`, named as in Pyro's example).
pub struct Networks {
    enc: Mlp,
    enc_loc: Linear,
    enc_scale: Linear,
    dec: Mlp,
    z_dim: usize,
}

impl Networks {
    /// Encoder `784 → hidden (softplus) → (loc, log scale)`, decoder `z → hidden (softplus) → 784 logits`.
    pub fn new(z_dim: usize, hidden: usize) -> Result<Networks> {
        Ok(Networks {
            enc: Mlp::new("encoder.fc1", &[PIXELS, hidden])?.output_activation(Activation::Softplus),
            enc_loc: Linear::new("encoder.fc21", hidden, z_dim),
            enc_scale: Linear::new("encoder.fc22", hidden, z_dim),
            dec: Mlp::new("decoder", &[z_dim, hidden, PIXELS])?.hidden_activation(Activation::Softplus),
            z_dim,
        })
    }

    /// The guide's location and scale of `z` for images `x` `[n, 784]`.
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let hid = self.enc.forward(x)?;
        Ok((self.enc_loc.forward(&hid)?, self.enc_scale.forward(&hid)?.exp()?))
    }
}

/// p(z) p(x | z) for a batch `x` `[n, 784]` of 0/1 pixels.
fn model(nets: &Networks, x: &Tensor) -> Result<()> {
    let n = x.dim(0)?;
    ppl::plate("data", n, |_| {
        let zeros = Tensor::zeros((n, nets.z_dim), x.dtype(), x.device())?;
        let z = ppl::sample("z", Normal::new(&zeros, 1.0)?.to_event(1)?)?;
        let logits = nets.dec.forward(&z)?;
        ppl::observe("x", Bernoulli::from_logits(&logits)?.to_event(1)?, x)?;
        Ok(())
    })
}

/// q(z | x), amortized by the encoder.
fn guide(nets: &Networks, x: &Tensor) -> Result<()> {
    ppl::plate("data", x.dim(0)?, |_| {
        let (loc, scale) = nets.encode(x)?;
        ppl::sample("z", Normal::new(&loc, &scale)?.to_event(1)?)?;
        Ok(())
    })
}

/// 0/1 pixels, each 1 with probability its grey level.
fn binarize(x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let u = rng.uniform_tensor(x.dims(), x.dtype(), x.device())?;
    Ok(u.lt(x)?.to_dtype(x.dtype())?)
}

/// A uniformly random permutation of `0..n` (Fisher–Yates).
fn permutation(n: usize, rng: &mut Rng) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = ((rng.uniform_open01() * (i + 1) as f64) as usize).min(i);
        p.swap(i, j);
    }
    p
}

/// (epochs, hidden, z, batch, training images kept) after `--smoke`.
fn settings(args: &Args) -> (usize, usize, usize, usize, Option<usize>) {
    if args.smoke { (2, 64, 4, 100, Some(1000)) } else { (args.epochs, args.hidden, args.z_dim, args.batch_size, None) }
}

/// Test ELBO in nats per image (one particle per image), over chunks of 1,000 images.
fn test_elbo(svi: &mut Svi<Tensor>, test: &Tensor) -> Result<f64> {
    let n = test.dim(0)?;
    let mut total = 0.0;
    for start in (0..n).step_by(1000) {
        total -= svi.evaluate_loss(&test.narrow(0, start, (n - start).min(1000))?)?;
    }
    Ok(total / n as f64)
}

fn rows_of(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// Trains the VAE, writes the checkpoint and the PNG grid, and reports the losses.
pub fn run(args: &Args) -> Result<Report> {
    let (epochs, hidden, z_dim, batch, keep) = settings(args);
    for (flag, v) in [("--epochs", epochs), ("--hidden", hidden), ("--z-dim", z_dim), ("--batch-size", batch)] {
        if v == 0 {
            return Err(Error::invalid_arg("vae", flag, "must be at least 1"));
        }
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(Error::invalid_arg("vae", "--lr", format!("must be a positive number, got {}", args.lr)));
    }
    let device = device(args.device)?;
    let dir = args.mnist.clone().unwrap_or_else(|| ppl::datasets::data_dir().join("mnist"));
    let data = ppl::datasets::Mnist::load(&dir, &device).map_err(|e| match &args.mnist {
        Some(_) => Error::invalid_arg("vae", "--mnist", e.to_string()),
        None => e,
    })?;
    let mut train = data.train_images;
    if let Some(k) = keep {
        train = train.narrow(0, 0, k.min(train.dim(0)?))?;
    }
    if train.dim(1)? != PIXELS || data.test_images.dim(1)? != PIXELS {
        return Err(Error::invalid_arg("vae", "--mnist", format!("expected 28×28 images, got {} pixels per image", train.dim(1)?)));
    }
    let (n_train, n_test) = (train.dim(0)?, data.test_images.dim(0)?);
    if n_train == 0 || n_test == 0 {
        return Err(Error::invalid_arg("vae", "--mnist", "the training or test set is empty"));
    }
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io { path: args.out.display().to_string(), source })?;
    let checkpoint = args.out.join("checkpoint.safetensors");

    let mut rng = Rng::seed_from_u64(args.seed);
    let test = binarize(&data.test_images, &mut Rng::seed_from_u64(args.seed ^ 0x7e57))?;
    let nets = Rc::new(Networks::new(z_dim, hidden)?);
    let (nm, ng) = (nets.clone(), nets.clone());
    let mut svi = Svi::new(move |x: &Tensor| model(&nm, x), move |x: &Tensor| guide(&ng, x), Adam::new(args.lr), TraceElbo::default())
        .seed(args.seed);
    if args.resume {
        if !checkpoint.is_file() {
            return Err(Error::invalid_arg("vae", "--resume", format!("no checkpoint at `{}` (run once without --resume)", checkpoint.display())));
        }
        svi.load(&checkpoint, &device)?;
        let got = svi.params().get("decoder.0.weight")?.map(|w| w.dims().to_vec()).unwrap_or_default();
        if got != [z_dim, hidden] {
            return Err(Error::invalid_arg(
                "vae",
                "--resume",
                format!("`{}` holds a decoder of shape {got:?}, not [z-dim, hidden] = [{z_dim}, {hidden}]; pass the flags it was trained with", checkpoint.display()),
            ));
        }
        println!("Resumed from `{}` after {} steps.", checkpoint.display(), svi.step_count());
        // Different batches than the run that was resumed.
        rng = Rng::seed_from_u64(args.seed ^ svi.step_count());
    }
    let test_elbo_start = test_elbo(&mut svi, &test)?;

    println!(
        "MNIST: {n_train} training and {n_test} test digits from `{}`; z-dim {z_dim}, hidden {hidden}, batch {batch}, Adam lr {}, device {:?}.",
        dir.display(),
        args.lr,
        format!("{:?}", args.device).to_lowercase()
    );
    println!("Test ELBO {} training: {test_elbo_start:.1} nats per image.\n", if args.resume { "at the checkpoint, before" } else { "before" });
    println!("{:>5}  {:>12}  {:>12}  {:>7}", "epoch", "train loss", "test ELBO", "time");
    println!("{:>5}  {:>12}  {:>12}  {:>7}", "", "(nats/img)", "(nats/img)", "(s)");
    let steps_per_epoch = n_train.div_ceil(batch);
    let style = indicatif::ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} batches, loss {msg} nats/img [{elapsed}<{eta}]")
        .map_err(|e| Error::invalid_arg("vae", "progress bar", e.to_string()))?;
    let (mut train_loss, mut test_elbos, mut first) = (Vec::new(), Vec::new(), Vec::new());
    let start = Instant::now();
    for epoch in 1..=epochs {
        let t = Instant::now();
        let bar = indicatif::ProgressBar::new(steps_per_epoch as u64).with_style(style.clone()).with_prefix(format!("epoch {epoch}/{epochs}"))
            .with_message("-");
        let order = permutation(n_train, &mut rng);
        let mut sum = 0.0;
        for idx in order.chunks(batch) {
            let idx = Tensor::from_slice(idx, idx.len(), &device)?;
            let x = binarize(&train.index_select(&idx, 0)?, &mut rng)?;
            let loss = svi.step(&x)? / idx.dim(0)? as f64;
            if first.len() < 10 {
                first.push(loss);
            }
            sum += loss * idx.dim(0)? as f64;
            bar.set_message(format!("{loss:.1}"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        svi.save(&checkpoint)?;
        let elbo = test_elbo(&mut svi, &test)?;
        train_loss.push(sum / n_train as f64);
        test_elbos.push(elbo);
        println!("{epoch:>5}  {:>12.1}  {elbo:>12.1}  {:>7.1}", sum / n_train as f64, t.elapsed().as_secs_f64());
    }
    let time = start.elapsed();

    // The picture: 2 × 10 test digits with their reconstructions, and 20 digits from the prior.
    let cols = 10;
    let shown = data.test_images.narrow(0, 0, (2 * cols).min(n_test))?;
    let z_prior = rng.normal_tensor(&[2 * cols, z_dim], DType::F32, &device)?;
    let (recon, prior) = svi.params().scope(|| -> Result<_> {
        let (loc, _) = nets.encode(&shown)?;
        Ok((ppl::nn::sigmoid(&nets.dec.forward(&loc)?)?, ppl::nn::sigmoid(&nets.dec.forward(&z_prior)?)?))
    })?;
    let (shown, recon, prior) = (rows_of(&shown)?, rows_of(&recon)?, rows_of(&prior)?);
    let chunk = |v: &[Vec<f32>], i: usize| v.iter().skip(i * cols).take(cols).cloned().collect::<Vec<_>>();
    let rows = vec![
        ("test digits".to_string(), chunk(&shown, 0)),
        ("reconstructed".to_string(), chunk(&recon, 0)),
        ("test digits".to_string(), chunk(&shown, 1)),
        ("reconstructed".to_string(), chunk(&recon, 1)),
        ("from the prior".to_string(), chunk(&prior, 0)),
        ("from the prior".to_string(), chunk(&prior, 1)),
    ];
    let png = args.out.join("vae.png");
    let total_epochs = svi.step_count() as f64 / steps_per_epoch as f64;
    let title = format!("VAE on MNIST, z-dim {z_dim}, hidden {hidden}, {total_epochs:.0} epochs: test ELBO {:.1} nats", test_elbos.last().copied().unwrap_or(f64::NAN));
    let png_size = plot::image_grid_png(&png, &title, plot::Grid { cols, side: SIDE, scale: 3 }, &rows)?;

    // The model's graph (Graphviz DOT) for one test image: z -> x inside the batch plate.
    let dot_path = args.out.join("model.dot");
    let dot = ppl::render_model(|x: &Tensor| model(&nets, x), &test.narrow(0, 0, 1)?)?;
    std::fs::write(&dot_path, dot).map_err(|source| Error::Io { path: dot_path.display().to_string(), source })?;

    Ok(Report {
        train_loss,
        test_elbo: test_elbos,
        test_elbo_start,
        first_steps_loss: first.iter().sum::<f64>() / first.len().max(1) as f64,
        total_steps: svi.step_count(),
        n_train,
        n_test,
        png,
        png_size,
        checkpoint,
        dot: dot_path,
        time,
    })
}

fn print(r: &Report) {
    println!("\nTrained {} epoch(s) ({} SVI steps in all) in {:.1} s.", r.train_loss.len(), r.total_steps, r.time.as_secs_f64());
    println!("Wrote {} ({}×{} px): test digits, their reconstructions, samples from the prior.", r.png.display(), r.png_size.0, r.png_size.1);
    println!("Wrote {} (parameters and optimizer state; continue with --resume).", r.checkpoint.display());
    println!("Wrote {}: the model's graph (render: dot -Tpng {} -o model.png)", r.dot.display(), r.dot.display());
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            print(&r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
