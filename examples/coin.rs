//! Is the coin fair? Pyro's SVI tutorial, part I.
//!
//! Prior belief: the fairness `f` of a coin is Beta(10, 10) (probably close to fair). We flip it
//! and see 6 heads in 10. Conjugacy gives the exact posterior Beta(10 + heads, 10 + tails) =
//! Beta(16, 14); SVI fits a Beta(alpha_q, beta_q) guide by maximizing the ELBO, and this example
//! prints the fitted posterior mean and sd beside the exact ones.
//!
//! Run: `cargo run --release --example coin -- --heads 6 --flips 10`

use clap::Parser;
use ppl::prelude::*;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Fits the fairness of a coin by SVI and compares it with the exact Beta posterior.
#[derive(Parser, Debug, Clone)]
#[command(name = "coin", about = "SVI on a coin: fitted Beta posterior vs the exact one (Pyro's SVI tutorial I)")]
pub struct Args {
    /// Heads observed.
    #[arg(long, default_value_t = 6)]
    pub heads: usize,
    /// Flips in total.
    #[arg(long, default_value_t = 10)]
    pub flips: usize,
    /// Prior Beta(a, a): the pseudo-count a of heads and of tails.
    #[arg(long, default_value_t = 10.0)]
    pub prior: f64,
    /// SVI steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// ELBO particles per step.
    #[arg(long, default_value_t = 4)]
    pub particles: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tiny settings (a few hundred steps) for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Fitted guide parameters.
    pub alpha_q: f64,
    /// Fitted guide parameters.
    pub beta_q: f64,
    /// Parameters of the exact posterior.
    pub alpha_exact: f64,
    /// Parameters of the exact posterior.
    pub beta_exact: f64,
    /// Mean loss (negative ELBO, nats) over the first and the last tenth of the steps.
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
    /// Steps taken.
    pub steps: usize,
    /// Wall time of the fit.
    pub time: Duration,
}

/// Mean and sd of Beta(a, b).
pub fn beta_mean_sd(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (a / s, (a * b / (s * s * (s + 1.0))).sqrt())
}

fn positive() -> ParamOptions {
    ParamOptions { constraint: Constraint::Positive, ..Default::default() }
}

/// Fits the guide and returns the fitted and exact posteriors.
pub fn run(args: &Args) -> Result<Report> {
    if args.flips == 0 || args.heads > args.flips {
        return Err(Error::invalid_arg(
            "coin",
            "--heads/--flips",
            format!("need 0 <= heads <= flips and flips >= 1, got {} heads in {} flips", args.heads, args.flips),
        ));
    }
    if args.prior.is_nan() || args.prior <= 0.0 {
        return Err(Error::invalid_arg("coin", "--prior", format!("must be positive, got {}", args.prior)));
    }
    let steps = if args.smoke { 600 } else { args.steps };
    if steps < 10 {
        return Err(Error::invalid_arg("coin", "--steps", format!("need at least 10, got {steps}")));
    }
    let flips: Vec<f32> = (0..args.flips).map(|i| if i < args.heads { 1.0 } else { 0.0 }).collect();
    let flips = Tensor::from_vec(flips, args.flips, &Device::Cpu)?;
    let prior = args.prior;

    let model = move |flips: &Tensor| -> Result<()> {
        let f = ppl::sample("fairness", Beta::new(prior, prior)?)?;
        ppl::plate("flips", flips.dim(0)?, |_| {
            ppl::observe("obs", Bernoulli::new(&f)?, flips)?;
            Ok(())
        })
    };
    let guide = |_flips: &Tensor| -> Result<()> {
        let a = ppl::param_with("alpha_q", 15f32, positive())?;
        let b = ppl::param_with("beta_q", 15f32, positive())?;
        ppl::sample("fairness", Beta::new(&a, &b)?)?;
        Ok(())
    };

    let start = Instant::now();
    let elbo = TraceElbo::default().num_particles(args.particles.max(1));
    let mut svi = Svi::new(model, guide, Adam::new(args.lr), elbo).seed(args.seed);
    let losses = svi.run(&flips, steps)?;
    let time = start.elapsed();
    let get = |name: &str| -> Result<f64> {
        let t = svi.params().get(name)?.ok_or_else(|| Error::invalid_arg("coin", name, "parameter missing after fitting"))?;
        Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    };
    let tenth = (steps / 10).max(1);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    Ok(Report {
        alpha_q: get("alpha_q")?,
        beta_q: get("beta_q")?,
        alpha_exact: prior + args.heads as f64,
        beta_exact: prior + (args.flips - args.heads) as f64,
        loss_first: mean(&losses[..tenth]),
        loss_last: mean(&losses[steps - tenth..]),
        steps,
        time,
    })
}

fn print(args: &Args, r: &Report) {
    let (m_q, sd_q) = beta_mean_sd(r.alpha_q, r.beta_q);
    let (m_x, sd_x) = beta_mean_sd(r.alpha_exact, r.beta_exact);
    println!("Data: {} heads in {} flips; prior Beta({}, {}).", args.heads, args.flips, args.prior, args.prior);
    println!(
        "SVI: {} steps of Adam (lr {}), {} particle(s) per step, {:.2} s; loss (-ELBO) {:.3} -> {:.3} nats\n",
        r.steps,
        args.lr,
        args.particles.max(1),
        r.time.as_secs_f64(),
        r.loss_first,
        r.loss_last
    );
    println!("{:<22} {:>8} {:>8} {:>8} {:>8}", "posterior of fairness", "alpha", "beta", "mean", "sd");
    println!("{:<22} {:>8.3} {:>8.3} {:>8.4} {:>8.4}", "SVI (Beta guide)", r.alpha_q, r.beta_q, m_q, sd_q);
    println!("{:<22} {:>8.3} {:>8.3} {:>8.4} {:>8.4}", "exact (conjugate)", r.alpha_exact, r.beta_exact, m_x, sd_x);
    println!("\nThe fitted mean is {:.1} exact sds from the exact mean.", (m_q - m_x).abs() / sd_x);
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
