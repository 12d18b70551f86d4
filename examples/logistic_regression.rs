//! Bayesian logistic regression on the Wisconsin breast cancer data (569 tumours × 30 features,
//! shipped in `data/`): NUTS (4 chains) and `AutoNormal` SVI side by side.
//!
//! Features are standardized with the statistics of the training rows; every 4th row is held out.
//! Prior: intercept `b ~ N(0, 2)`, weights `w_j ~ N(0, 1)`; likelihood `y_i ~ Bernoulli(logits = x_i·w + b)`.
//! The output compares a few coefficients, the posterior-predictive accuracy on the held-out rows
//! and the wall time of each method.
//!
//! Run: `cargo run --release --example logistic_regression`

use clap::Parser;
use ppl::prelude::*;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Logistic regression on breast cancer data: NUTS vs AutoNormal SVI.
#[derive(Parser, Debug, Clone)]
#[command(name = "logistic_regression", about = "Breast cancer logistic regression: NUTS (4 chains) vs AutoNormal SVI")]
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
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// Posterior draws from the fitted guide for prediction.
    #[arg(long, default_value_t = 1000)]
    pub guide_draws: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tiny settings for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// One method's results.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Posterior mean and sd of `b`, then of `w[0]`, `w[1]`, ... (one entry per coefficient).
    pub coefs: Vec<(f64, f64)>,
    /// Posterior-predictive accuracy on the held-out rows.
    pub accuracy: f64,
    /// Wall time of the fit.
    pub time: Duration,
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// NUTS results.
    pub nuts: Fit,
    /// Largest split R-hat of the NUTS run.
    pub max_r_hat: f64,
    /// Divergent transitions of the NUTS run.
    pub divergences: usize,
    /// SVI results.
    pub svi: Fit,
    /// Mean loss (negative ELBO, nats) over the last tenth of the SVI steps.
    pub final_loss: f64,
    /// Training and held-out rows.
    pub n_train: usize,
    /// See `n_train`.
    pub n_test: usize,
    /// Feature names.
    pub features: Vec<String>,
}

/// b ~ N(0, 2), w_j ~ N(0, 1), y_i ~ Bernoulli(logits = x_i·w + b).
fn model((x, y): &(Tensor, Tensor)) -> Result<()> {
    let (n, d) = x.dims2()?;
    let b = ppl::sample("b", Normal::new(0.0, 2.0)?)?;
    let w = ppl::plate("features", d, |_| ppl::sample("w", Normal::new(0.0, 1.0)?))?;
    let logits = x.matmul(&w.unsqueeze(1)?)?.squeeze(1)?.broadcast_add(&b)?;
    ppl::plate("data", n, |_| ppl::observe("y", Bernoulli::from_logits(&logits)?, y))?;
    Ok(())
}

/// Accuracy of the posterior-mean probability: `w` `[S, d]`, `b` `[S]`, on `x` `[n, d]`, `y` `[n]`.
fn accuracy(w: &Tensor, b: &Tensor, x: &Tensor, y: &Tensor) -> Result<f64> {
    let logits = x.matmul(&w.t()?)?.broadcast_add(&b.unsqueeze(0)?)?; // [n, S]
    let p = candle_nn::ops::sigmoid(&logits)?.mean(1)?;
    let pred = p.ge(0.5)?.to_dtype(DType::F64)?;
    let right = pred.eq(&y.to_dtype(DType::F64)?)?.to_dtype(DType::F64)?.mean_all()?;
    Ok(right.to_scalar::<f64>()?)
}

/// Means and sds of `b` `[S]` and the columns of `w` `[S, d]`.
fn coefs(w: &Tensor, b: &Tensor) -> Result<Vec<(f64, f64)>> {
    let all = Tensor::cat(&[b.unsqueeze(1)?, w.clone()], 1)?.to_dtype(DType::F64)?;
    let mean = all.mean(0)?;
    let sd = all.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?;
    Ok(mean.to_vec1::<f64>()?.into_iter().zip(sd.to_vec1::<f64>()?).collect())
}

/// Fits both methods and returns their results.
pub fn run(args: &Args) -> Result<Report> {
    let (chains, warmup, draws, steps, guide_draws) = if args.smoke {
        (2, 100, 100, 400, 200)
    } else {
        (args.chains, args.warmup, args.draws, args.steps, args.guide_draws)
    };
    if chains == 0 || draws == 0 || steps == 0 || guide_draws == 0 {
        return Err(Error::invalid_arg("logistic_regression", "--chains/--draws/--steps/--guide-draws", "must all be at least 1"));
    }
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let table = ppl::datasets::breast_cancer(&Device::Cpu)?;
    let x = table.x.to_dtype(DType::F64)?;
    let y = table.y.to_dtype(DType::F64)?;
    let ((x_train, x_test), (y_train, y_test)) = (ppl::datasets::holdout_every(&x, 4)?, ppl::datasets::holdout_every(&y, 4)?);
    let (x_train, mean, sd) = ppl::datasets::standardize(&x_train)?;
    let x_test = x_test.broadcast_sub(&mean)?.broadcast_div(&sd)?;
    let train = (x_train, y_train);

    // NUTS.
    let cfg = McmcConfig { num_chains: chains, num_warmup: warmup, num_samples: draws, seed: args.seed, ..Default::default() };
    let start = Instant::now();
    let samples = Mcmc::new(Nuts::new(model), cfg).run(&train)?;
    let nuts_time = start.elapsed();
    let summary = samples.compute_summary()?;
    let max_r_hat = summary.rows.iter().map(|r| r.r_hat).fold(f64::NAN, f64::max);
    let (w, b) = (samples.get_flat("w")?, samples.get_flat("b")?);
    let nuts = Fit { coefs: coefs(&w, &b)?, accuracy: accuracy(&w, &b, &x_test, &y_test)?, time: nuts_time };

    // SVI with a mean-field normal guide.
    let guide = AutoNormal::new(model);
    let start = Instant::now();
    let mut svi = Svi::new(model, guide.clone(), Adam::new(args.lr), TraceElbo::default()).seed(args.seed);
    let losses = svi.run(&train, steps)?;
    let mut rng = ppl::Rng::seed_from_u64(args.seed);
    let post = guide.sample_posterior(svi.params(), guide_draws, &mut rng)?;
    let svi_time = start.elapsed();
    let missing = |name: &str| Error::invalid_arg("logistic_regression", name, "no such site in the guide's draws");
    let (w, b) = (post.get("w").ok_or_else(|| missing("w"))?, post.get("b").ok_or_else(|| missing("b"))?);
    let svi_fit = Fit { coefs: coefs(w, b)?, accuracy: accuracy(w, b, &x_test, &y_test)?, time: svi_time };
    let tenth = (steps / 10).max(1);
    let final_loss = losses[steps - tenth..].iter().sum::<f64>() / tenth as f64;

    Ok(Report {
        nuts,
        max_r_hat,
        divergences: samples.num_divergences(),
        svi: svi_fit,
        final_loss,
        n_train: train.0.dim(0)?,
        n_test: x_test.dim(0)?,
        features: table.feature_names,
    })
}

fn print(args: &Args, r: &Report) {
    let (chains, warmup, draws, steps) =
        if args.smoke { (2, 100, 100, 400) } else { (args.chains, args.warmup, args.draws, args.steps) };
    println!(
        "Breast cancer: {} training rows, {} held out (every 4th), {} standardized features.\n",
        r.n_train,
        r.n_test,
        r.features.len()
    );
    println!(
        "NUTS: {chains} chains x {draws} draws after {warmup} warmup; max R-hat {:.3}, {} divergences.",
        r.max_r_hat, r.divergences
    );
    println!("SVI:  AutoNormal, {steps} steps of Adam (lr {}), final loss (-ELBO) {:.1} nats.\n", args.lr, r.final_loss);
    println!("{:<28} {:>9} {:>8}   {:>9} {:>8}", "coefficient", "NUTS mean", "sd", "SVI mean", "sd");
    let shown = 6.min(r.nuts.coefs.len());
    for i in 0..shown {
        let name = if i == 0 { "intercept".to_string() } else { format!("w[{}] {}", i - 1, r.features[i - 1]) };
        let (nm, ns) = r.nuts.coefs[i];
        let (sm, ss) = r.svi.coefs[i];
        println!("{name:<28} {nm:>9.3} {ns:>8.3}   {sm:>9.3} {ss:>8.3}");
    }
    println!("({} more weights not shown)\n", r.nuts.coefs.len() - shown);
    println!("{:<8} {:>22} {:>12}", "method", "held-out accuracy", "wall time");
    println!("{:<8} {:>21.1}% {:>10.2} s", "NUTS", 100.0 * r.nuts.accuracy, r.nuts.time.as_secs_f64());
    println!("{:<8} {:>21.1}% {:>10.2} s", "SVI", 100.0 * r.svi.accuracy, r.svi.time.as_secs_f64());
    println!("\n(The mean-field guide matches the means but underestimates the sds of correlated weights.)");
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
