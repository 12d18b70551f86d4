//! SVI reaches the exact posterior of conjugate models (Beta–Bernoulli as in Pyro's SVI tutorial,
//! Gamma–Poisson, Normal–Normal), with pathwise gradients and with the score function.

use super::{param_value, positive};
use ppl::prelude::*;
use ppl::InferConfig;

/// ClippedAdam with a decaying learning rate: the iterates settle instead of jittering at `lr`.
fn decaying(lr: f64) -> ClippedAdam {
    ClippedAdam::with_config(ClippedAdamConfig { lr, lrd: 0.996, ..Default::default() })
}

fn flips() -> Tensor {
    // 6 heads in 10 flips.
    Tensor::new(&[1f32, 1., 1., 1., 1., 1., 0., 0., 0., 0.], &Device::Cpu).unwrap()
}

fn coin(x: &Tensor) -> Result<()> {
    let p = ppl::sample("p", Beta::new(10.0, 10.0)?)?;
    ppl::plate("flips", 10, |_| ppl::observe("x", Bernoulli::new(&p)?, x).map(|_| ()))
}

fn coin_guide_with(reparameterize: bool) -> impl Fn(&Tensor) -> Result<()> {
    move |_x: &Tensor| {
        let a = ppl::param_with("alpha_q", 15.0, positive())?;
        let b = ppl::param_with("beta_q", 15.0, positive())?;
        let opts = SampleOptions::new().infer(InferConfig::new().reparameterize(reparameterize));
        ppl::sample_with("p", Beta::new(&a, &b)?, opts).map(|_| ())
    }
}

/// Mean and sd of Beta(a, b).
fn beta_moments(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (a / s, (a * b / (s * s * (s + 1.0))).sqrt())
}

#[test]
fn beta_bernoulli_reaches_the_exact_posterior() -> Result<()> {
    // Exact posterior: Beta(10 + 6, 10 + 4) = Beta(16, 14).
    let (mean, sd) = beta_moments(16.0, 14.0);
    let elbo = TraceElbo::default().num_particles(32).vectorize_particles(true);
    let mut svi = Svi::new(coin, coin_guide_with(true), decaying(0.05), elbo).seed(1);
    svi.run(&flips(), 1000)?;
    let (m, s) = beta_moments(param_value(&svi, "alpha_q"), param_value(&svi, "beta_q"));
    // Tolerances: ~1/10 of the posterior sd (the spread of final iterates over seeds is ~1/30).
    assert!((m - mean).abs() < 0.01, "posterior mean {m} vs exact {mean}");
    assert!((s - sd).abs() < 0.01, "posterior sd {s} vs exact {sd}");
    Ok(())
}

#[test]
fn beta_bernoulli_with_the_score_function_converges() -> Result<()> {
    let (mean, sd) = beta_moments(16.0, 14.0);
    let elbo = TraceElbo::default().num_particles(64).vectorize_particles(true);
    let mut svi = Svi::new(coin, coin_guide_with(false), decaying(0.05), elbo).seed(2);
    svi.run(&flips(), 1000)?;
    let (m, s) = beta_moments(param_value(&svi, "alpha_q"), param_value(&svi, "beta_q"));
    assert!((m - mean).abs() < 0.02, "posterior mean {m} vs exact {mean}");
    assert!((s - sd).abs() < 0.02, "posterior sd {s} vs exact {sd}");
    Ok(())
}

#[test]
fn gamma_poisson_reaches_the_exact_posterior() -> Result<()> {
    let counts = Tensor::new(&[2f32, 4., 3., 5., 1., 3., 4., 2.], &Device::Cpu)?;
    let model = |x: &Tensor| -> Result<()> {
        let rate = ppl::sample("rate", Gamma::new(3.0, 1.0)?)?;
        ppl::plate("obs", 8, |_| ppl::observe("x", Poisson::new(&rate)?, x).map(|_| ()))
    };
    let guide = |_: &Tensor| -> Result<()> {
        let a = ppl::param_with("a", 5.0, positive())?;
        let b = ppl::param_with("b", 2.0, positive())?;
        ppl::sample("rate", Gamma::new(&a, &b)?).map(|_| ())
    };
    // Exact posterior: Gamma(3 + 24, 1 + 8): mean 3, sd √27 / 9.
    let (mean, sd) = (3.0, 27f64.sqrt() / 9.0);
    let elbo = TraceElbo::default().num_particles(32).vectorize_particles(true);
    let mut svi = Svi::new(model, guide, decaying(0.1), elbo).seed(3);
    svi.run(&counts, 1000)?;
    let (a, b) = (param_value(&svi, "a"), param_value(&svi, "b"));
    let (m, s) = (a / b, a.sqrt() / b);
    assert!((m - mean).abs() < 0.06, "posterior mean {m} vs exact {mean}");
    assert!((s - sd).abs() < 0.06, "posterior sd {s} vs exact {sd}");
    Ok(())
}

#[test]
fn normal_normal_reaches_the_exact_posterior_with_each_elbo() -> Result<()> {
    let data = Tensor::new(&[0.8f32, 1.9, 1.2, 0.3, 1.5, 1.1], &Device::Cpu)?;
    let model = |x: &Tensor| -> Result<()> {
        let mu = ppl::sample("mu", Normal::new(0.0, 2.0)?)?;
        ppl::plate("data", 6, |_| ppl::observe("x", Normal::new(&mu, 1.0)?, x).map(|_| ()))
    };
    let guide = |_: &Tensor| -> Result<()> {
        let loc = ppl::param("loc", 0.0)?;
        let scale = ppl::param_with("scale", 1.0, positive())?;
        ppl::sample("mu", Normal::new(&loc, &scale)?).map(|_| ())
    };
    // Precision 1/4 + 6; mean Σx / 6.25.
    let (mean, sd) = (6.8 / 6.25, (1.0f64 / 6.25).sqrt());
    let fits: Vec<(&str, Box<dyn Elbo>)> = vec![
        ("TraceElbo", Box::new(TraceElbo::default().num_particles(16).vectorize_particles(true))),
        ("TraceMeanFieldElbo", Box::new(TraceMeanFieldElbo::default().num_particles(16).vectorize_particles(true))),
    ];
    for (name, elbo) in fits {
        let mut svi = Svi::new(model, guide, decaying(0.05), elbo).seed(4);
        svi.run(&data, 800)?;
        let (m, s) = (param_value(&svi, "loc"), param_value(&svi, "scale"));
        assert!((m - mean).abs() < 0.03, "{name}: posterior mean {m} vs exact {mean}");
        assert!((s - sd).abs() < 0.03, "{name}: posterior sd {s} vs exact {sd}");
    }
    Ok(())
}
