//! Beta and Dirichlet draws at tiny concentrations, in f32 and f64: tail probabilities far below
//! what a sampler of clamped gammas can reach (mpmath, `fixtures/small_concentration.json` from
//! `tools/fixtures_small_concentration.py`), moments within 4 standard errors, no ties at the
//! 0/0 → 1/K point; the log-space implicit gradients against mpmath and closed forms; f32 Uniform
//! draws never at `high`.

use super::common::{rng, t64, vec64};
use crate::dist::gamma::standard_gamma_log_grad;
use crate::dist::*;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/small_concentration.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture parses")
}

/// `P(X < x)` for `X ~ Beta(a, b)` from the fixture, for the `x` a dtype can represent.
fn tails(a: f64, b: f64, dtype: DType) -> Vec<(f64, f64)> {
    let smallest = if dtype == DType::F32 { 1e-45 } else { 0.0 };
    fixture()["tails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_f64().unwrap(), t[1].as_f64().unwrap(), t[2].as_f64().unwrap(), t[3].as_f64().unwrap()))
        .filter(|&(ta, tb, x, _)| ta == a && tb == b && x > smallest)
        .map(|(_, _, x, p)| (x, p))
        .collect()
}

/// The fraction of draws below each fixture point agrees within 4 binomial standard errors.
fn check_tails(what: &str, xs: &[f64], a: f64, b: f64, dtype: DType) {
    let t = tails(a, b, dtype);
    assert!(!t.is_empty(), "{what}: no fixture points");
    let n = xs.len() as f64;
    for (x, p) in t {
        let frac = xs.iter().filter(|&&v| v < x).count() as f64 / n;
        let se = (p * (1.0 - p) / n).sqrt().max(1.0 / n);
        assert!((frac - p).abs() < 4.0 * se, "{what}: P(X < {x:e}) = {frac}, want {p} ± {}", 4.0 * se);
    }
}

fn check_mean(what: &str, xs: &[f64], mean: f64, var: f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let se = (var / n).sqrt();
    assert!((m - mean).abs() < 4.0 * se, "{what}: mean {m}, want {mean} ± {}", 4.0 * se);
}

#[test]
fn beta_draws_are_right_down_to_tiny_concentrations() {
    let n = 20_000;
    for dtype in [DType::F32, DType::F64] {
        for (k, (a, b)) in [(1e-3, 1e-3), (1e-8, 1e-8), (0.05, 0.1)].into_iter().enumerate() {
            let what = format!("Beta({a}, {b}) {dtype:?}");
            let d = Beta::new(Tensor::new(a, &Device::Cpu).unwrap().to_dtype(dtype).unwrap(), b).unwrap();
            let s = d.sample(&mut rng(40 + k as u64), &[n]).unwrap();
            assert_eq!(s.dtype(), dtype);
            let xs = vec64(&s);
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)), "{what}: draws in [0, 1]");
            // The old sampler returned exactly 1/2 (0/0 of clamped gammas) for most draws.
            let ties = xs.iter().filter(|&&x| x == 0.5).count();
            assert_eq!(ties, 0, "{what}: {ties} draws are exactly 1/2");
            check_tails(&what, &xs, a, b, dtype);
            let var = a * b / ((a + b) * (a + b) * (a + b + 1.0));
            check_mean(&what, &xs, a / (a + b), var);
            if dtype == DType::F64 {
                // Below 1/2, where f64 keeps its relative precision, no two draws coincide.
                let mut low: Vec<f64> = xs.iter().copied().filter(|&x| x > 0.0 && x < 0.5).collect();
                let m = low.len();
                low.sort_by(f64::total_cmp);
                low.dedup();
                assert_eq!(low.len(), m, "{what}: tied draws below 1/2");
            }
        }
    }
}

#[test]
fn dirichlet_draws_are_right_down_to_tiny_concentrations() {
    let n = 20_000;
    for dtype in [DType::F32, DType::F64] {
        let what = format!("Dirichlet([0.01; 3]) {dtype:?}");
        let d = Dirichlet::new(t64(&[0.01; 3], &[3]).to_dtype(dtype).unwrap()).unwrap();
        let s = d.sample(&mut rng(50), &[n]).unwrap();
        let rows = vec64(&s);
        // The old sampler returned exactly [1/3, 1/3, 1/3] for 7% of rows.
        let ties = rows.chunks(3).filter(|r| r[0] == r[1] && r[1] == r[2]).count();
        assert_eq!(ties, 0, "{what}: {ties} rows with all components equal");
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
        assert!(rows.chunks(3).all(|r| (r.iter().sum::<f64>() - 1.0).abs() < tol), "{what}: rows on the simplex");
        // Each component is Beta(0.01, 0.02).
        for i in 0..3 {
            let xs: Vec<f64> = rows.chunks(3).map(|r| r[i]).collect();
            check_tails(&format!("{what} component {i}"), &xs, 0.01, 0.02, dtype);
            check_mean(&format!("{what} component {i}"), &xs, 1.0 / 3.0, 0.01 * 0.02 / (0.03 * 0.03 * 1.03));
        }
    }
}

#[test]
fn log_space_gamma_gradient_matches_mpmath() {
    for p in fixture()["log_grad"].as_array().unwrap() {
        let (a, lz, want) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap(), p[2].as_f64().unwrap());
        let got = standard_gamma_log_grad(a, lz);
        assert!((got - want).abs() <= 1e-9 * want.abs(), "d log z/dα at α={a}, log z={lz}: got {got}, want {want}");
    }
}

fn assert_mc(what: &str, g: &[f64], want: f64) {
    let n = g.len() as f64;
    let m = g.iter().sum::<f64>() / n;
    let se = (g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    assert!((m - want).abs() < 4.0 * se, "{what}: Monte Carlo mean {m}, want {want} ± {}", 4.0 * se);
    assert!(se < 0.05 * want.abs(), "{what}: standard error {se} too large to be a test");
}

/// Implicit reparameterization through the log-space samplers at small concentrations, against
/// closed forms of `d/dθ E[f(x)]` (one parameter copy per draw), in f64; and f32 parameters get
/// f32 gradients.
#[test]
fn small_concentration_gradients_closed_forms() {
    let n = 40_000;
    let (a, b) = (0.05, 0.1);
    let va = Var::from_tensor(&t64(&vec![a; n], &[n])).unwrap();
    let vb = Var::from_tensor(&t64(&vec![b; n], &[n])).unwrap();
    let x = Beta::new(&va, &vb).unwrap().rsample(&mut rng(60), &[]).unwrap();
    let g = x.sum_all().unwrap().backward().unwrap();
    let s2 = (a + b) * (a + b);
    assert_mc("Beta d/dα E[x]", &vec64(g.get(&va).unwrap()), b / s2);
    assert_mc("Beta d/dβ E[x]", &vec64(g.get(&vb).unwrap()), -a / s2);
    // E[log x] = ψ(α) - ψ(α + β): d/dα = ψ'(α) - ψ'(α + β). Only f64 log-space draws keep log x finite here.
    let x = Beta::new(&va, &vb).unwrap().rsample(&mut rng(61), &[]).unwrap();
    let g = x.log().unwrap().sum_all().unwrap().backward().unwrap();
    let tri = crate::dist::special::trigamma_f64;
    assert_mc("Beta d/dα E[log x]", &vec64(g.get(&va).unwrap()), tri(a) - tri(a + b));

    let alpha = [0.05, 0.1, 0.2];
    let a0: f64 = alpha.iter().sum();
    let m = 20_000;
    let va = Var::from_tensor(&t64(&alpha.repeat(m), &[m, 3])).unwrap();
    let z = Dirichlet::new(&va).unwrap().rsample(&mut rng(62), &[]).unwrap();
    for (i, &ai) in alpha.iter().enumerate() {
        let g = z.narrow(1, i, 1).unwrap().sum_all().unwrap().backward().unwrap();
        let ga = g.get(&va).unwrap();
        for j in 0..3 {
            let want = (if i == j { a0 } else { 0.0 } - ai) / (a0 * a0);
            assert_mc(&format!("Dirichlet dE[z{i}]/dα{j}"), &vec64(&ga.narrow(1, j, 1).unwrap()), want);
        }
    }

    let v32 = Var::new(&[0.5f32, 2.0], &Device::Cpu).unwrap();
    let x = Beta::new(&v32, 1.5).unwrap().rsample(&mut rng(63), &[3]).unwrap();
    assert_eq!(x.dtype(), DType::F32);
    let g = x.sum_all().unwrap().backward().unwrap();
    let g = g.get(&v32).unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert!(vec64(g).iter().all(|v| v.is_finite()));
}

/// f32 draws of `low + u (high - low)` round to `high` for a quarter of the draws when the
/// interval is two ulps wide; none may equal `high`, and the rest keep their proportions.
#[test]
fn f32_uniform_draws_never_equal_high() {
    let (low, ulp) = (1.0f32, f32::EPSILON);
    let high = low + 2.0 * ulp;
    let d = Uniform::new(Tensor::new(low, &Device::Cpu).unwrap(), Tensor::new(high, &Device::Cpu).unwrap()).unwrap();
    let n = 8000;
    let xs = d.sample(&mut rng(70), &[n]).unwrap().to_vec1::<f32>().unwrap();
    assert!(xs.iter().all(|&x| x >= low && x < high), "draws in [low, high)");
    // u < 1/4 rounds to low, 1/4 <= u < 3/4 to low + ulp (u >= 3/4, rounding to high, is redrawn).
    let frac_low = xs.iter().filter(|&&x| x == low).count() as f64 / n as f64;
    let se = (2.0f64 / 9.0 / n as f64).sqrt();
    assert!((frac_low - 1.0 / 3.0).abs() < 4.0 * se, "P(low) = {frac_low}, want 1/3 ± {}", 4.0 * se);
    // rsample keeps its gradient through the redraw.
    let lo = Var::new(&[0.0f32], &Device::Cpu).unwrap();
    let x = Uniform::new(lo.as_tensor(), 1.0).unwrap().rsample(&mut rng(71), &[100]).unwrap();
    let g = x.sum_all().unwrap().backward().unwrap();
    let gl = g.get(&lo).unwrap().to_vec1::<f32>().unwrap()[0];
    let want: f32 = x.to_vec2::<f32>().unwrap().iter().map(|r| 1.0 - r[0]).sum();
    assert!((gl - want).abs() < 1e-3, "d/dlow Σx = Σ(1 - u): {gl} vs {want}");
}
