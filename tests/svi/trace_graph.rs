//! `TraceGraphElbo` against exact gradients computed by enumerating the Bernoulli latents by
//! hand, against `TraceElbo`'s score-function estimator (same expectation, more variance), its
//! loss against `TraceElbo`'s, and a fit of a Bernoulli-mixture posterior.

use super::mean_se;
use ppl::infer::Bound;
use ppl::prelude::*;

const PRIOR: f64 = 0.3;

/// `log p(z) + log N(y | 2z − 1, 1)` for z = 1 and z = 0 (`masked`: no likelihood term).
fn log_joint(y: f64, masked: bool) -> (f64, f64) {
    let log_n = |m: f64| if masked { 0.0 } else { -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * (y - m).powi(2) };
    (PRIOR.ln() + log_n(1.0), (1.0 - PRIOR).ln() + log_n(-1.0))
}

/// d(−ELBO)/dθ of one Bernoulli term under q(z) = Bernoulli(σ(θ)), enumerated by hand:
/// ELBO = q·A₁ + (1 − q)·A₀ − q ln q − (1 − q) ln(1 − q),
/// so dELBO/dθ = q(1 − q)(A₁ − A₀ − θ).
fn exact_loss_grad(theta: f64, (a1, a0): (f64, f64)) -> f64 {
    let q = 1.0 / (1.0 + (-theta).exp());
    -q * (1.0 - q) * (a1 - a0 - theta)
}

/// The gradient of the surrogate with respect to parameter `name` (flattened) for `draws`
/// estimates at fixed parameters, the estimate `d` drawn with seed `seed + d`.
fn gradients(
    elbo: &mut dyn Elbo,
    model: Bound<'_>,
    guide: Bound<'_>,
    name: &str,
    draws: u64,
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    let store = ParamStore::new();
    (0..draws)
        .map(|d| {
            let est = handlers::seed(seed + d, || store.scope(|| elbo.estimate(model, guide)))?;
            let grads = est.surrogate.backward()?;
            let var = store.get_unconstrained(name).expect("the guide creates the parameter");
            let g = grads.get(var.as_tensor()).expect("the parameter has a gradient");
            Ok(g.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
        })
        .collect()
}

/// Component `k` of every draw.
fn component(draws: &[Vec<f64>], k: usize) -> Vec<f64> {
    draws.iter().map(|g| g[k]).collect()
}

/// The sample variance and its standard error, `sqrt((m₄ − v²)/n)`.
fn variance_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    let m4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
    (v, ((m4 - v * v) / n).sqrt())
}

/// Asserts that `low`'s variance is below `high`'s by more than 4 standard errors; returns the ratio.
fn assert_lower_variance(what: &str, low: &[f64], high: &[f64]) -> f64 {
    let ((vl, sl), (vh, sh)) = (variance_se(low), variance_se(high));
    let margin = 4.0 * (sl * sl + sh * sh).sqrt();
    assert!(vh - vl > margin, "{what}: TraceGraphElbo variance {vl} ± {sl} not below TraceElbo's {vh} ± {sh}");
    vl / vh
}

/// Asserts that the mean of `xs` is within 4 standard errors of `exact`.
fn assert_mean(what: &str, xs: &[f64], exact: f64) {
    let (m, se) = mean_se(xs);
    assert!((m - exact).abs() < 4.0 * se, "{what}: mean gradient {m} ± {se} vs exact {exact}");
}

const Y1: f64 = 0.5;
const Y2: f64 = 0.4;
const THETA: f64 = 0.2;

/// u ~ N(0, 1), y₁ ~ N(u, 1), then z ~ Bernoulli(0.3), y₂ ~ N(2z − 1, 1): the costs of u and y₁
/// ran before z, so they are not downstream of it.
fn chain_model() -> Result<()> {
    let u = ppl::sample("u", Normal::new(0.0, 1.0)?)?;
    ppl::observe("y1", Normal::new(&u, 1.0)?, &Tensor::new(Y1, &Device::Cpu)?)?;
    let z = ppl::sample("z", Bernoulli::new(PRIOR)?)?;
    ppl::observe("y2", Normal::new(&z.affine(2.0, -1.0)?, 1.0)?, &Tensor::new(Y2, &Device::Cpu)?).map(|_| ())
}

/// q(u) = N(0, 1.5) (fixed, reparameterized), q(z) = Bernoulli(σ(θ)).
fn chain_guide() -> Result<()> {
    ppl::sample("u", Normal::new(0.0, 1.5)?)?;
    let theta = ppl::param("theta", THETA)?;
    ppl::sample("z", Bernoulli::from_logits(&theta)?).map(|_| ())
}

#[test]
fn bernoulli_gradient_is_unbiased_with_lower_variance_than_trace_elbo() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let exact = exact_loss_grad(THETA, log_joint(Y2, false));
    let draws = 3000;
    let mut graph = TraceGraphElbo::new().default_baseline(Baseline::None);
    let mut plain = TraceElbo::default().default_baseline(Baseline::None);
    let g = component(&gradients(&mut graph, &chain_model, &chain_guide, "theta", draws, 1)?, 0);
    let t = component(&gradients(&mut plain, &chain_model, &chain_guide, "theta", draws, 1)?, 0);
    assert_mean("TraceGraphElbo", &g, exact);
    assert_mean("TraceElbo", &t, exact);
    let ratio = assert_lower_variance("chain", &g, &t);
    eprintln!("chain model: variance ratio TraceGraphElbo / TraceElbo = {ratio:.2e} ({draws} draws, no baseline)");

    // With the default decaying-average baselines (both ELBOs), still unbiased and still lower.
    let mut graph = TraceGraphElbo::new();
    let mut plain = TraceElbo::default();
    let g = component(&gradients(&mut graph, &chain_model, &chain_guide, "theta", draws, 1)?, 0);
    let t = component(&gradients(&mut plain, &chain_model, &chain_guide, "theta", draws, 1)?, 0);
    assert_mean("TraceGraphElbo, average baseline", &g, exact);
    let ratio = assert_lower_variance("chain, average baselines", &g, &t);
    eprintln!("chain model: variance ratio with average baselines = {ratio:.2e}");
    Ok(())
}

const X: [f64; 6] = [-1.3, 0.2, 1.1, -0.4, 2.0, 0.7];
const THETAS: [f64; 6] = [0.3, -0.5, 0.1, 0.8, -0.2, 0.4];
/// The likelihood of the last two points is masked out.
const MASK: [u8; 6] = [1, 1, 1, 1, 0, 0];

fn plated_model() -> Result<()> {
    let x = Tensor::new(&X, &Device::Cpu)?;
    let mask = Tensor::new(&MASK, &Device::Cpu)?;
    ppl::plate("data", 6, |_| {
        let z = ppl::sample("z", Bernoulli::new(PRIOR)?)?;
        let opts = SampleOptions::new().obs(&x).mask(&mask);
        ppl::sample_with("x", Normal::new(&z.affine(2.0, -1.0)?, 1.0)?, opts).map(|_| ())
    })
}

fn plated_guide() -> Result<()> {
    let theta = ppl::param("theta", Tensor::new(&THETAS, &Device::Cpu)?)?;
    ppl::plate("data", 6, |_| ppl::sample("z", Bernoulli::from_logits(&theta)?).map(|_| ()))
}

#[test]
fn plates_rao_blackwellize_each_element_to_its_own_costs() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let draws = 2000;
    let mut graph = TraceGraphElbo::new().default_baseline(Baseline::None);
    let mut plain = TraceElbo::default().default_baseline(Baseline::None);
    let g = gradients(&mut graph, &plated_model, &plated_guide, "theta", draws, 50)?;
    let t = gradients(&mut plain, &plated_model, &plated_guide, "theta", draws, 50)?;
    let mut ratios = Vec::new();
    for k in 0..6 {
        let exact = exact_loss_grad(THETAS[k], log_joint(X[k], MASK[k] == 0));
        let (gk, tk) = (component(&g, k), component(&t, k));
        assert_mean(&format!("TraceGraphElbo θ[{k}]"), &gk, exact);
        assert_mean(&format!("TraceElbo θ[{k}]"), &tk, exact);
        ratios.push(assert_lower_variance(&format!("θ[{k}]"), &gk, &tk));
    }
    let ratios: Vec<String> = ratios.iter().map(|r| format!("{r:.2e}")).collect();
    eprintln!("plated model: variance ratios per element {}", ratios.join(", "));

    // Vectorized particles: each particle keeps its own costs too (2000 draws in 250 passes of 8).
    let mut graph = TraceGraphElbo::new().default_baseline(Baseline::None).num_particles(8).vectorize_particles(true);
    let g = gradients(&mut graph, &plated_model, &plated_guide, "theta", draws / 8, 7000)?;
    for k in 0..6 {
        let exact = exact_loss_grad(THETAS[k], log_joint(X[k], MASK[k] == 0));
        assert_mean(&format!("vectorized θ[{k}]"), &component(&g, k), exact);
    }

    // Network baselines: one value per element (trained: its parameter gets a gradient), and one
    // value per vectorized particle; both leave the gradient unbiased.
    let per_element = Baseline::network(|_| ppl::param("b", Tensor::zeros(6, DType::F64, &Device::Cpu)?));
    let per_particle = Baseline::network(|_| ppl::param("b", Tensor::zeros(8, DType::F64, &Device::Cpu)?));
    let cases = [("per element", per_element, 1, false), ("per particle", per_particle, 8, true)];
    for (what, baseline, n, vectorize) in cases {
        let mut graph = TraceGraphElbo::new().baseline("z", baseline).num_particles(n).vectorize_particles(vectorize);
        let store = ParamStore::new();
        let mut g = Vec::new();
        for d in 0..(draws / n as u64) {
            let est = handlers::seed(9000 + d, || store.scope(|| graph.estimate(&plated_model, &plated_guide)))?;
            let grads = est.surrogate.backward()?;
            let b = store.get_unconstrained("b").unwrap();
            assert!(grads.get(b.as_tensor()).is_some(), "{what}: the network baseline is trained");
            let theta = store.get_unconstrained("theta").unwrap();
            g.push(grads.get(theta.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?);
        }
        for k in 0..6 {
            let exact = exact_loss_grad(THETAS[k], log_joint(X[k], MASK[k] == 0));
            assert_mean(&format!("network baseline {what}, θ[{k}]"), &component(&g, k), exact);
        }
    }
    Ok(())
}

#[test]
fn bad_network_baselines_and_enumerated_guide_sites_are_errors() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let wrong = Baseline::network(|_| ppl::param("b", Tensor::zeros(5, DType::F64, &Device::Cpu)?));
    let mut graph = TraceGraphElbo::new().baseline("z", wrong);
    let store = ParamStore::new();
    let err = handlers::seed(0, || store.scope(|| graph.estimate(&plated_model, &plated_guide)));
    let err = err.unwrap_err().to_string();
    assert!(err.contains("`z`") && err.contains("[6]") && err.contains("[5]"), "{err}");

    let enumerated = || -> Result<()> {
        let theta = ppl::param("theta", THETA)?;
        let opts = SampleOptions::new().infer(ppl::InferConfig::new().enumerate(ppl::Enumerate::Parallel));
        ppl::sample_with("z", Bernoulli::from_logits(&theta)?, opts).map(|_| ())
    };
    let model = || ppl::sample("z", Bernoulli::new(PRIOR)?).map(|_| ());
    let mut graph = TraceGraphElbo::new();
    let err = handlers::seed(0, || store.scope(|| graph.estimate(&model, &enumerated))).unwrap_err().to_string();
    assert!(err.contains("`z`") && err.contains("TraceEnumElbo"), "{err}");
    Ok(())
}

const SWAP_M: f64 = 0.3;
const SWAP_C: f64 = 0.8;

/// The model draws z, then w | z; the guide draws w first, then z | w. Every model term after z
/// in the *model* (w's prior, y) is downstream of z although w ran before z in the guide.
fn swap_model() -> Result<()> {
    let z = ppl::sample("z", Bernoulli::new(PRIOR)?)?;
    let w = ppl::sample("w", Normal::new(&z.affine(2.0, -1.0)?, 1.0)?)?;
    ppl::observe("y", Normal::new(&w, 1.0)?, &Tensor::new(Y2, &Device::Cpu)?).map(|_| ())
}

fn swap_guide() -> Result<()> {
    let w = ppl::sample("w", Normal::new(SWAP_M, 1.0)?)?;
    let theta = ppl::param("theta", THETA)?;
    ppl::sample("z", Bernoulli::from_logits(&w.affine(SWAP_C, 0.0)?.broadcast_add(&theta)?)?).map(|_| ())
}

/// d(−ELBO)/dθ of the swapped model: E over w ~ N(m, 1) of the enumerated Bernoulli gradient
/// with logits θ + c·w and A_z(w) = log p(z) + log N(w | 2z − 1, 1) (y does not involve z or θ
/// given w), by Simpson's rule over m ± 10.
fn swap_exact() -> f64 {
    let log_n = |x: f64, m: f64| -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * (x - m).powi(2);
    let f = |w: f64| {
        let (a1, a0) = (PRIOR.ln() + log_n(w, 1.0), (1.0 - PRIOR).ln() + log_n(w, -1.0));
        log_n(w, SWAP_M).exp() * exact_loss_grad(THETA + SWAP_C * w, (a1, a0))
    };
    let (n, lo, hi) = (4000, SWAP_M - 10.0, SWAP_M + 10.0);
    let h = (hi - lo) / n as f64;
    let inner: f64 = (1..n).map(|i| f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    (f(lo) + f(hi) + inner) * h / 3.0
}

#[test]
fn model_terms_after_z_in_the_model_count_when_the_guide_order_differs() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let exact = swap_exact();
    let mut graph = TraceGraphElbo::new();
    let g = component(&gradients(&mut graph, &swap_model, &swap_guide, "theta", 3000, 300)?, 0);
    assert_mean("swapped order", &g, exact);
    Ok(())
}

/// The plated model with a subsample of 3 of the 6 points: log-densities are scaled by 2.
fn subsampled_model() -> Result<()> {
    let x = Tensor::new(&X, &Device::Cpu)?;
    let opts = PlateOptions { subsample_size: Some(3), ..Default::default() };
    ppl::plate_with("data", 6, opts, |idx| {
        let z = ppl::sample("z", Bernoulli::new(PRIOR)?)?;
        ppl::observe("x", Normal::new(&z.affine(2.0, -1.0)?, 1.0)?, &x.index_select(idx, 0)?).map(|_| ())
    })
}

/// One logit shared by every point.
fn subsampled_guide() -> Result<()> {
    let theta = ppl::param("theta", THETA)?;
    let opts = PlateOptions { subsample_size: Some(3), ..Default::default() };
    ppl::plate_with("data", 6, opts, |_| ppl::sample("z", Bernoulli::from_logits(&theta)?).map(|_| ()))
}

#[test]
fn subsampled_plates_give_the_full_data_gradient() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    // The gradient of the full-data ELBO, Σ over all six points; the subsample's scale 6/3 must
    // multiply the costs but not the score.
    let exact: f64 = X.iter().map(|&x| exact_loss_grad(THETA, log_joint(x, false))).sum();
    let mut graph = TraceGraphElbo::new();
    let g = component(&gradients(&mut graph, &subsampled_model, &subsampled_guide, "theta", 3000, 900)?, 0);
    assert_mean("subsampled", &g, exact);
    // TraceElbo's score-function estimator (whole-ELBO cost) must be unbiased too: it once used
    // the scaled log q as the score and was off by the factor 2.
    let mut plain = TraceElbo::default();
    let g = component(&gradients(&mut plain, &subsampled_model, &subsampled_guide, "theta", 3000, 900)?, 0);
    assert_mean("subsampled, TraceElbo", &g, exact);
    Ok(())
}

#[test]
fn the_loss_is_trace_elbos_for_the_same_seed() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    for (n, vectorize) in [(1, false), (3, false), (5, true)] {
        let graph = TraceGraphElbo::new().num_particles(n).vectorize_particles(vectorize);
        let plain = TraceElbo::default().num_particles(n).vectorize_particles(vectorize);
        let mut a = Svi::new(|_: &()| plated_model(), |_: &()| plated_guide(), Adam::new(0.01), graph).seed(3);
        let mut b = Svi::new(|_: &()| plated_model(), |_: &()| plated_guide(), Adam::new(0.01), plain).seed(3);
        for _ in 0..3 {
            let (la, lb) = (a.evaluate_loss(&())?, b.evaluate_loss(&())?);
            assert_eq!(la, lb, "{n} particles, vectorized {vectorize}");
        }
        // The first step's loss is computed before any update.
        assert_eq!(a.step(&())?, b.step(&())?);
    }
    let (m, g) = (|_: &()| chain_model(), |_: &()| chain_guide());
    let mut a = Svi::new(m, g, Adam::new(0.01), TraceGraphElbo::new()).seed(4);
    let mut b = Svi::new(m, g, Adam::new(0.01), TraceElbo::default()).seed(4);
    assert_eq!(a.evaluate_loss(&())?, b.evaluate_loss(&())?);
    Ok(())
}

const MIX_X: [f64; 6] = [-1.2, -0.6, 0.1, 0.5, 1.2, 1.8];
const MIX_PRIOR: f64 = 0.4;

/// A two-component mixture with known means −1 and 1.5 and unit variances; z_i picks the component.
fn mixture_model(x: &Tensor) -> Result<()> {
    ppl::plate("data", 6, |_| {
        let z = ppl::sample("z", Bernoulli::new(MIX_PRIOR)?)?;
        ppl::observe("x", Normal::new(&z.affine(2.5, -1.0)?, 1.0)?, x).map(|_| ())
    })
}

fn mixture_guide(_: &Tensor) -> Result<()> {
    let logits = ppl::param("logits", Tensor::zeros(6, DType::F64, &Device::Cpu)?)?;
    ppl::plate("data", 6, |_| ppl::sample("z", Bernoulli::from_logits(&logits)?).map(|_| ()))
}

#[test]
fn fits_the_exact_posterior_of_a_bernoulli_mixture() -> Result<()> {
    let _f64 = ppl::defaults::set_default_dtype(DType::F64);
    let x = Tensor::new(&MIX_X, &Device::Cpu)?;
    let elbo = TraceGraphElbo::new().num_particles(4).vectorize_particles(true);
    let mut svi = Svi::new(mixture_model, mixture_guide, Adam::new(0.05), elbo).seed(11);
    let (burn, keep) = (400, 400);
    svi.run(&x, burn)?;
    let mut probs: Vec<Vec<f64>> = Vec::new();
    for _ in 0..keep {
        svi.step(&x)?;
        let logits = svi.params().get("logits")?.unwrap().to_vec1::<f64>()?;
        probs.push(logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect());
    }
    let log_n = |x: f64, m: f64| -0.5 * (x - m).powi(2);
    for (i, &xi) in MIX_X.iter().enumerate() {
        let (a1, a0) = (MIX_PRIOR * log_n(xi, 1.5).exp(), (1.0 - MIX_PRIOR) * log_n(xi, -1.0).exp());
        let exact = a1 / (a1 + a0);
        let p = component(&probs, i);
        let (m, _) = mean_se(&p);
        let sd = variance_se(&p).0.sqrt();
        eprintln!("mixture point {i}: fitted {m:.4} (iterate sd {sd:.4}) vs exact {exact:.4}");
        assert!((m - exact).abs() < 4.0 * sd, "point {i}: fitted {m} (iterate sd {sd}) vs exact {exact}");
    }
    Ok(())
}
