//! MCMC: the potential against hand-written log-densities, NUTS and HMC against analytic and
//! published posteriors (tolerances from Monte Carlo standard errors), the diagnostics against
//! ArviZ, reproducibility, and errors.

use ppl::dist::{Bernoulli, Beta, Exponential, HalfCauchy, Normal, Poisson};
use ppl::infer::{
    ChainMethod, Hmc, HmcConfig, MassMatrix, Mcmc, McmcConfig, McmcSamples, ModelPotential, Nuts, NutsConfig,
    Potential, autocorrelation, effective_sample_size, ess_bulk, ess_mean, ess_tail, mcse_mean, split_rhat,
};
use ppl::prelude::*;
use std::f64::consts::PI;

fn cfg(warmup: usize, samples: usize, chains: usize, seed: u64) -> McmcConfig {
    McmcConfig {
        num_warmup: warmup,
        num_samples: samples,
        num_chains: chains,
        seed,
        progress_bar: false,
        ..Default::default()
    }
}

/// Per-chain draws of element `e` of site `name`.
fn draws(s: &McmcSamples, name: &str, e: usize) -> Vec<Vec<f64>> {
    let t = s.get(name).unwrap();
    let (c, d) = (t.dim(0).unwrap(), t.dim(1).unwrap());
    let v = t.to_dtype(DType::F64).unwrap().reshape((c, d, ())).unwrap().to_vec3::<f64>().unwrap();
    v.iter().map(|ch| ch.iter().map(|x| x[e]).collect()).collect()
}

fn mean(chains: &[Vec<f64>]) -> f64 {
    let n = chains.iter().map(|c| c.len()).sum::<usize>() as f64;
    chains.iter().flatten().sum::<f64>() / n
}

fn map(chains: &[Vec<f64>], f: impl Fn(f64) -> f64) -> Vec<Vec<f64>> {
    chains.iter().map(|c| c.iter().map(|&x| f(x)).collect()).collect()
}

/// Checks E[x] = `m` and E[x²] = `m2` within 4 Monte Carlo standard errors.
fn check_moments(chains: &[Vec<f64>], m: f64, m2: f64, what: &str) {
    let (got, se) = (mean(chains), mcse_mean(chains));
    assert!((got - m).abs() < 4.0 * se, "{what}: mean {got} vs {m} (mcse {se})");
    let sq = map(chains, |x| x * x);
    let (got2, se2) = (mean(&sq), mcse_mean(&sq));
    assert!((got2 - m2).abs() < 4.0 * se2, "{what}: E[x^2] {got2} vs {m2} (mcse {se2})");
}

fn eight_schools_data() -> (Tensor, Tensor) {
    let text = include_str!("../data/eight_schools.csv");
    let (mut y, mut sigma) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        y.push(cols[1].trim().parse::<f32>().unwrap());
        sigma.push(cols[2].trim().parse::<f32>().unwrap());
    }
    (Tensor::new(y, &Device::Cpu).unwrap(), Tensor::new(sigma, &Device::Cpu).unwrap())
}

/// Non-centered eight schools: mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_tilde ~ N(0, 1),
/// y ~ N(mu + tau * theta_tilde, sigma). The data arrive as f32 and are cast to f64 once.
fn eight_schools_nc(data: &(Tensor, Tensor)) -> Result<()> {
    let (y, sigma) = data;
    let mu = ppl::sample("mu", Normal::new(0.0, 5.0)?)?;
    let tau = ppl::sample("tau", HalfCauchy::new(5.0)?)?;
    ppl::plate("schools", y.dim(0)?, |_| {
        let tt = ppl::sample("theta_tilde", Normal::new(0.0, 1.0)?)?;
        let theta = tt.broadcast_mul(&tau)?.broadcast_add(&mu)?;
        ppl::observe("y", Normal::new(&theta, sigma)?, y)?;
        Ok(())
    })
}

fn eight_schools_centered(data: &(Tensor, Tensor)) -> Result<()> {
    let (y, sigma) = data;
    let mu = ppl::sample("mu", Normal::new(0.0, 5.0)?)?;
    let tau = ppl::sample("tau", HalfCauchy::new(5.0)?)?;
    ppl::plate("schools", y.dim(0)?, |_| {
        let theta = ppl::sample("theta", Normal::new(&mu, &tau)?)?;
        ppl::observe("y", Normal::new(&theta, sigma)?, y)?;
        Ok(())
    })
}

fn normal_lp(x: f64, m: f64, s: f64) -> f64 {
    -0.5 * ((x - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * PI).ln()
}

#[test]
fn potential_is_the_joint_log_density_with_jacobian_and_its_gradient() -> Result<()> {
    let data = eight_schools_data();
    let cast = (data.0.to_dtype(DType::F64)?, data.1.to_dtype(DType::F64)?);
    let mut pot = ModelPotential::new(&eight_schools_nc, &cast, DType::F64, &Device::Cpu)?;
    assert_eq!(pot.dim(), 10);
    let names: Vec<_> = pot.layout().sites().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["mu", "tau", "theta_tilde"]);
    let x: Vec<f64> = (0..10).map(|i| 0.3 * i as f64 - 1.1).collect();
    // Written out by hand: tau = exp(x[1]); log|d tau / d x| = x[1].
    let y: Vec<f64> = cast.0.to_vec1()?;
    let sigma: Vec<f64> = cast.1.to_vec1()?;
    let hand = |x: &[f64]| {
        let (mu, tau) = (x[0], x[1].exp());
        let mut lp = normal_lp(mu, 0.0, 5.0) + (2.0 / (PI * 5.0 * (1.0 + (tau / 5.0).powi(2)))).ln() + x[1];
        for j in 0..8 {
            lp += normal_lp(x[2 + j], 0.0, 1.0) + normal_lp(y[j], mu + tau * x[2 + j], sigma[j]);
        }
        lp
    };
    let mut grad = vec![0.0; 10];
    let lp = pot.log_density(&x, &mut grad)?;
    assert!((lp - hand(&x)).abs() < 1e-10, "{lp} vs {}", hand(&x));
    for i in 0..10 {
        let h = 1e-6;
        let (mut a, mut b) = (x.clone(), x.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (hand(&a) - hand(&b)) / (2.0 * h);
        assert!((grad[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "coordinate {i}: {} vs {fd}", grad[i]);
    }
    assert_eq!(pot.num_evaluations(), 1);
    Ok(())
}

#[test]
fn nuts_standard_normal_10d_moments() -> Result<()> {
    let model = |_: &()| -> Result<()> {
        ppl::sample("x", Normal::new(0.0, 1.0)?.expand(&[10])?)?;
        Ok(())
    };
    let s = Mcmc::new(Nuts::new(model), cfg(300, 1000, 2, 1)).run(&())?;
    assert_eq!(s.get("x").unwrap().dims(), &[2, 1000, 10]);
    for e in 0..10 {
        check_moments(&draws(&s, "x", e), 0.0, 1.0, &format!("x[{e}]"));
    }
    Ok(())
}

/// x ~ N(0, Σ), Σ = [[1, 1.8], [1.8, 4]] (sd 1 and 2, correlation 0.9), written as x0 ~ N(0, 1),
/// x1 | x0 ~ N(1.8 x0, sqrt(4 - 1.8²)).
fn correlated(_: &()) -> Result<()> {
    let x0 = ppl::sample("x0", Normal::new(0.0, 1.0)?)?;
    ppl::sample("x1", Normal::new(&(&x0 * 1.8)?, (4.0f64 - 1.8 * 1.8).sqrt())?)?;
    Ok(())
}

#[test]
fn nuts_correlated_gaussian_moments_and_dense_adaptation() -> Result<()> {
    let diag = Mcmc::new(Nuts::new(correlated), cfg(500, 1000, 2, 2)).run(&())?;
    let x0 = draws(&diag, "x0", 0);
    let x1 = draws(&diag, "x1", 0);
    check_moments(&x0, 0.0, 1.0, "x0");
    check_moments(&x1, 0.0, 4.0, "x1");
    let prod: Vec<Vec<f64>> = x0.iter().zip(&x1).map(|(a, b)| a.iter().zip(b).map(|(a, b)| a * b).collect()).collect();
    assert!((mean(&prod) - 1.8).abs() < 4.0 * mcse_mean(&prod), "cov {}", mean(&prod));

    // A dense metric makes the target isotropic: far fewer leapfrog steps per draw.
    let dense_cfg = NutsConfig { mass_matrix: MassMatrix::Dense, ..Default::default() };
    let dense = Mcmc::new(Nuts::with_config(correlated, dense_cfg), cfg(500, 1000, 2, 2)).run(&())?;
    check_moments(&draws(&dense, "x1", 0), 0.0, 4.0, "x1 (dense)");
    let steps =
        |s: &McmcSamples| (0..2).flat_map(|c| s.stats(c).iter().map(|d| d.num_steps as f64)).sum::<f64>() / 2000.0;
    assert!(steps(&dense) < 0.6 * steps(&diag), "dense {} vs diagonal {} steps", steps(&dense), steps(&diag));
    Ok(())
}

#[test]
fn hmc_dense_adaptation_recovers_the_covariance() -> Result<()> {
    let hmc = HmcConfig { mass_matrix: MassMatrix::Dense, ..Default::default() };
    let s = Mcmc::new(Hmc::with_config(correlated, hmc), cfg(1000, 500, 1, 3)).run(&())?;
    let inv = s.chains()[0].inverse_mass_matrix.clone().unwrap();
    // The last window has 500 draws; with HMC's autocorrelation its covariance estimate is good
    // to about 10% (relative standard error sqrt(2/ESS), ESS ≳ 200): allow 4 of those.
    let truth = [1.0, 1.8, 1.8, 4.0];
    for k in 0..4 {
        assert!((inv[k] - truth[k]).abs() < 0.4 * truth[k], "entry {k}: {} vs {}", inv[k], truth[k]);
    }
    check_moments(&draws(&s, "x1", 0), 0.0, 4.0, "x1 (hmc)");
    Ok(())
}

/// Stan's reference posterior of eight schools, non-centered: posteriordb
/// `reference_posteriors/summary_statistics/mean/mean/eight_schools-eight_schools_noncentered.json`
/// (github.com/stan-dev/posteriordb, commit e3545336): mu mean 4.41051833695493 (mcse 0.0330),
/// tau mean 3.60205952364059 (mcse 0.0319); posterior sds ≈ 3.3 and 3.2.
#[test]
fn eight_schools_noncentered_matches_stans_reference_posterior() -> Result<()> {
    let data = eight_schools_data();
    let s = Mcmc::new(Nuts::new(eight_schools_nc), cfg(500, 1000, 4, 4)).run(&data)?;
    let summary = s.compute_summary()?;
    for (name, ref_mean, ref_mcse, ref_sd, sd_tol) in
        [("mu", 4.41051833695493, 0.0330, 3.3, 0.12), ("tau", 3.60205952364059, 0.0319, 3.2, 0.15)]
    {
        let row = summary.row(name).unwrap();
        let se = (row.mcse_mean.powi(2) + ref_mcse * ref_mcse).sqrt();
        assert!((row.mean - ref_mean).abs() < 4.0 * se, "{name}: mean {} vs {ref_mean} (se {se})", row.mean);
        assert!((row.sd - ref_sd).abs() < sd_tol * ref_sd, "{name}: sd {} vs ≈{ref_sd}", row.sd);
    }
    for row in &summary.rows {
        assert!(row.r_hat < 1.01, "{}: r_hat {}", row.name, row.r_hat);
    }
    // theta = mu + tau * theta_tilde must match too: school A (reference mean 6.1505, mcse 0.0557).
    let mu = s.get("mu").unwrap().flatten_all()?;
    let tau = s.get("tau").unwrap().flatten_all()?;
    let tt = s.get_flat("theta_tilde")?.narrow(1, 0, 1)?.flatten_all()?;
    let theta_a = (mu + (tau * tt)?)?.reshape((4, 1000))?.to_vec2::<f64>()?;
    let se = (mcse_mean(&theta_a).powi(2) + 0.0557f64.powi(2)).sqrt();
    assert!((mean(&theta_a) - 6.15050229334425).abs() < 4.0 * se, "theta[1] mean {}", mean(&theta_a));
    Ok(())
}

#[test]
fn eight_schools_centered_reports_divergences() -> Result<()> {
    let data = eight_schools_data();
    let s = Mcmc::new(Nuts::new(eight_schools_centered), cfg(300, 500, 1, 5)).run(&data)?;
    let n = s.num_divergences();
    assert!(n > 0, "the centered funnel should diverge");
    let summary = s.compute_summary()?;
    let text = summary.to_string();
    assert!(text.contains(&format!("Number of divergences: {n} (per chain: {n})")), "{text}");
    assert!(text.contains("Tree depth 10 reached in"), "{text}");
    for col in ["mean", "sd", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat", "theta[7]"] {
        assert!(text.contains(col), "missing {col}: {text}");
    }
    Ok(())
}

#[test]
fn beta_bernoulli_matches_the_analytic_posterior() -> Result<()> {
    // Beta(2, 2) prior, 7 heads in 10 flips → Beta(9, 5).
    let flips = Tensor::new(&[1f32, 1., 0., 1., 1., 0., 1., 1., 0., 1.], &Device::Cpu)?;
    let model = |x: &Tensor| -> Result<()> {
        let p = ppl::sample("p", Beta::new(2.0, 2.0)?)?;
        ppl::plate("flips", x.dim(0)?, |_| ppl::observe("x", Bernoulli::new(&p)?, x).map(|_| ()))
    };
    let s = Mcmc::new(Nuts::new(model), cfg(300, 1000, 2, 6)).run(&flips)?;
    let (a, b) = (9.0, 5.0);
    let m = a / (a + b);
    let var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
    check_moments(&draws(&s, "p", 0), m, var + m * m, "p");
    Ok(())
}

/// mu ~ N(0, 2²), y_i ~ N(mu, 1): posterior N(Σy / (n + 1/4), 1 / (n + 1/4)).
fn normal_normal(y: &Tensor) -> Result<()> {
    let mu = ppl::sample("mu", Normal::new(0.0, 2.0)?)?;
    ppl::plate("data", y.dim(0)?, |_| ppl::observe("y", Normal::new(&mu, 1.0)?, y).map(|_| ()))
}

#[test]
fn normal_normal_matches_the_analytic_posterior_with_nuts_and_hmc() -> Result<()> {
    let yv = [1.2f32, 0.4, 2.1, 1.6, 0.9];
    let y = Tensor::new(&yv, &Device::Cpu)?; // f32 data, converted once to the f64 potential
    let prec = 5.0 + 0.25;
    let (m, v) = (yv.iter().map(|&v| v as f64).sum::<f64>() / prec, 1.0 / prec);
    let s = Mcmc::new(Nuts::new(normal_normal), cfg(300, 1000, 2, 7)).run(&y)?;
    assert_eq!(s.get("mu").unwrap().dtype(), DType::F64);
    check_moments(&draws(&s, "mu", 0), m, v + m * m, "mu (nuts)");
    // `run_uncast` leaves the argument alone; the observed f32 values are still converted.
    let s = Mcmc::new(Hmc::new(normal_normal), cfg(300, 1000, 2, 8)).run_uncast(&y)?;
    check_moments(&draws(&s, "mu", 0), m, v + m * m, "mu (hmc)");
    Ok(())
}

// Reference values from ArviZ 0.23.4 (numpy 2.4.6, scipy 1.17.1) on the arrays below:
//   az.ess(x, method="bulk"), az.ess(x, method="tail"), az.ess(x, method="mean"),
//   az.rhat(x, method="rank"), az.mcse(x, method="mean"), arviz.stats.diagnostics._ess(A),
//   az.autocorr(A[0])[:4]. The arrays are AR(1) draws (numpy default_rng(20261130), rounded).
const A: [[f64; 25]; 4] = [
    [
        -1.253, -2.548, -1.463, -1.464, -1.111, -0.621, 0.301, -0.403, 0.289, -0.250, -0.983, 1.472, 0.796, -0.310,
        0.807, -1.058, -1.545, -0.439, -0.585, -0.170, 2.254, 2.600, -0.462, -0.939, -1.229,
    ],
    [
        -0.826, -2.144, -0.518, 0.154, 1.256, -2.130, -1.077, -1.197, -0.472, -0.725, -2.290, 0.027, 0.675, 0.485,
        1.015, 0.223, -0.951, -1.463, -0.505, 1.291, 0.800, -0.023, -0.020, 0.674, 1.420,
    ],
    [
        -1.191, -0.334, -0.273, 0.954, 0.755, -0.352, -0.754, -1.270, -0.102, 0.012, -1.278, 0.116, -1.817, -3.149,
        -1.577, -0.612, 0.972, -0.059, 0.265, 2.824, 1.889, 1.452, 0.420, 0.939, 1.007,
    ],
    [
        -0.912, -1.209, -0.254, 1.181, 0.390, 1.389, -0.513, -0.589, 0.166, 0.308, 2.446, 1.174, 0.440, -2.458, -1.958,
        -1.739, -0.180, -0.447, -0.263, 1.882, 1.094, -0.863, -0.406, -1.132, -1.018,
    ],
];
const B: [[f64; 31]; 2] = [
    [
        -1.120, -2.213, -1.362, -0.678, -1.226, -2.236, -1.413, -1.906, -0.031, 0.415, 2.248, 2.838, 2.882, 3.094,
        2.812, 2.506, 2.102, 2.393, 3.096, 1.405, 3.273, 3.519, 1.981, 1.694, 2.289, 1.627, 2.022, 1.622, 1.388, 1.021,
        1.151,
    ],
    [
        -1.346, -1.875, -1.649, -0.018, 0.147, 1.371, -0.185, -1.309, -0.487, -0.756, 0.328, 2.164, 3.387, 3.440,
        4.288, 3.637, 3.086, 3.897, 4.193, 3.462, 2.342, 0.408, -0.381, 0.104, 0.339, -1.891, -2.086, -2.252, -1.623,
        -1.341, -1.186,
    ],
];

#[test]
fn diagnostics_match_arviz() {
    let close = |got: f64, want: f64, what: &str| {
        assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{what}: {got} vs {want}")
    };
    close(ess_bulk(&A), 50.42376160201388, "A ess_bulk");
    close(ess_tail(&A), 61.30976503556801, "A ess_tail");
    close(ess_mean(&A), 52.99788642646368, "A ess_mean");
    close(split_rhat(&A), 1.0413383948459392, "A rhat");
    close(mcse_mean(&A), 0.16274143763072912, "A mcse_mean");
    close(effective_sample_size(&A), 52.20848129841913, "A _ess");
    close(ess_bulk(&B), 14.465201078718847, "B ess_bulk");
    close(ess_tail(&B), 39.32809149392425, "B ess_tail");
    close(ess_mean(&B), 12.630946453029571, "B ess_mean");
    close(split_rhat(&B), 1.0360949435173041, "B rhat");
    close(mcse_mean(&B), 0.560083259609074, "B mcse_mean");
    let ac = autocorrelation(&A[0]);
    for (k, want) in [1.0, 0.46156926386222963, 0.051992736466558366, -0.017613471572566517].into_iter().enumerate() {
        close(ac[k], want, &format!("autocorr lag {k}"));
    }
}

#[test]
fn same_seed_same_chains_and_threads_equal_sequential() -> Result<()> {
    let y = Tensor::new(&[1.2f32, 0.4, 2.1], &Device::Cpu)?;
    let run = |method: ChainMethod, seed: u64| {
        let c = McmcConfig { chain_method: method, ..cfg(50, 50, 3, seed) };
        Mcmc::new(Nuts::new(normal_normal), c).run(&y)
    };
    let flat = |s: &McmcSamples| s.get("mu").unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let a = run(ChainMethod::Parallel, 11)?;
    let b = run(ChainMethod::Parallel, 11)?;
    let c = run(ChainMethod::Sequential, 11)?;
    let d = run(ChainMethod::Parallel, 12)?;
    assert_eq!(flat(&a), flat(&b));
    assert_eq!(flat(&a), flat(&c));
    assert_ne!(flat(&a), flat(&d));
    // Thinning keeps every other draw of the same chains.
    let thin = Mcmc::new(Nuts::new(normal_normal), McmcConfig { thinning: 2, ..cfg(50, 50, 3, 11) }).run(&y)?;
    let every_other: Vec<Vec<f64>> =
        a.get("mu").unwrap().to_vec2::<f64>()?.iter().map(|c| c.iter().step_by(2).copied().collect()).collect();
    assert_eq!(thin.get("mu").unwrap().to_vec2::<f64>()?, every_other);
    // Chains differ from each other.
    let mu = a.get("mu").unwrap().to_vec2::<f64>()?;
    assert_ne!(mu[0], mu[1]);
    Ok(())
}

#[test]
fn nan_region_gives_divergences_and_sampling_goes_on() -> Result<()> {
    // x ~ N(0, 1) but the log-density is NaN for x > 1: the posterior is N(0, 1) truncated to x ≤ 1.
    let model = |_: &()| -> Result<()> {
        let x = ppl::sample("x", Normal::new(0.0, 1.0)?)?;
        let nan = Tensor::new(f64::NAN, x.device())?;
        let w = x.gt(1.0)?.where_cond(&nan, &x.zeros_like()?)?;
        ppl::factor("cut", &w)
    };
    let s = Mcmc::new(Nuts::new(model), cfg(200, 500, 1, 9)).run(&())?;
    assert!(s.num_divergences() > 0);
    let x = draws(&s, "x", 0);
    assert!(x[0].iter().all(|&v| v <= 1.0));
    // Truncated normal mean: -φ(1)/Φ(1) = -0.2876.
    let (m, se) = (mean(&x), mcse_mean(&x));
    assert!((m + 0.28759979).abs() < 4.0 * se, "mean {m} (mcse {se})");
    Ok(())
}

#[test]
fn model_with_no_valid_point_names_the_site_and_value() {
    // An observation outside the support at every point: log-density -inf everywhere.
    let model = |_: &()| -> Result<()> {
        let mu = ppl::sample("mu", Normal::new(0.0, 1.0)?)?;
        ppl::observe("obs", Exponential::new(&mu.exp()?)?, &Tensor::new(-0.5f64, &Device::Cpu)?)?;
        Ok(())
    };
    let c = McmcConfig { max_init_tries: 5, ..cfg(10, 10, 1, 0) };
    let err = Mcmc::new(Nuts::new(model), c).run(&()).unwrap_err().to_string();
    assert!(err.contains("site `obs`"), "{err}");
    assert!(err.contains("no valid starting point in 5 tries of init_to_uniform(2)"), "{err}");
    assert!(err.contains("at value -0.5"), "{err}");
}

#[test]
fn model_errors_are_returned_naming_the_site() {
    let model = |_: &()| -> Result<()> {
        let mu = ppl::sample("mu", Normal::new(0.0, 1.0)?.expand(&[3])?)?;
        let bad = Tensor::new(&[1f64, 2.], &Device::Cpu)?;
        ppl::observe("y", Normal::new(&mu, 1.0)?, &bad)?; // shape [2] against batch [3]
        Ok(())
    };
    let err = Mcmc::new(Nuts::new(model), cfg(10, 10, 2, 0)).run(&()).unwrap_err().to_string();
    assert!(err.contains("site `y`"), "{err}");

    let discrete = |_: &()| -> Result<()> {
        ppl::sample("k", Poisson::new(3.0)?)?;
        Ok(())
    };
    let err = Mcmc::new(Nuts::new(discrete), cfg(10, 10, 1, 0)).run(&()).unwrap_err().to_string();
    assert!(err.contains("site `k`") && err.contains("discrete"), "{err}");

    let panics = |_: &()| -> Result<()> {
        let x = ppl::sample("x", Normal::new(0.0, 1.0)?)?;
        if x.to_scalar::<f64>()?.is_finite() {
            panic!("boom at every point");
        }
        Ok(())
    };
    let err = Mcmc::new(Nuts::new(panics), cfg(10, 10, 2, 0)).run(&()).unwrap_err().to_string();
    assert!(err.contains("the model panicked: boom at every point"), "{err}");
}

#[test]
fn csv_has_cmdstans_layout() -> Result<()> {
    let data = eight_schools_data();
    let s = Mcmc::new(Nuts::new(eight_schools_nc), cfg(50, 20, 2, 10)).run(&data)?;
    let dir = std::env::temp_dir().join(format!("ppl-mcmc-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = s.to_csv(dir.join("es.csv"))?;
    assert_eq!(files, vec![dir.join("es_1.csv"), dir.join("es_2.csv")]);
    let text = std::fs::read_to_string(&files[1]).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let header: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(
        &header[..9],
        ["lp__", "accept_stat__", "stepsize__", "treedepth__", "n_leapfrog__", "divergent__", "energy__", "mu", "tau"]
    );
    assert_eq!(header[9], "theta_tilde.1");
    assert_eq!(header.len(), 7 + 10);
    assert_eq!(rows.len(), 21);
    let mu: Vec<f64> = s.get("mu").unwrap().get(1)?.to_vec1()?;
    for (d, row) in rows[1..].iter().enumerate() {
        let v: f64 = row.split(',').nth(7).unwrap().parse().unwrap();
        assert_eq!(v, mu[d]);
    }
    assert!(text.contains("# num_warmup = 50") || text.contains("#     num_warmup = 50"));
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}
