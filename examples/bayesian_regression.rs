//! Bayesian linear regression on the diabetes data of Efron et al. (2004): 442 patients × 10
//! baseline variables, target = disease progression one year later (shipped in `data/`).
//!
//! Features and target are standardized with the statistics of the training rows; every 4th row
//! is held out. Prior: `b ~ N(0, 1)`, `w_j ~ N(0, 1)`, `sigma ~ HalfNormal(1)`; likelihood
//! `y_i ~ N(x_i·w + b, sigma)`. `AutoMultivariateNormal` SVI and NUTS are compared on their
//! posterior-predictive 90% intervals for the held-out patients: how many intervals contain the
//! truth (ideally ~90%), how wide they are, and the error of the predictive mean. A PNG shows
//! each method's held-out predictions (patients sorted by predictive mean) with their 90% bands
//! and the true values.
//!
//! Run: `cargo run --release --example bayesian_regression`

use clap::Parser;
use ppl::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

// One copy per example binary; the test crate, which includes several examples, has several.
#[allow(clippy::duplicate_mod)]
#[path = "common/plot.rs"]
pub mod plot;

/// Diabetes regression: AutoMultivariateNormal SVI vs NUTS, held-out predictive intervals.
#[derive(Parser, Debug, Clone)]
#[command(name = "bayesian_regression", about = "Diabetes regression: AutoMultivariateNormal SVI vs NUTS, 90% predictive interval coverage")]
pub struct Args {
    /// NUTS chains (run on parallel threads).
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// NUTS warmup iterations per chain.
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    /// NUTS kept draws per chain.
    #[arg(long, default_value_t = 500)]
    pub draws: usize,
    /// SVI steps.
    #[arg(long, default_value_t = 5000)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Posterior draws from the fitted guide for prediction.
    #[arg(long, default_value_t = 2000)]
    pub guide_draws: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory for the picture.
    #[arg(long, value_name = "DIR", default_value = "out/bayesian_regression")]
    pub out: PathBuf,
    /// Tiny settings for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// One method's results on the held-out rows.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Fraction of held-out targets inside their 90% posterior-predictive interval.
    pub coverage: f64,
    /// Mean width of the 90% intervals, in the target's units.
    pub width: f64,
    /// Root mean squared error of the predictive mean, in the target's units.
    pub rmse: f64,
    /// Posterior mean of the noise sd, in the target's units.
    pub sigma: f64,
    /// Wall time of the fit.
    pub time: Duration,
    /// Per held-out patient (in the data's units): predictive mean, 5% and 95% quantiles.
    pub intervals: Vec<(f64, f64, f64)>,
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// SVI results.
    pub svi: Fit,
    /// NUTS results.
    pub nuts: Fit,
    /// Largest split R-hat of the NUTS run.
    pub max_r_hat: f64,
    /// Mean loss (negative ELBO, nats) over the last tenth of the SVI steps.
    pub final_loss: f64,
    /// Training and held-out rows.
    pub n_train: usize,
    /// See `n_train`.
    pub n_test: usize,
    /// The PNG of the held-out predictions and its size in pixels.
    pub png: PathBuf,
    /// See `png`.
    pub png_size: (u32, u32),
}

/// b ~ N(0, 1), w_j ~ N(0, 1), sigma ~ HalfNormal(1), y_i ~ N(x_i·w + b, sigma).
fn model((x, y): &(Tensor, Tensor)) -> Result<()> {
    let (n, d) = x.dims2()?;
    let b = ppl::sample("b", Normal::new(0.0, 1.0)?)?;
    let w = ppl::plate("features", d, |_| ppl::sample("w", Normal::new(0.0, 1.0)?))?;
    let sigma = ppl::sample("sigma", HalfNormal::new(1.0)?)?;
    let mu = x.matmul(&w.unsqueeze(1)?)?.squeeze(1)?.broadcast_add(&b)?;
    ppl::plate("data", n, |_| ppl::observe("y", Normal::new(&mu, &sigma)?, y))?;
    Ok(())
}

/// Posterior-predictive draws for `x` from draws `w` `[S, d]`, `b` `[S]`, `sigma` `[S]`; returns
/// the coverage, width and RMSE (scaled by `y_scale`) against `y`, and the intervals (in the
/// data's units: `y_scale * v + y_shift`); the caller sets the time.
fn evaluate(w: &Tensor, b: &Tensor, sigma: &Tensor, (x, y): (&Tensor, &Tensor), (y_scale, y_shift): (f64, f64), rng: &mut ppl::Rng) -> Result<Fit> {
    let mu = x.matmul(&w.t()?)?.broadcast_add(&b.unsqueeze(0)?)?; // [n, S]
    let eps = rng.normal_tensor(mu.dims(), DType::F64, mu.device())?;
    let rep = (mu + eps.broadcast_mul(&sigma.unsqueeze(0)?)?)?.to_vec2::<f64>()?;
    let y = y.to_vec1::<f64>()?;
    let (mut inside, mut width, mut sq, mut intervals) = (0usize, 0.0, 0.0, Vec::new());
    for (mut row, &t) in rep.into_iter().zip(&y) {
        let mean = row.iter().sum::<f64>() / row.len() as f64;
        row.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| row[((p * (row.len() - 1) as f64).round()) as usize];
        let (lo, hi) = (q(0.05), q(0.95));
        inside += usize::from(lo <= t && t <= hi);
        width += hi - lo;
        sq += (mean - t).powi(2);
        intervals.push((y_scale * mean + y_shift, y_scale * lo + y_shift, y_scale * hi + y_shift));
    }
    let n = y.len() as f64;
    let sigma = sigma.mean_all()?.to_scalar::<f64>()?;
    Ok(Fit { coverage: inside as f64 / n, width: y_scale * width / n, rmse: y_scale * (sq / n).sqrt(), sigma: y_scale * sigma, time: Duration::ZERO, intervals })
}

/// Fits both methods and evaluates them on the held-out rows.
pub fn run(args: &Args) -> Result<Report> {
    let (chains, warmup, draws, steps, guide_draws) = settings(args);
    if chains == 0 || draws == 0 || steps == 0 || guide_draws == 0 {
        return Err(Error::invalid_arg("bayesian_regression", "--chains/--draws/--steps/--guide-draws", "must all be at least 1"));
    }
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let table = ppl::datasets::diabetes(&Device::Cpu)?;
    let x = table.x.to_dtype(DType::F64)?;
    let y = table.y.to_dtype(DType::F64)?.unsqueeze(1)?;
    let ((x_train, x_test), (y_train, y_test)) = (ppl::datasets::holdout_every(&x, 4)?, ppl::datasets::holdout_every(&y, 4)?);
    let (x_train, x_mean, x_sd) = ppl::datasets::standardize(&x_train)?;
    let x_test = x_test.broadcast_sub(&x_mean)?.broadcast_div(&x_sd)?;
    let (y_train, y_mean, y_sd) = ppl::datasets::standardize(&y_train)?;
    let y_test = y_test.broadcast_sub(&y_mean)?.broadcast_div(&y_sd)?.squeeze(1)?;
    let y_units = (y_sd.to_vec1::<f64>()?[0], y_mean.to_vec1::<f64>()?[0]);
    let train = (x_train, y_train.squeeze(1)?);
    let mut rng = ppl::Rng::seed_from_u64(args.seed);
    let missing = |name: &str| Error::invalid_arg("bayesian_regression", name, "no such site in the posterior draws");

    // SVI with a full-rank Gaussian guide over (b, w, log sigma).
    let guide = AutoMultivariateNormal::new(model);
    let start = Instant::now();
    let mut svi = Svi::new(model, guide.clone(), Adam::new(args.lr), TraceElbo::default()).seed(args.seed);
    let losses = svi.run(&train, steps)?;
    let post = guide.sample_posterior(svi.params(), guide_draws, &mut rng)?;
    let time = start.elapsed();
    let get = |name: &str| post.get(name).ok_or_else(|| missing(name));
    let svi_fit = Fit { time, ..evaluate(get("w")?, get("b")?, get("sigma")?, (&x_test, &y_test), y_units, &mut rng)? };
    let tenth = (steps / 10).max(1);
    let final_loss = losses[steps - tenth..].iter().sum::<f64>() / tenth as f64;

    // NUTS.
    let cfg = McmcConfig { num_chains: chains, num_warmup: warmup, num_samples: draws, seed: args.seed, ..Default::default() };
    let start = Instant::now();
    let samples = Mcmc::new(Nuts::new(model), cfg).run(&train)?;
    let time = start.elapsed();
    let max_r_hat = samples.compute_summary()?.rows.iter().map(|r| r.r_hat).fold(f64::NAN, f64::max);
    let (w, b, sigma) = (samples.get_flat("w")?, samples.get_flat("b")?, samples.get_flat("sigma")?);
    let nuts = Fit { time, ..evaluate(&w, &b, &sigma, (&x_test, &y_test), y_units, &mut rng)? };

    let truth: Vec<f64> = y_test.to_vec1::<f64>()?.iter().map(|v| y_units.0 * v + y_units.1).collect();
    let png = args.out.join("bayesian_regression.png");
    let png_size = (1400, 600);
    plot::bands_png(&png, png_size, &[panel("SVI (AutoMultivariateNormal)", &svi_fit, &truth), panel("NUTS", &nuts, &truth)])?;
    Ok(Report { svi: svi_fit, nuts, max_r_hat, final_loss, n_train: train.0.dim(0)?, n_test: x_test.dim(0)?, png, png_size })
}

/// One method's held-out predictions, patients sorted by predictive mean.
fn panel<'a>(method: &str, fit: &Fit, truth: &[f64]) -> plot::Band<'a> {
    let mut order: Vec<usize> = (0..truth.len()).collect();
    order.sort_by(|&i, &j| fit.intervals[i].0.total_cmp(&fit.intervals[j].0));
    let col = |k: usize| order.iter().map(|&i| [fit.intervals[i].0, fit.intervals[i].1, fit.intervals[i].2][k]).collect::<Vec<_>>();
    plot::Band {
        title: format!("{method}: {:.0}% of held-out patients inside", 100.0 * fit.coverage),
        x_label: "held-out patient, by predicted progression",
        y_label: "disease progression after one year",
        x: (0..truth.len()).map(|r| r as f64).collect(),
        mean: col(0),
        lo: col(1),
        hi: col(2),
        band_label: "90% predictive interval",
        inner: None,
        points: order.iter().enumerate().map(|(r, &i)| (r as f64, truth[i])).collect(),
        points_label: "true value",
    }
}

/// (chains, warmup, draws, steps, guide draws) after `--smoke`.
fn settings(args: &Args) -> (usize, usize, usize, usize, usize) {
    if args.smoke { (2, 100, 100, 1500, 300) } else { (args.chains, args.warmup, args.draws, args.steps, args.guide_draws) }
}

fn print(args: &Args, r: &Report) {
    let (chains, warmup, draws, steps, _) = settings(args);
    println!("Diabetes: {} training patients, {} held out (every 4th), 10 standardized features.", r.n_train, r.n_test);
    println!("SVI:  AutoMultivariateNormal, {steps} steps of Adam (lr {}), final loss (-ELBO) {:.1} nats.", args.lr, r.final_loss);
    println!("NUTS: {chains} chains x {draws} draws after {warmup} warmup; max R-hat {:.3}.\n", r.max_r_hat);
    println!("Held-out posterior-predictive 90% intervals (target: disease progression, units of the data):");
    println!("{:<6} {:>10} {:>12} {:>8} {:>8} {:>11}", "method", "coverage", "mean width", "RMSE", "sigma", "wall time");
    for (name, f) in [("SVI", &r.svi), ("NUTS", &r.nuts)] {
        println!(
            "{name:<6} {:>9.1}% {:>12.1} {:>8.1} {:>8.1} {:>9.2} s",
            100.0 * f.coverage,
            f.width,
            f.rmse,
            f.sigma,
            f.time.as_secs_f64()
        );
    }
    println!("\n(Well-calibrated intervals cover about 90% of held-out patients.)");
    println!("Wrote {} ({}×{} px): held-out predictions with their 90% intervals.", r.png.display(), r.png_size.0, r.png_size.1);
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
