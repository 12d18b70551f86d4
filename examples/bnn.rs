//! A small Bayesian neural network for 1-D regression, fitted by SVI.
//!
//! Data: the toy problem of Hernández-Lobato & Adams (2015, "Probabilistic backpropagation"):
//! `x ~ Uniform(-4, 4)`, `y = x³ + ε`, `ε ~ Normal(0, 3²)`; 100 points from a fixed seed (their 20
//! are too few for a mean-field guide: the ELBO then prefers a straight line with large noise).
//!
//! Model (on `x / 4` and standardized `y`): one hidden layer of `--hidden` tanh units,
//! `W1, b1 ~ Normal(0, 1)`, `W2 ~ Normal(0, 1/√hidden)`, `b2 ~ Normal(0, 1)`,
//! `sigma ~ HalfNormal(1)`, `y_i ~ Normal(f(x_i), sigma)`. Guide: `AutoNormal`, a mean-field
//! Normal over every weight (and log sigma), fitted with `TraceElbo` and Adam.
//!
//! The posterior predictive (guide draws of the weights pushed through the network, plus the
//! noise) gives the mean and a 90% band on a grid reaching beyond the data; the 90% band of the
//! network's function alone (the epistemic part) widens there, as the network was never told what
//! happens there (a mean-field guide is known to understate this widening). The PNG shows both
//! bands, the mean and the data.
//!
//! Run: `cargo run --release --example bnn`

use clap::Parser;
use ppl::Rng;
use ppl::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

// One copy per example binary; the test crate, which includes several examples, has several.
#[allow(clippy::duplicate_mod)]
#[path = "common/plot.rs"]
pub mod plot;

/// Bayesian neural network regression on 1-D toy data by SVI (AutoNormal guide).
#[derive(Parser, Debug, Clone)]
#[command(name = "bnn", about = "Bayesian neural network regression on y = x³ + noise by SVI: predictive mean and 90% band as a PNG")]
pub struct Args {
    /// Data points.
    #[arg(long, default_value_t = 100)]
    pub points: usize,
    /// Hidden tanh units.
    #[arg(long, default_value_t = 10)]
    pub hidden: usize,
    /// SVI steps.
    #[arg(long, default_value_t = 4000)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// ELBO particles per step.
    #[arg(long, default_value_t = 2)]
    pub particles: usize,
    /// Posterior draws for the predictive band.
    #[arg(long, default_value_t = 2000)]
    pub draws: usize,
    /// Random seed (data, initialization, draws).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory for the picture.
    #[arg(long, value_name = "DIR", default_value = "out/bnn")]
    pub out: PathBuf,
    /// Tiny settings for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// What one run found (in the data's units).
#[derive(Debug, Clone)]
pub struct Report {
    /// Mean loss (−ELBO, nats) over the first and the last tenth of the steps.
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
    /// Fraction of the data points inside the 90% predictive band at their x.
    pub coverage: f64,
    /// Root mean squared distance between the predictive mean and the true curve `x³` at the data.
    pub rmse_truth: f64,
    /// Width of the 90% predictive band at x = 0 (among the data) and at x = ±6 (beyond it, mean of
    /// both sides).
    pub width_inside: f64,
    /// See `width_inside`.
    pub width_outside: f64,
    /// The same widths for the 90% band of the network's function `f(x)` (without the noise).
    pub f_width_inside: f64,
    /// See `f_width_inside`.
    pub f_width_outside: f64,
    /// Posterior mean of the noise sd (the truth is 3).
    pub sigma: f64,
    /// The PNG and its size in pixels.
    pub png: PathBuf,
    /// See `png`.
    pub png_size: (u32, u32),
    /// Steps taken and wall time of the fit.
    pub steps: usize,
    /// See `steps`.
    pub time: Duration,
}

const X_SCALE: f64 = 4.0;
const NOISE_SD: f64 = 3.0;
const PLOT_X: f64 = 6.0;

/// The network's output `[S, n]` for inputs `x` `[n]` and weights with a leading draw dim `S`
/// (`w1` `[S, 1, H]`, `b1` `[S, H]`, `w2` `[S, H, 1]`, `b2` `[S]`); also used with `S` = 1.
fn network(x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor) -> Result<Tensor> {
    let s = w1.dim(0)?;
    let xs = x.unsqueeze(0)?.unsqueeze(2)?.broadcast_as((s, x.dim(0)?, 1))?.contiguous()?; // [S, n, 1]
    let hid = xs.matmul(w1)?.broadcast_add(&b1.unsqueeze(1)?)?.tanh()?; // [S, n, H]
    Ok(hid.matmul(w2)?.squeeze(2)?.broadcast_add(&b2.unsqueeze(1)?)?) // [S, n]
}

/// The BNN: priors over the weights, Normal likelihood with unknown noise sd.
fn model(hidden: usize, (x, y): &(Tensor, Tensor)) -> Result<()> {
    let (dt, dev) = (x.dtype(), x.device());
    let h = hidden;
    let w1 = ppl::sample("w1", Normal::new(&Tensor::zeros((1, h), dt, dev)?, 1.0)?.to_event(2)?)?;
    let b1 = ppl::sample("b1", Normal::new(&Tensor::zeros(h, dt, dev)?, 1.0)?.to_event(1)?)?;
    let w2 = ppl::sample("w2", Normal::new(&Tensor::zeros((h, 1), dt, dev)?, 1.0 / (h as f64).sqrt())?.to_event(2)?)?;
    let b2 = ppl::sample("b2", Normal::new(&Tensor::zeros(1, dt, dev)?, 1.0)?.to_event(1)?)?;
    let sigma = ppl::sample("sigma", HalfNormal::new(&Tensor::ones((), dt, dev)?)?)?;
    let mu = network(x, &w1.unsqueeze(0)?, &b1.unsqueeze(0)?, &w2.unsqueeze(0)?, &b2)?.squeeze(0)?;
    ppl::plate("data", x.dim(0)?, |_| ppl::observe("y", Normal::new(&mu, &sigma)?, y))?;
    Ok(())
}

/// The toy data in the data's units: `x ~ U(-4, 4)`, `y = x³ + N(0, 3²)`.
pub fn toy_data(n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = (0..n).map(|_| -X_SCALE + 2.0 * X_SCALE * rng.uniform_open01()).collect();
    let y = x.iter().map(|&x| x.powi(3) + NOISE_SD * rng.standard_normal()).collect();
    (x, y)
}

/// Per point: the predictive mean, and the 5% and 95% quantiles of the predictive draws `y` and
/// of the function draws `f` (`[S][n]` each).
struct Summary {
    mean: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
    f_lo: Vec<f64>,
    f_hi: Vec<f64>,
}

fn summarize(y: &[Vec<f64>], f: &[Vec<f64>]) -> Summary {
    let n = y.first().map_or(0, Vec::len);
    let q90 = |draws: &[Vec<f64>], j: usize| {
        let mut col: Vec<f64> = draws.iter().map(|r| r[j]).collect();
        col.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| col[(p * (col.len() - 1) as f64).round() as usize];
        (q(0.05), q(0.95))
    };
    let (mut out, s) = (Summary { mean: vec![], lo: vec![], hi: vec![], f_lo: vec![], f_hi: vec![] }, f.len() as f64);
    for j in 0..n {
        out.mean.push(f.iter().map(|r| r[j]).sum::<f64>() / s);
        let ((lo, hi), (f_lo, f_hi)) = (q90(y, j), q90(f, j));
        out.lo.push(lo);
        out.hi.push(hi);
        out.f_lo.push(f_lo);
        out.f_hi.push(f_hi);
    }
    out
}

/// Fits the BNN, draws its predictive band, writes the PNG.
pub fn run(args: &Args) -> Result<Report> {
    let (steps, draws) = if args.smoke { (2000, 300) } else { (args.steps, args.draws) };
    for (flag, v) in [("--points", args.points), ("--hidden", args.hidden), ("--particles", args.particles), ("--draws", draws)] {
        if v == 0 {
            return Err(Error::invalid_arg("bnn", flag, "must be at least 1"));
        }
    }
    if steps < 10 {
        return Err(Error::invalid_arg("bnn", "--steps", format!("need at least 10, got {steps}")));
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(Error::invalid_arg("bnn", "--lr", format!("must be a positive number, got {}", args.lr)));
    }
    let dev = Device::Cpu;
    let mut rng = Rng::seed_from_u64(args.seed);
    let (x, y) = toy_data(args.points, &mut rng);
    let y_mean = y.iter().sum::<f64>() / y.len() as f64;
    let y_sd = (y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / y.len() as f64).sqrt().max(1e-12);
    let to_t = |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(|v| v as f32).collect::<Vec<_>>(), y.len(), &dev);
    let data = (to_t(x.iter().map(|v| v / X_SCALE).collect())?, to_t(y.iter().map(|v| (v - y_mean) / y_sd).collect())?);

    let hidden = args.hidden;
    let bnn = move |d: &(Tensor, Tensor)| model(hidden, d);
    let guide = AutoNormal::new(bnn).init(init_to_sample()).init_scale(0.05);
    let start = Instant::now();
    let elbo = TraceElbo::default().num_particles(args.particles);
    let mut svi = Svi::new(bnn, guide.clone(), Adam::new(args.lr), elbo).seed(args.seed);
    let losses = svi.run(&data, steps)?;
    let time = start.elapsed();
    let tenth = (steps / 10).max(1);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;

    // Posterior predictive on a grid beyond the data, and at the data.
    let post = guide.sample_posterior(svi.params(), draws, &mut rng)?;
    let get = |name: &str| post.get(name).ok_or_else(|| Error::invalid_arg("bnn", name, "no such site in the posterior draws"));
    let grid: Vec<f64> = (0..=240).map(|i| -PLOT_X + 2.0 * PLOT_X * i as f64 / 240.0).collect();
    let sigma = get("sigma")?.to_dtype(DType::F64)?;
    let predict = |xs: &[f64], rng: &mut Rng| -> Result<Summary> {
        let xt = Tensor::from_vec(xs.iter().map(|v| (v / X_SCALE) as f32).collect::<Vec<_>>(), xs.len(), &dev)?;
        let mu = network(&xt, get("w1")?, get("b1")?, get("w2")?, &get("b2")?.reshape(draws)?)?.to_dtype(DType::F64)?; // [S, n]
        let eps = rng.normal_tensor(mu.dims(), DType::F64, &dev)?;
        let yrep = (&mu + eps.broadcast_mul(&sigma.reshape((draws, 1))?)?)?;
        let unscale = |t: Tensor| -> Result<Vec<Vec<f64>>> { Ok(((t * y_sd)? + y_mean)?.to_vec2::<f64>()?) };
        Ok(summarize(&unscale(yrep)?, &unscale(mu)?))
    };
    let g = predict(&grid, &mut rng)?;
    let d = predict(&x, &mut rng)?;
    let inside = y.iter().zip(d.lo.iter().zip(&d.hi)).filter(|(y, (lo, hi))| *lo <= *y && *y <= *hi).count();
    let rmse_truth = (x.iter().zip(&d.mean).map(|(x, m)| (x.powi(3) - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let (mid, last) = (grid.len() / 2, grid.len() - 1);
    let width = |lo: &[f64], hi: &[f64]| (hi[mid] - lo[mid], 0.5 * (hi[0] - lo[0] + hi[last] - lo[last]));
    let ((width_inside, width_outside), (f_width_inside, f_width_outside)) = (width(&g.lo, &g.hi), width(&g.f_lo, &g.f_hi));

    let png = args.out.join("bnn.png");
    let panel = plot::Band {
        title: format!("BNN ({hidden} tanh units, AutoNormal SVI): y = x³ + noise"),
        x_label: "x",
        y_label: "y",
        x: grid,
        mean: g.mean,
        lo: g.lo,
        hi: g.hi,
        band_label: "90% predictive interval of y",
        inner: Some((g.f_lo, g.f_hi, "90% interval of the network's f(x)")),
        points: x.iter().copied().zip(y.iter().copied()).collect(),
        points_label: "data",
    };
    let png_size = (900, 600);
    plot::bands_png(&png, png_size, &[panel])?;

    Ok(Report {
        loss_first: mean(&losses[..tenth]),
        loss_last: mean(&losses[steps - tenth..]),
        coverage: inside as f64 / x.len() as f64,
        rmse_truth,
        width_inside,
        width_outside,
        f_width_inside,
        f_width_outside,
        sigma: y_sd * sigma.mean_all()?.to_scalar::<f64>()?,
        png,
        png_size,
        steps,
        time,
    })
}

fn print(args: &Args, r: &Report) {
    println!("Data: {} points, x ~ U(-4, 4), y = x³ + N(0, 3²); network: 1 → {} tanh → 1.", args.points, args.hidden);
    println!(
        "SVI: AutoNormal, {} steps of Adam (lr {}), {} particles, {:.1} s; loss (-ELBO) {:.1} -> {:.1} nats.\n",
        r.steps,
        args.lr,
        args.particles,
        r.time.as_secs_f64(),
        r.loss_first,
        r.loss_last
    );
    println!("{:<44} {:>8}", "data points inside the 90% predictive band", format!("{:.0}%", 100.0 * r.coverage));
    println!("{:<44} {:>8.2}", "RMS error of the predictive mean vs x³", r.rmse_truth);
    println!("{:<44} {:>8.2}", "noise sd (posterior mean; truth 3)", r.sigma);
    println!("\n{:<30} {:>14} {:>14}", "width of the 90% band", "of y (+noise)", "of f(x)");
    println!("{:<30} {:>14.1} {:>14.1}", "at x = 0 (among the data)", r.width_inside, r.f_width_inside);
    println!("{:<30} {:>14.1} {:>14.1}", "at x = ±6 (beyond the data)", r.width_outside, r.f_width_outside);
    println!("\nWrote {} ({}×{} px): predictive mean, 90% bands and the data.", r.png.display(), r.png_size.0, r.png_size.1);
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
