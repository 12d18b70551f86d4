//! Autoguides against closed-form posteriors, finite-difference Hessians and Jacobians, and the
//! subsampling and initialisation contracts.

use ppl::dist::{Bernoulli, Beta, Exponential, Gamma, Normal, Poisson, Uniform};
use ppl::handlers::{data, replay, seed, trace};
use ppl::optim::{Adam, Optimizer, Scheduled, StepLr};
use ppl::prelude::*;
use ppl::{ParamStore, PlateOptions, Rng};

fn vec1(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    vec1(t)[0]
}

/// One ELBO estimate (single particle) of `guide` for `model`: log p - log q, as a tensor.
fn elbo<A: ?Sized, M1, M2>(model: &impl Program<A, M1>, guide: &impl Program<A, M2>, args: &A) -> Result<Tensor> {
    let (_, gtr) = trace(|| guide.run(args))?;
    let (_, mtr) = trace(|| replay(&gtr, || model.run(args)))?;
    Ok((mtr.log_prob_sum()? - gtr.log_prob_sum()?)?)
}

/// Fits `guide` by Adam on the single-particle ELBO: `phases` of `(steps, learning rate)`, each
/// with a fresh optimizer; step `i` is seeded with `seed + i`. `each_last` sees the store after
/// every step of the last phase (for iterate averaging).
fn fit_with<A: ?Sized, M1, M2>(
    model: &impl Program<A, M1>,
    guide: &impl Program<A, M2>,
    args: &A,
    phases: &[(usize, f64)],
    seed0: u64,
    mut each_last: impl FnMut(&ParamStore),
) -> ParamStore {
    let store = ParamStore::new();
    let mut i = 0;
    for (k, &(steps, lr)) in phases.iter().enumerate() {
        let mut adam = Adam::new(lr);
        for _ in 0..steps {
            let loss = store.scope(|| seed(seed0 + i, || elbo(model, guide, args))).unwrap().neg().unwrap();
            adam.step(&store, &loss.backward().unwrap()).unwrap();
            i += 1;
            if k + 1 == phases.len() {
                each_last(&store);
            }
        }
    }
    store
}

fn fit<A: ?Sized, M1, M2>(
    model: &impl Program<A, M1>,
    guide: &impl Program<A, M2>,
    args: &A,
    phases: &[(usize, f64)],
    seed0: u64,
) -> ParamStore {
    fit_with(model, guide, args, phases, seed0, |_| {})
}

/// Fits with [`fit_with`] and returns the average of `read(store)` over the last phase
/// (Polyak averaging: the stochastic-gradient iterate fluctuates around the optimum, its
/// average converges to it).
fn fit_averaged<A: ?Sized, M1, M2>(
    model: &impl Program<A, M1>,
    guide: &impl Program<A, M2>,
    args: &A,
    phases: &[(usize, f64)],
    seed0: u64,
    mut read: impl FnMut(&ParamStore) -> Vec<f64>,
) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    let mut n = 0.0;
    fit_with(model, guide, args, phases, seed0, |s| {
        let v = read(s);
        if sum.is_empty() {
            sum = vec![0.0; v.len()];
        }
        sum.iter_mut().zip(v).for_each(|(a, b)| *a += b);
        n += 1.0;
    });
    sum.into_iter().map(|v| v / n).collect()
}

fn param2(s: &ParamStore, name: &str) -> Vec<Vec<f64>> {
    s.get(name).unwrap().unwrap().to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap()
}

fn param1(s: &ParamStore, name: &str) -> Vec<f64> {
    vec1(&s.get(name).unwrap().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Bayesian linear regression with known noise: the exact posterior is Gaussian.

const SIGMA: f64 = 0.5;

struct Regression {
    x: Tensor,
    y: Tensor,
    mean: Vec<f64>,
    cov: Vec<Vec<f64>>,
    precision: Vec<Vec<f64>>,
}

/// 3 coefficients, N(0, 1) prior, 12 points with correlated covariates.
fn regression() -> Regression {
    let n = 12;
    let xs: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64 * 2.0 - 1.0;
            [1.0, t, t * t + 0.3 * t]
        })
        .collect();
    let w_true = [0.5, -1.0, 0.8];
    let noise = [0.3, -0.2, 0.1, 0.4, -0.5, 0.2, 0.0, -0.1, 0.3, -0.3, 0.2, -0.4];
    let ys: Vec<f64> = xs.iter().zip(noise).map(|(x, e)| (0..3).map(|k| x[k] * w_true[k]).sum::<f64>() + e).collect();
    // Λ = I + XᵀX / σ², μ = Λ⁻¹ Xᵀy / σ².
    let mut prec = vec![vec![0.0; 3]; 3];
    let mut b = [0.0; 3];
    for (x, y) in xs.iter().zip(&ys) {
        for i in 0..3 {
            b[i] += x[i] * y / (SIGMA * SIGMA);
            for j in 0..3 {
                prec[i][j] += x[i] * x[j] / (SIGMA * SIGMA);
            }
        }
    }
    for (i, row) in prec.iter_mut().enumerate() {
        row[i] += 1.0;
    }
    let cov = inverse3(&prec);
    let mean = (0..3).map(|i| (0..3).map(|j| cov[i][j] * b[j]).sum()).collect();
    let flat: Vec<f32> = xs.iter().flat_map(|x| x.iter().map(|&v| v as f32)).collect();
    let x = Tensor::from_vec(flat, (n, 3), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(ys.iter().map(|&v| v as f32).collect::<Vec<_>>(), n, &Device::Cpu).unwrap();
    Regression { x, y, mean, cov, precision: prec }
}

fn inverse3(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    let c = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0]
    };
    (0..3).map(|i| (0..3).map(|j| c(j, i) / det).collect()).collect()
}

fn regression_model(d: &(Tensor, Tensor)) -> Result<()> {
    let (x, y) = d;
    let w = ppl::sample("w", Normal::new(&Tensor::zeros(3, DType::F32, x.device())?, 1.0)?.to_event(1)?)?;
    let mean = x.matmul(&w.unsqueeze(1)?)?.squeeze(1)?;
    ppl::plate("data", y.dim(0)?, |_| {
        ppl::observe("y", Normal::new(&mean, SIGMA)?, y)?;
        Ok(())
    })
}

/// Training schedule for the regression guides: a fast phase, then a slow one over which the
/// parameters are averaged.
const REG_PHASES: [(usize, f64); 2] = [(3000, 0.01), (3000, 0.001)];

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want} (tolerance {tol})");
}

/// Checks averaged `[loc (3), cov (9)]` against the exact posterior.
fn check_gaussian(avg: &[f64], r: &Regression) {
    for i in 0..3 {
        // Averaged over the last phase, the fit agrees with the optimum to a few percent of a
        // posterior sd (the remaining error is the iterate noise after averaging).
        assert_close(&format!("mean[{i}]"), avg[i], r.mean[i], 0.05 * r.cov[i][i].sqrt());
        for j in 0..3 {
            let scale = (r.cov[i][i] * r.cov[j][j]).sqrt();
            assert_close(&format!("cov[{i}][{j}]"), avg[3 + 3 * i + j], r.cov[i][j], 0.05 * scale);
        }
    }
}

#[test]
fn multivariate_normal_matches_the_exact_gaussian_posterior() {
    let r = regression();
    let args = (r.x.clone(), r.y.clone());
    let guide = AutoMultivariateNormal::new(regression_model);
    let avg = fit_averaged(&regression_model, &guide, &args, &REG_PHASES, 1, |s| {
        let l = param2(s, "AutoMultivariateNormal.scale_tril");
        let mut v = param1(s, "AutoMultivariateNormal.loc");
        v.extend((0..9).map(|k| (0..3).map(|m| l[k / 3][m] * l[k % 3][m]).sum::<f64>()));
        v
    });
    check_gaussian(&avg, &r);
}

#[test]
fn low_rank_with_full_rank_matches_the_exact_gaussian_posterior() {
    let r = regression();
    let args = (r.x.clone(), r.y.clone());
    let guide = AutoLowRankMultivariateNormal::new(regression_model).rank(3);
    let avg = fit_averaged(&regression_model, &guide, &args, &REG_PHASES, 2, |s| {
        let w = param2(s, "AutoLowRankMultivariateNormal.cov_factor");
        let d = param1(s, "AutoLowRankMultivariateNormal.scale");
        let mut v = param1(s, "AutoLowRankMultivariateNormal.loc");
        v.extend((0..9).map(|k| {
            let (i, j) = (k / 3, k % 3);
            (0..3).map(|m| w[i][m] * w[j][m]).sum::<f64>() + if i == j { d[i] * d[i] } else { 0.0 }
        }));
        v
    });
    check_gaussian(&avg, &r);
    assert_eq!(guide.latent_dim().unwrap(), 3);
}

#[test]
fn diagonal_normal_finds_the_means_and_the_conditional_variances() {
    let r = regression();
    let args = (r.x.clone(), r.y.clone());
    let guide = AutoDiagonalNormal::new(regression_model);
    let mut last = None;
    let avg = fit_averaged(&regression_model, &guide, &args, &REG_PHASES, 3, |s| {
        last = Some(s.clone());
        let mut v = param1(s, "AutoDiagonalNormal.loc");
        v.extend(param1(s, "AutoDiagonalNormal.scale").iter().map(|x| x * x));
        v
    });
    for i in 0..3 {
        let cond_var = 1.0 / r.precision[i][i];
        assert_close(&format!("mean[{i}]"), avg[i], r.mean[i], 0.05 * r.cov[i][i].sqrt());
        // The mean-field optimum: variance 1/Λᵢᵢ, smaller than the marginal Σᵢᵢ.
        assert_close(&format!("var[{i}]"), avg[3 + i], cond_var, 0.05 * cond_var);
    }
    // The test needs correlated coefficients (conditional variances well below the marginal ones).
    assert!(1.0 / r.precision[0][0] < 0.6 * r.cov[0][0] && 1.0 / r.precision[2][2] < 0.6 * r.cov[2][2]);
    let store = last.unwrap();
    let loc = param1(&store, "AutoDiagonalNormal.loc");
    let scale = param1(&store, "AutoDiagonalNormal.scale");
    // median and quantiles read the same parameters, in constrained space (real here).
    let med = guide.median(&store).unwrap();
    let qs = guide.quantiles(&store, &[0.1587, 0.5]).unwrap();
    let m = vec1(&med["w"]);
    let q = qs["w"].to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    for i in 0..3 {
        assert_close("median", m[i], loc[i], 1e-6);
        assert_close("0.5 quantile", q[1][i], loc[i], 1e-6);
        assert_close("0.1587 quantile", q[0][i], loc[i] - scale[i], 1e-3 * scale[i] + 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Closed-form MAP and Laplace.

/// rate ~ Gamma(2, 1); counts ~ Poisson(rate) (10 counts summing to 27).
fn gamma_poisson(a: f64) -> impl Fn(&Tensor) -> Result<()> + Copy {
    move |counts: &Tensor| {
        let rate = ppl::sample("rate", Gamma::new(a, 1.0)?)?;
        ppl::plate("obs", counts.dim(0)?, |_| {
            ppl::observe("counts", Poisson::new(&rate)?, counts)?;
            Ok(())
        })
    }
}

fn counts() -> Tensor {
    Tensor::new(&[2f32, 4.0, 1.0, 3.0, 5.0, 2.0, 3.0, 2.0, 4.0, 1.0], &Device::Cpu).unwrap()
}

#[test]
fn auto_delta_reaches_the_closed_form_map() {
    let model = gamma_poisson(2.0);
    let guide = AutoDelta::new(model);
    // No sampling noise: a Delta guide's ELBO is the log joint, deterministic.
    let store = fit(&model, &guide, &counts(), &[(800, 0.05), (400, 0.005)], 0);
    // Mode of Gamma(2 + 27, 1 + 10) in the constrained space: (a + Σx - 1) / (b + n).
    let map = (2.0 + 27.0 - 1.0) / (1.0 + 10.0);
    let got = scalar(&guide.median(&store).unwrap()["rate"]);
    assert_close("MAP", got, map, 1e-3 * map);
}

/// The model's unconstrained log joint for the Laplace test, written out by hand:
/// u = log(rate), rate ~ Gamma(a, 1) (with the Jacobian u), mu ~ N(0, 2),
/// counts ~ Poisson(rate), ys ~ N(mu + 0.3 u, 1).
fn laplace_log_joint(u: f64, mu: f64, counts: &[f64], ys: &[f64]) -> f64 {
    let a = 3.0;
    let rate = u.exp();
    let mut lp = (a - 1.0) * rate.ln() - rate + u; // Gamma(a, 1) up to a constant, plus log|dr/du|
    lp += -0.5 * (mu / 2.0).powi(2);
    for &c in counts {
        lp += c * rate.ln() - rate;
    }
    for &y in ys {
        lp += -0.5 * (y - mu - 0.3 * u).powi(2);
    }
    lp
}

fn laplace_model(d: &(Tensor, Tensor)) -> Result<()> {
    let (counts, ys) = d;
    let rate = ppl::sample("rate", Gamma::new(3.0, 1.0)?)?;
    let mu = ppl::sample("mu", Normal::new(0.0, 2.0)?)?;
    ppl::plate("c", counts.dim(0)?, |_| ppl::observe("counts", Poisson::new(&rate)?, counts))?;
    let m = (mu + rate.log()? * 0.3)?;
    ppl::plate("y", ys.dim(0)?, |_| ppl::observe("ys", Normal::new(&m, 1.0)?, ys))?;
    Ok(())
}

#[test]
fn laplace_covariance_is_the_inverse_finite_difference_hessian() {
    let ys = Tensor::new(&[0.9f32, 1.4, 0.7, 1.9], &Device::Cpu).unwrap();
    let args = (counts(), ys.clone());
    let guide = AutoLaplaceApproximation::new(laplace_model);
    let store = fit(&laplace_model, &guide, &args, &[(1500, 0.05), (500, 0.005)], 0);
    let loc = vec1(&store.get("AutoLaplaceApproximation.loc").unwrap().unwrap());
    assert_eq!(guide.layout().unwrap().iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["rate", "mu"]);
    let (cs, yv) = (vec1(&counts()), vec1(&ys));
    let f = |u: f64, m: f64| laplace_log_joint(u, m, &cs, &yv);
    // The gradient of the closed form vanishes at the fitted point (it is the unconstrained MAP).
    let h = 1e-4;
    let gu = (f(loc[0] + h, loc[1]) - f(loc[0] - h, loc[1])) / (2.0 * h);
    let gm = (f(loc[0], loc[1] + h) - f(loc[0], loc[1] - h)) / (2.0 * h);
    assert!(gu.abs() < 0.05 && gm.abs() < 0.05, "gradient at the MAP: {gu}, {gm}");
    // Hessian of -log p by second differences of function values (independent of the library).
    let h = 1e-3;
    let (u, m) = (loc[0], loc[1]);
    let huu = -(f(u + h, m) - 2.0 * f(u, m) + f(u - h, m)) / (h * h);
    let hmm = -(f(u, m + h) - 2.0 * f(u, m) + f(u, m - h)) / (h * h);
    let hum = -(f(u + h, m + h) - f(u + h, m - h) - f(u - h, m + h) + f(u - h, m - h)) / (4.0 * h * h);
    let det = huu * hmm - hum * hum;
    let want = [[hmm / det, -hum / det], [-hum / det, huu / det]];
    let mvn = guide.laplace_approximation(&store, &args).unwrap();
    let l = store
        .get("AutoLaplaceApproximation.mvn.scale_tril")
        .unwrap()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    for i in 0..2 {
        for j in 0..2 {
            let c: f64 = (0..2).map(|k| l[i][k] * l[j][k]).sum();
            // f32 model, gradients differenced with a 3e-3 step: agreement to ~1%.
            assert_close(&format!("cov[{i}][{j}]"), c, want[i][j], 0.02 * (want[i][i] * want[j][j]).sqrt());
        }
    }
    // The new guide's median is the MAP, constrained.
    let med = mvn.median(&store).unwrap();
    assert_close("rate", scalar(&med["rate"]), loc[0].exp(), 1e-4 * loc[0].exp());
    assert_close("mu", scalar(&med["mu"]), loc[1], 1e-5);
}

// ---------------------------------------------------------------------------------------------
// AutoNormal on conjugate models: medians and quantiles in constrained space.

fn beta_bernoulli(flips: &Tensor) -> Result<()> {
    let p = ppl::sample("p", Beta::new(2.0, 2.0)?)?;
    ppl::plate("flips", flips.dim(0)?, |_| ppl::observe("x", Bernoulli::new(&p)?, flips))?;
    Ok(())
}

#[test]
fn auto_normal_beta_bernoulli_median_and_quantiles() {
    let heads = 14;
    let flips: Vec<f32> = (0..20).map(|i| if i < heads { 1.0 } else { 0.0 }).collect();
    let flips = Tensor::new(flips.as_slice(), &Device::Cpu).unwrap();
    let guide = AutoNormal::new(beta_bernoulli);
    let store = fit(&beta_bernoulli, &guide, &flips, &[(1500, 0.03), (800, 0.003)], 0);
    // Posterior Beta(16, 8); scipy.stats.beta(16, 8): median 0.6713658, ppf(0.05) 0.5035649, ppf(0.95) 0.8136562.
    let med = scalar(&guide.median(&store).unwrap()["p"]);
    // A Normal in logit space is not exactly the Beta: its median sits within 0.015 of the truth.
    assert_close("median", med, 0.6713658, 0.015);
    let q = vec1(&guide.quantiles(&store, &[0.05, 0.5, 0.95]).unwrap()["p"]);
    assert!(q[0] < 0.6713658 && 0.6713658 < q[2], "quantiles {q:?} must bracket the median");
    assert_close("q05", q[0], 0.5035649, 0.03);
    assert_close("q95", q[2], 0.8136562, 0.03);
    assert_close("q50 = median", q[1], med, 1e-6);
    // Posterior draws live in (0, 1) and agree with the median.
    let draws = vec1(&guide.sample_posterior(&store, 2000, &mut Rng::seed_from_u64(5)).unwrap()["p"]);
    assert!(draws.iter().all(|&p| p > 0.0 && p < 1.0));
    let mut sorted = draws.clone();
    sorted.sort_by(f64::total_cmp);
    // Median of 2000 draws: standard error ≈ 1.25·sd/√2000 ≈ 0.0026.
    assert_close("draws' median", sorted[1000], med, 0.012);
}

#[test]
fn auto_normal_gamma_poisson_median_and_quantiles() {
    // Through `Svi`, as users write it: the guide is a handle, a clone reads the fit.
    let model = gamma_poisson(3.0);
    let guide = AutoNormal::new(model);
    let optim = Scheduled::new(Adam::new(0.03), StepLr { step_size: 1500, gamma: 0.1 });
    let mut svi = Svi::new(model, guide.clone(), optim, TraceElbo::default()).seed(0);
    svi.run(&counts(), 2300).unwrap();
    let store = svi.params().clone();
    // Posterior Gamma(30, rate 11); scipy.stats.gamma(30, scale=1/11): median 2.6970303,
    // ppf(0.05) 1.9630890, ppf(0.95) 3.5946338.
    let med = scalar(&guide.median(&store).unwrap()["rate"]);
    assert_close("median", med, 2.6970303, 0.05);
    let q = vec1(&guide.quantiles(&store, &[0.05, 0.95]).unwrap()["rate"]);
    assert!(q[0] < 2.6970303 && 2.6970303 < q[1], "quantiles {q:?} must bracket the median");
    assert_close("q05", q[0], 1.9630890, 0.1);
    assert_close("q95", q[1], 3.5946338, 0.12);
    // The fitted posterior as a distribution: a Normal pushed through exp, whose cdf at the
    // median is 1/2 (checked through its log-density: d/dy P(Y <= y) by the transform).
    let post = guide.get_posterior(&store).unwrap();
    let lp_at_median = scalar(&post["rate"].log_prob(&Tensor::new(med as f32, &Device::Cpu).unwrap()).unwrap());
    let (loc, scale) = (
        scalar(&store.get("AutoNormal.locs.rate").unwrap().unwrap()),
        scalar(&store.get("AutoNormal.scales.rate").unwrap().unwrap()),
    );
    let want = -0.5 * (2.0 * std::f64::consts::PI).ln() - scale.ln() - med.ln();
    assert_close("log q(median)", lp_at_median, want, 1e-4);
    assert_close("median = exp(loc)", med, loc.exp(), 1e-4 * med);
    // Predictive accepts the autoguide: posterior draws of the latent and of new counts.
    let out = Predictive::from_guide(model, guide.clone(), &store, 400).seed(0).run(&counts()).unwrap();
    let mut rates = vec1(&out["rate"]);
    assert_eq!(rates.len(), 400);
    rates.sort_by(f64::total_cmp);
    // Median of 400 draws: standard error ≈ 1.25 · 0.5 / √400 ≈ 0.03.
    assert_close("predictive median of rate", rates[200], med, 0.13);
    assert_eq!(out["counts"].dims(), &[400, 10]);
}

// ---------------------------------------------------------------------------------------------
// IAF.

/// A banana: a ~ N(0, 1), b ~ N(a², 0.5), no data (the evidence is 1, the best ELBO 0).
fn banana(_: &()) -> Result<()> {
    let a = ppl::sample("a", Normal::new(0.0, 1.0)?)?;
    ppl::sample("b", Normal::new(&a.sqr()?, 0.5)?)?;
    Ok(())
}

fn mean_elbo<M>(guide: &impl Program<(), M>, store: &ParamStore, n: usize) -> (f64, f64) {
    let v: Vec<f64> = (0..n)
        .map(|i| scalar(&store.scope(|| seed(10_000 + i as u64, || elbo(&banana, guide, &()))).unwrap()))
        .collect();
    let m = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
    (m, (var / n as f64).sqrt())
}

#[test]
fn iaf_beats_diagonal_normal_on_a_banana() {
    let phases = [(2000, 0.01)];
    let iaf = AutoIafNormal::new(banana).hidden(&[16]);
    let diag = AutoDiagonalNormal::new(banana);
    let s_iaf = fit(&banana, &iaf, &(), &phases, 0);
    let s_diag = fit(&banana, &diag, &(), &phases, 0);
    let (e_iaf, se_iaf) = mean_elbo(&iaf, &s_iaf, 1000);
    let (e_diag, se_diag) = mean_elbo(&diag, &s_diag, 1000);
    let se = (se_iaf * se_iaf + se_diag * se_diag).sqrt();
    assert!(e_iaf <= 0.05 + 4.0 * se_iaf, "an ELBO is at most log evidence 0: {e_iaf} ± {se_iaf}");
    assert!(e_iaf > e_diag + 4.0 * se, "IAF ELBO {e_iaf} ± {se_iaf} vs diagonal {e_diag} ± {se_diag}");
}

#[test]
fn iaf_log_density_matches_a_finite_difference_jacobian() {
    // A 3-D model so that the flow's Jacobian is a real triangular matrix.
    let model = |_: &()| -> Result<()> {
        let a = ppl::sample("a", Normal::new(0.0, 1.0)?)?;
        ppl::sample("b", Normal::new(&a, 1.0)?)?;
        ppl::sample("c", Normal::new(&a.sqr()?, 1.0)?)?;
        Ok(())
    };
    let guide = AutoIafNormal::new(model).hidden(&[8, 8]).num_transforms(2);
    let store = fit(&model, &guide, &(), &[(150, 0.02)], 0);
    let flows = guide.transforms(&store).unwrap();
    assert_eq!(flows.len(), 2);
    let x = Tensor::new(&[0.3f64, -0.7, 1.1], &Device::Cpu).unwrap();
    let flows64: Vec<_> = flows.clone();
    let forward = |v: &[f64]| -> Vec<f64> {
        let mut t = Tensor::new(v, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
        for f in &flows64 {
            t = f.forward(&t).unwrap();
        }
        vec1(&t)
    };
    let x0 = vec1(&x);
    let h = 1e-2;
    let mut jac = [[0.0; 3]; 3];
    for j in 0..3 {
        let (mut xp, mut xm) = (x0.clone(), x0.clone());
        xp[j] += h;
        xm[j] -= h;
        let (yp, ym) = (forward(&xp), forward(&xm));
        for i in 0..3 {
            jac[i][j] = (yp[i] - ym[i]) / (2.0 * h);
        }
    }
    let det = jac[0][0] * (jac[1][1] * jac[2][2] - jac[1][2] * jac[2][1])
        - jac[0][1] * (jac[1][0] * jac[2][2] - jac[1][2] * jac[2][0])
        + jac[0][2] * (jac[1][0] * jac[2][1] - jac[1][1] * jac[2][0]);
    // log q(y) = log N(x; 0, I) - log|det J| with J by finite differences.
    let log_n: f64 = x0.iter().map(|v| -0.5 * v * v - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum();
    let want = log_n - det.abs().ln();
    let y = Tensor::new(forward(&x0).iter().map(|&v| v as f32).collect::<Vec<_>>().as_slice(), &Device::Cpu).unwrap();
    let post = guide.get_posterior(&store).unwrap();
    let got = scalar(&post.log_prob(&y).unwrap());
    assert_close("log q(y)", got, want, 2e-3 * want.abs().max(1.0));
    // The guide's own draw carries the same log-density (computed without inverting the flow).
    let (_, tr) = store.scope(|| seed(3, || trace(|| guide.run(&())))).unwrap();
    let aux = tr.get("_AutoIafNormal_latent").unwrap();
    let lq = scalar(aux.log_prob().unwrap().unwrap());
    let z = aux.value.clone().unwrap();
    assert_close("aux log-density", lq, scalar(&post.log_prob(&z).unwrap()), 1e-3 * lq.abs().max(1.0));
}

// ---------------------------------------------------------------------------------------------
// Subsampling.

const GROUPS: usize = 1000;
const BATCH: usize = 50;

fn hierarchical(y: &Tensor) -> Result<()> {
    let mu = ppl::sample("mu", Normal::new(0.0, 10.0)?)?;
    let opts = PlateOptions { subsample_size: Some(BATCH), ..Default::default() };
    ppl::plate_with("groups", GROUPS, opts, |idx| {
        let theta = ppl::sample("theta", Normal::new(&mu, 1.0)?)?;
        ppl::observe("y", Normal::new(&theta, 1.0)?, &y.index_select(idx, 0)?)?;
        Ok(())
    })
}

#[test]
fn subsampled_hierarchical_model_trains_with_local_parameters() {
    let y: Vec<f32> = (0..GROUPS).map(|i| 2.0 + ((i * 37 % 101) as f32 / 101.0 - 0.5) * 3.0).collect();
    let y_mean = y.iter().map(|&v| v as f64).sum::<f64>() / GROUPS as f64;
    let y = Tensor::new(y.as_slice(), &Device::Cpu).unwrap();
    let guide = AutoNormal::new(hierarchical);
    let store = fit(&hierarchical, &guide, &y, &[(1, 0.01)], 0);
    let locs = store.get("AutoNormal.locs.theta").unwrap().unwrap();
    assert_eq!(locs.dims(), &[GROUPS], "local parameters have the plate's full size");
    assert_eq!(store.get("AutoNormal.scales.theta").unwrap().unwrap().dims(), &[GROUPS]);
    // One more step: exactly the subsample's local parameters change.
    let before = (vec1(&locs), vec1(&store.get("AutoNormal.scales.theta").unwrap().unwrap()));
    let (_, gtr) = store.scope(|| seed(77, || trace(|| guide.run(&y)))).unwrap();
    let idx: Vec<u32> = gtr.value("groups").unwrap().to_vec1().unwrap();
    assert_eq!(idx.len(), BATCH);
    assert_eq!(gtr.value("theta").unwrap().dims(), &[BATCH]);
    let loss = store.scope(|| seed(77, || elbo(&hierarchical, &guide, &y))).unwrap().neg().unwrap();
    let grads = loss.backward().unwrap();
    let mut want: Vec<usize> = idx.iter().map(|&i| i as usize).collect();
    want.sort();
    for name in ["AutoNormal.locs.theta", "AutoNormal.scales.theta"] {
        let var = store.get_unconstrained(name).unwrap();
        let g = vec1(grads.get(var.as_tensor()).unwrap());
        assert_eq!(g.len(), GROUPS);
        let touched: Vec<usize> = (0..GROUPS).filter(|&i| g[i] != 0.0).collect();
        assert_eq!(touched, want, "{name}: gradient only for the subsample");
    }
    // A fresh optimizer's step (no momentum from earlier steps) moves exactly those parameters.
    Adam::new(0.01).step(&store, &grads).unwrap();
    let after = (
        vec1(&store.get("AutoNormal.locs.theta").unwrap().unwrap()),
        vec1(&store.get("AutoNormal.scales.theta").unwrap().unwrap()),
    );
    let changed: Vec<usize> = (0..GROUPS).filter(|&i| before.0[i] != after.0[i]).collect();
    let changed_scales: Vec<usize> = (0..GROUPS).filter(|&i| before.1[i] != after.1[i]).collect();
    assert_eq!(changed, want);
    assert_eq!(changed_scales, want);
    // And it trains: mu's posterior mean is the data mean (sd √(2/N) ≈ 0.045).
    let store = fit(&hierarchical, &guide, &y, &[(400, 0.05)], 1);
    let mu = scalar(&guide.median(&store).unwrap()["mu"]);
    assert_close("mu", mu, y_mean, 0.3);
}

// ---------------------------------------------------------------------------------------------
// Init strategies, errors, dtypes.

fn init_model(_: &()) -> Result<()> {
    ppl::sample("n", Normal::new(3.0, 0.01)?)?;
    ppl::sample("e", Exponential::new(2.0)?)?;
    ppl::sample("u", Uniform::new(2.0, 6.0)?)?;
    Ok(())
}

/// The values an `AutoDelta` starts at under `strategy` (the parameters after its first run).
fn start(strategy: InitStrategy, seed0: u64) -> (f64, f64, f64) {
    let guide = AutoDelta::new(init_model).init(strategy);
    let store = ParamStore::new();
    store.scope(|| seed(seed0, || guide.run(&()))).unwrap();
    let m = guide.median(&store).unwrap();
    (scalar(&m["n"]), scalar(&m["e"]), scalar(&m["u"]))
}

#[test]
fn init_strategies_start_where_they_say() {
    // Mean: exactly the prior means (3, 1/2, 4).
    let (n, e, u) = start(init_to_mean(), 0);
    assert_close("mean n", n, 3.0, 1e-5);
    assert_close("mean e", e, 0.5, 1e-5);
    assert_close("mean u", u, 4.0, 1e-5);
    // Feasible: the image of unconstrained 0 (n: 0, e: exp(0) = 1, u: the interval's centre).
    let (n, e, u) = start(init_to_feasible(), 0);
    assert_close("feasible n", n, 0.0, 1e-6);
    assert_close("feasible e", e, 1.0, 1e-6);
    assert_close("feasible u", u, 4.0, 1e-5);
    // Median of 15 prior draws: n within 4 standard errors (1.25·0.01/√15 ≈ 0.003).
    let (n, _, u) = start(init_to_median(), 0);
    assert_close("median n", n, 3.0, 0.013);
    assert!(u > 2.0 && u < 6.0);
    // Values given by name; the others fall back to uniform(2).
    let (n, e, _) = start(init_to_value(data([("n", Tensor::new(1.7f32, &Device::Cpu).unwrap())])), 0);
    assert_close("value n", n, 1.7, 1e-6);
    assert!(e > (-2f64).exp() && e < 2f64.exp(), "fallback uniform(2) on the positive reals: {e}");
    // Uniform(r): unconstrained in (-r, r).
    for s in 0..5 {
        let (n, e, u) = start(init_to_uniform(0.5), s);
        assert!(n.abs() < 0.5, "uniform n {n}");
        assert!(e > (-0.5f64).exp() && e < 0.5f64.exp(), "uniform e {e}");
        let lo = 2.0 + 4.0 / (1.0 + 0.5f64.exp());
        assert!(u > lo && u < 8.0 - lo, "uniform u {u}");
    }
    // Sample: a prior draw, different for different seeds.
    let (a, _, _) = start(init_to_sample(), 1);
    let (b, _, _) = start(init_to_sample(), 2);
    assert!(a != b && (a - 3.0).abs() < 0.05 && (b - 3.0).abs() < 0.05);
    // The default is init_to_median.
    let guide = AutoNormal::new(init_model);
    let store = ParamStore::new();
    store.scope(|| seed(0, || guide.run(&()))).unwrap();
    assert_close("default n", scalar(&guide.median(&store).unwrap()["n"]), 3.0, 0.013);
}

#[test]
fn invalid_initial_point_is_an_error_naming_the_site_and_value() {
    // x ~ Uniform(0, 1), y = 2 observed from Uniform(0, x): impossible at every initial x.
    let model = |_: &()| -> Result<()> {
        let x = ppl::sample("x", Uniform::new(0.0, 1.0)?)?;
        ppl::observe("y", Uniform::new(&x.zeros_like()?, &x)?, &Tensor::new(2f32, &Device::Cpu)?)?;
        Ok(())
    };
    let store = ParamStore::new();
    let err = store.scope(|| seed(0, || AutoNormal::new(model).run(&()))).unwrap_err().to_string();
    assert!(err.contains("`y`") && err.contains("2.0000") && err.contains("initial"), "{err}");
}

#[test]
fn discrete_latent_site_is_an_error_naming_it() {
    let model = |_: &()| -> Result<()> {
        let z = ppl::sample("coin", Bernoulli::new(0.3)?)?;
        ppl::sample("x", Normal::new(&z, 1.0)?)?;
        Ok(())
    };
    let store = ParamStore::new();
    let err = store.scope(|| seed(0, || AutoNormal::new(model).run(&()))).unwrap_err().to_string();
    assert!(err.contains("coin") && err.contains("discrete") && err.contains("AutoGuideList"), "{err}");
    // ... and a guide list with a hand-written part for it works.
    let guide = AutoGuideList::new()
        .append(AutoNormal::new(hide(model, ["coin"])))
        .append_custom(|_: &()| ppl::sample("coin", Bernoulli::new(0.5)?));
    let (_, tr) = store.scope(|| seed(0, || trace(|| guide.run(&())))).unwrap();
    assert!(tr.contains("coin") && tr.contains("x"));
    assert_eq!(guide.latent_sites().unwrap(), vec!["x".to_string()]);
    assert!(store.contains("AutoNormal.locs.x") && !store.contains("AutoNormal.locs.coin"));
}

#[test]
fn f64_models_get_f64_guides() {
    let model = |y: &Tensor| -> Result<()> {
        let s = ppl::sample("s", Gamma::new(&Tensor::new(2.0f64, y.device())?, 1.0)?)?;
        ppl::observe("y", Normal::new(0.0, &s)?.expand(&[3])?, y)?;
        Ok(())
    };
    let y = Tensor::new(&[0.5f64, -1.0, 2.0], &Device::Cpu).unwrap();
    fn check<M>(guide: impl Program<Tensor, M>, y: &Tensor) {
        let store = ParamStore::new();
        let (_, tr) = store.scope(|| seed(0, || trace(|| guide.run(y)))).unwrap();
        assert_eq!(tr.value("s").unwrap().dtype(), DType::F64);
        assert!(scalar(&tr.log_prob_sum().unwrap()).is_finite());
        for (name, v) in store.iter().unwrap() {
            assert_eq!(v.dtype(), DType::F64, "{name}");
        }
    }
    check(AutoNormal::new(model), &y);
    check(AutoMultivariateNormal::new(model), &y);
    check(AutoIafNormal::new(model), &y);
}
