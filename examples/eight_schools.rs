//! Eight schools (Rubin 1981): a hierarchical model of coaching effects, run with ppl's effect
//! handlers alone.
//!
//! 1. `trace` records one run of the model and prints the shape table;
//! 2. a vectorized `plate` of particles turns the same model into 50 000 prior draws at once;
//! 3. `condition` + `trace` score the observed effects, and self-normalized importance sampling
//!    gives posterior means of the population mean `mu` and spread `tau`.
//!
//! Run: `cargo run --release --example eight_schools`

use ppl::dist::{HalfCauchy, Normal};
use ppl::prelude::*;

/// Effects and standard errors from `data/eight_schools.csv`.
fn load() -> Result<(Tensor, Tensor)> {
    let text = include_str!("../data/eight_schools.csv");
    let mut effect = Vec::new();
    let mut stderr = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let parse = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| Error::invalid_arg("eight_schools.csv", format!("line {}", i + 1), format!("not a number: `{s}`")))
        };
        effect.push(parse(cols[1])?);
        stderr.push(parse(cols[2])?);
    }
    let n = effect.len();
    Ok((Tensor::from_vec(effect, n, &Device::Cpu)?, Tensor::from_vec(stderr, n, &Device::Cpu)?))
}

/// mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_j ~ N(mu, tau), y_j ~ N(theta_j, sigma_j).
fn model(sigma: &Tensor, y: Option<&Tensor>) -> Result<()> {
    let mu = ppl::sample("mu", Normal::new(0.0, 5.0)?)?;
    let tau = ppl::sample("tau", HalfCauchy::new(5.0)?)?;
    ppl::plate("schools", sigma.dim(0)?, |_| {
        let theta = ppl::sample("theta", Normal::new(&mu, &tau)?)?;
        let lik = Normal::new(&theta, sigma)?;
        match y {
            Some(y) => ppl::observe("y", lik, y)?,
            None => ppl::sample("y", lik)?,
        };
        Ok(())
    })
}

fn main() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let (y, sigma) = load()?;

    // 1. One run of the model, traced.
    let (_, tr) = handlers::seed(0, || handlers::trace(|| model(&sigma, Some(&y))))?;
    println!("One traced run of the model:\n{}", tr.format_shapes());

    // 2–3. Particles in an outer plate at dim -2: every site gets a leading batch dim of size S.
    let s = 50_000;
    let (_, tr) = handlers::seed(1, || {
        handlers::trace(|| {
            ppl::plate_with("particles", s, PlateOptions { dim: Some(-2), ..Default::default() }, |_| {
                model(&sigma, Some(&y))
            })
        })
    })?;
    let y_site = tr.get("y").expect("the model observes y");
    let log_w = Trace::site_log_prob(y_site)?.expect("observed sites have a log-density").sum(1)?; // [S]
    let w = candle_nn::ops::softmax(&log_w, 0)?;
    let ess = 1.0 / w.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let post = |name: &str| -> Result<(f64, f64)> {
        let v = tr.value(name)?.flatten_all()?;
        let m = (&w * &v)?.sum_all()?.to_scalar::<f64>()?;
        let m2 = (&w * v.sqr()?)?.sum_all()?.to_scalar::<f64>()?;
        Ok((m, (m2 - m * m).max(0.0).sqrt()))
    };
    let (mu_m, mu_sd) = post("mu")?;
    let (tau_m, tau_sd) = post("tau")?;
    println!("Importance sampling from the prior: {s} particles, effective sample size {ess:.0}");
    println!("  mu : posterior mean {mu_m:6.2}, sd {mu_sd:5.2}");
    println!("  tau: posterior mean {tau_m:6.2}, sd {tau_sd:5.2}");
    println!("(NUTS on this model gives mu ≈ 4.4 ± 3.3 and tau ≈ 3.6 ± 3.2.)");
    Ok(())
}
