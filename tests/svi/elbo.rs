//! ELBO estimators against exact values: the log evidence, KL gaps, and finite-difference
//! gradients of every surrogate (pathwise, analytic KL, Rényi, score function with baselines).

use super::{mean_se, positive, scalar};
use ppl::infer::Bound;
use ppl::prelude::*;

const DATA: [f64; 6] = [0.8, 1.9, 1.2, 0.3, 1.5, 1.1];
const PRIOR_SD: f64 = 2.0;

/// log p(x) of mu ~ N(0, 2²), x_i ~ N(mu, 1): x ~ N(0, I + 4·11ᵀ), det = 1 + 6·4,
/// Σ⁻¹ = I − 4/(1 + 24)·11ᵀ.
fn log_evidence() -> f64 {
    let n = DATA.len() as f64;
    let a = PRIOR_SD * PRIOR_SD;
    let s: f64 = DATA.iter().sum();
    let ss: f64 = DATA.iter().map(|x| x * x).sum();
    let quad = ss - a * s * s / (1.0 + n * a);
    -0.5 * n * (2.0 * std::f64::consts::PI).ln() - 0.5 * (1.0 + n * a).ln() - 0.5 * quad
}

/// The exact posterior's mean and sd.
fn posterior() -> (f64, f64) {
    let prec = 1.0 / (PRIOR_SD * PRIOR_SD) + DATA.len() as f64;
    (DATA.iter().sum::<f64>() / prec, (1.0 / prec).sqrt())
}

/// KL(N(m1, s1) ‖ N(m2, s2)).
fn kl_normal(m1: f64, s1: f64, m2: f64, s2: f64) -> f64 {
    (s2 / s1).ln() + (s1 * s1 + (m1 - m2).powi(2)) / (2.0 * s2 * s2) - 0.5
}

fn data(dtype: DType) -> Tensor {
    Tensor::new(&DATA, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn model(x: &Tensor) -> Result<()> {
    let mu = ppl::sample("mu", Normal::new(0.0, PRIOR_SD)?)?;
    ppl::plate("data", 6, |_| ppl::observe("x", Normal::new(&mu, 1.0)?, x).map(|_| ()))
}

fn guide_at(loc: f64, scale: f64) -> impl Fn(&Tensor) -> Result<()> + Clone {
    move |_: &Tensor| {
        let l = ppl::param("loc", loc)?;
        let s = ppl::param_with("scale", scale, positive())?;
        ppl::sample("mu", Normal::new(&l, &s)?).map(|_| ())
    }
}

#[test]
fn elbo_equals_the_log_evidence_at_the_exact_posterior_with_zero_variance() -> Result<()> {
    let (m, s) = posterior();
    let log_z = log_evidence();
    for elbo in [TraceElbo::default(), TraceElbo::default().num_particles(50).vectorize_particles(true)] {
        let mut svi = Svi::new(model, guide_at(m, s), Adam::new(0.01), elbo).seed(5);
        for _ in 0..5 {
            let loss = svi.evaluate_loss(&data(DType::F32))?;
            // f32 arithmetic on terms of size ~10: agreement to ~1e-5.
            assert!((-loss - log_z).abs() < 2e-4, "ELBO {} vs log evidence {log_z}", -loss);
        }
    }
    Ok(())
}

/// `reps` estimates of the ELBO (minus the loss) of `elbo` at the guide N(loc, scale).
fn elbo_estimates(elbo: impl Elbo + 'static, loc: f64, scale: f64, reps: usize) -> Result<Vec<f64>> {
    let mut svi = Svi::new(model, guide_at(loc, scale), Adam::new(0.01), elbo).seed(6);
    (0..reps).map(|_| svi.evaluate_loss(&data(DType::F32)).map(|l| -l)).collect()
}

#[test]
fn away_from_the_posterior_each_elbo_matches_its_exact_value_below_the_evidence() -> Result<()> {
    let (m, s) = posterior();
    let (loc, scale) = (m + 0.5, 0.7);
    let log_z = log_evidence();
    let exact = log_z - kl_normal(loc, scale, m, s);
    let (tm, tse) = mean_se(&elbo_estimates(TraceElbo::default().num_particles(500).vectorize_particles(true), loc, scale, 20)?);
    assert!((tm - exact).abs() < 4.0 * tse + 1e-4, "TraceElbo {tm} ± {tse} vs exact {exact}");
    assert!(tm + 4.0 * tse < log_z, "ELBO {tm} must lie below the log evidence {log_z}");
    let mf = TraceMeanFieldElbo::default().num_particles(500).vectorize_particles(true);
    let (fm, fse) = mean_se(&elbo_estimates(mf, loc, scale, 20)?);
    assert!((fm - exact).abs() < 4.0 * fse + 1e-4, "TraceMeanFieldElbo {fm} ± {fse} vs exact {exact}");
    // The analytic KL removes the prior term's noise.
    assert!(fse < tse, "mean-field se {fse} should be below the Monte Carlo se {tse}");
    // The importance-weighted bound (α = 0) lies between the ELBO and the evidence.
    let iwae = RenyiElbo::new(0.0).num_particles(50).vectorize_particles(true);
    let (rm, rse) = mean_se(&elbo_estimates(iwae, loc, scale, 20)?);
    assert!(rm > exact + 4.0 * rse, "IWAE bound {rm} ± {rse} should exceed the ELBO {exact}");
    assert!(rm < log_z + 4.0 * rse, "IWAE bound {rm} ± {rse} should not exceed the log evidence {log_z}");
    Ok(())
}

#[test]
fn importance_sampling_estimates_the_log_evidence_within_its_standard_error() -> Result<()> {
    let log_z = log_evidence();
    let prior = Importance::prior(model, 3000).seed(7).run(&data(DType::F32))?;
    let (est, se) = (prior.log_evidence(), prior.log_evidence_se());
    assert!((est - log_z).abs() < 4.0 * se, "prior proposal: {est} ± {se} vs {log_z}");
    assert!(prior.ess() > 1.0 && prior.ess() < 3000.0);
    // A guide proposal near the posterior: far smaller error.
    let (m, s) = posterior();
    let store = ParamStore::new();
    let proposal = Importance::new(model, guide_at(m + 0.1, s * 1.2), &store, 1000).seed(8).run(&data(DType::F32))?;
    let (est2, se2) = (proposal.log_evidence(), proposal.log_evidence_se());
    assert!((est2 - log_z).abs() < 4.0 * se2 + 1e-4, "guide proposal: {est2} ± {se2} vs {log_z}");
    assert!(se2 < se, "a proposal near the posterior has a smaller error ({se2} vs {se})");
    let w: f64 = proposal.normalized_weights().iter().sum();
    assert!((w - 1.0).abs() < 1e-9);
    let mean = scalar(&proposal.mean("mu")?);
    assert!((mean - m).abs() < 0.05, "weighted posterior mean {mean} vs {m}");
    Ok(())
}

/// The surrogate's gradient and the central finite difference of the loss (same seed, f64) for
/// every parameter.
fn gradient_check(elbo: &mut dyn Elbo, model: Bound<'_>, guide: Bound<'_>, store: &ParamStore) -> Result<()> {
    let estimate = |elbo: &mut dyn Elbo| handlers::seed(11, || store.scope(|| elbo.estimate(model, guide)));
    estimate(elbo)?; // creates the parameters and runs first-estimate checks
    let est = estimate(elbo)?;
    let grads = est.surrogate.backward()?;
    let h = 1e-5;
    for (name, var) in store.vars() {
        let g = scalar(grads.get(var.as_tensor()).expect("every parameter has a gradient"));
        let v0 = var.as_tensor().copy()?;
        var.set(&(&v0 + h)?)?;
        let up = estimate(elbo)?.loss;
        var.set(&(&v0 - h)?)?;
        let down = estimate(elbo)?.loss;
        var.set(&v0)?;
        let fd = (up - down) / (2.0 * h);
        assert!((g - fd).abs() < 1e-6 * (1.0 + fd.abs()), "`{name}`: surrogate gradient {g} vs finite difference {fd}");
    }
    Ok(())
}

#[test]
fn pathwise_surrogates_match_finite_differences() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let x = data(DType::F64);
    let m = || model(&x);
    let g = || guide_at(0.3, 0.8)(&x);
    let elbos: Vec<(&str, Box<dyn Elbo>)> = vec![
        ("TraceElbo", Box::new(TraceElbo::default().num_particles(3))),
        ("TraceElbo vectorized", Box::new(TraceElbo::default().num_particles(3).vectorize_particles(true))),
        ("TraceMeanFieldElbo", Box::new(TraceMeanFieldElbo::default().num_particles(2))),
        ("RenyiElbo", Box::new(RenyiElbo::new(0.5).num_particles(4).vectorize_particles(true))),
    ];
    for (name, mut elbo) in elbos {
        let store = ParamStore::new();
        gradient_check(elbo.as_mut(), &m, &g, &store).map_err(|e| Error::invalid_arg(name, "", e.to_string()))?;
    }
    Ok(())
}

/// The exact ELBO of z ~ Bernoulli(0.3), y ~ N(2z − 1, 1), y = 0.4, under q(z) = Bernoulli(σ(θ)).
fn exact_bernoulli_elbo(theta: f64) -> f64 {
    let q1 = 1.0 / (1.0 + (-theta).exp());
    let log_n = |y: f64, m: f64| -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * (y - m).powi(2);
    let term = |z: f64, q: f64| {
        let prior = if z == 1.0 { 0.3f64.ln() } else { 0.7f64.ln() };
        q * (prior + log_n(0.4, 2.0 * z - 1.0) - q.ln())
    };
    term(1.0, q1) + term(0.0, 1.0 - q1)
}

#[test]
fn score_function_gradients_are_unbiased_with_each_baseline() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let y = Tensor::new(0.4f64, &Device::Cpu)?;
    let model = || -> Result<()> {
        let z = ppl::sample("z", Bernoulli::new(0.3)?)?;
        ppl::observe("y", Normal::new(&z.affine(2.0, -1.0)?, 1.0)?, &y).map(|_| ())
    };
    let guide = || -> Result<()> {
        let theta = ppl::param("theta", 0.2)?;
        ppl::sample("z", Bernoulli::from_logits(&theta)?).map(|_| ())
    };
    let h = 1e-6;
    let exact = -(exact_bernoulli_elbo(0.2 + h) - exact_bernoulli_elbo(0.2 - h)) / (2.0 * h);
    let network = Baseline::network(|_tr| ppl::param("b0", -1.0));
    for (name, baseline) in [("none", Baseline::None), ("average", Baseline::default()), ("network", network)] {
        let mut elbo = TraceElbo::default().num_particles(4000).vectorize_particles(true).baseline("z", baseline);
        let store = ParamStore::new();
        let mut gs = Vec::new();
        for rep in 0..10 {
            let est = handlers::seed(100 + rep, || store.scope(|| elbo.estimate(&model, &guide)))?;
            let grads = est.surrogate.backward()?;
            let theta = store.get_unconstrained("theta").unwrap();
            gs.push(scalar(grads.get(theta.as_tensor()).unwrap()));
            if name == "network" {
                let b0 = store.get_unconstrained("b0").unwrap();
                assert!(grads.get(b0.as_tensor()).is_some(), "the network baseline is trained");
            }
        }
        let (m, se) = mean_se(&gs);
        assert!((m - exact).abs() < 4.0 * se, "baseline {name}: gradient {m} ± {se} vs exact {exact}");
    }
    Ok(())
}
