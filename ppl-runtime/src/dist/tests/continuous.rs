//! Continuous distributions against scipy (`fixtures/continuous.json`, made by
//! `tools/fixtures_continuous.py`), sample moments within 4 standard errors, reparameterized
//! gradients (finite differences with common random numbers, closed forms, mpmath), validation
//! errors and shapes.

use super::common::{assert_close, rng, t64, vec64};
use crate::Error;
use crate::dist::gamma::standard_gamma_grad;
use crate::dist::*;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use std::collections::HashMap;

const FIXTURE: &str = include_str!("fixtures/continuous.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture parses")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        v => v.as_f64().expect("number"),
    }
}

/// Decodes `{"shape", "data"}` into a CPU tensor of `dtype`.
fn arr(v: &Value, dtype: DType) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f64> = v["data"].as_array().unwrap().iter().map(num).collect();
    t64(&data, &shape).to_dtype(dtype).unwrap()
}

/// Like `assert_close`, but NaN matches NaN.
fn close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    let (g, w): (Vec<f64>, Vec<f64>) =
        got.iter().zip(want).map(|(&g, &w)| if g.is_nan() && w.is_nan() { (0.0, 0.0) } else { (g, w) }).unzip();
    assert_close(what, &g, &w, rtol, atol);
}

/// Builds a distribution from named parameters (torch's argument order).
fn build(name: &str, p: &HashMap<String, Tensor>) -> crate::Result<DistRef> {
    let g = |k: &str| p.get(k).unwrap_or_else(|| panic!("{name}: no parameter {k}"));
    Ok(match name {
        "Normal" => Normal::new(g("loc"), g("scale"))?.into_ref(),
        "LogNormal" => LogNormal::new(g("loc"), g("scale"))?.into_ref(),
        "HalfNormal" => HalfNormal::new(g("scale"))?.into_ref(),
        "Cauchy" => Cauchy::new(g("loc"), g("scale"))?.into_ref(),
        "HalfCauchy" => HalfCauchy::new(g("scale"))?.into_ref(),
        "StudentT" => StudentT::new(g("df"), g("loc"), g("scale"))?.into_ref(),
        "Laplace" => Laplace::new(g("loc"), g("scale"))?.into_ref(),
        "Exponential" => Exponential::new(g("rate"))?.into_ref(),
        "Gamma" => Gamma::new(g("concentration"), g("rate"))?.into_ref(),
        "Beta" => Beta::new(g("concentration1"), g("concentration0"))?.into_ref(),
        "Uniform" => Uniform::new(g("low"), g("high"))?.into_ref(),
        "Weibull" => Weibull::new(g("scale"), g("concentration"))?.into_ref(),
        "Gumbel" => Gumbel::new(g("loc"), g("scale"))?.into_ref(),
        "Chi2" => Chi2::new(g("df"))?.into_ref(),
        "VonMises" => VonMises::new(g("loc"), g("concentration"))?.into_ref(),
        "Dirichlet" => Dirichlet::new(g("concentration"))?.into_ref(),
        "LogisticNormal" => LogisticNormal::new(g("loc"), g("scale"))?.into_ref(),
        n => panic!("unknown distribution {n}"),
    })
}

fn params(case: &Value, dtype: DType) -> HashMap<String, Tensor> {
    case["params"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), arr(v, dtype))).collect()
}

/// Scalar parameters of a moments entry (Dirichlet's is a vector).
fn scalar_params(e: &Value) -> HashMap<String, Tensor> {
    e["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = match v {
                Value::Array(a) => t64(&a.iter().map(num).collect::<Vec<_>>(), &[a.len()]),
                v => Tensor::new(num(v), &Device::Cpu).unwrap(),
            };
            (k.clone(), t)
        })
        .collect()
}

#[test]
fn scipy_fixture_f64() {
    let fx = fixture();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in cases.iter().enumerate() {
        let name = c["dist"].as_str().unwrap();
        seen.insert(name);
        let what = |m: &str| format!("case {i} {name}.{m}");
        let d = build(name, &params(c, DType::F64)).unwrap();
        let x = arr(&c["x"], DType::F64);
        let lp = d.log_prob(&x).unwrap();
        assert_eq!(lp.dims(), &x.dims()[..x.rank() - d.event_shape().len()], "{}", what("log_prob shape"));
        close(&what("log_prob"), &vec64(&lp), &vec64(&arr(&c["log_prob"], DType::F64)), 1e-9, 1e-10);
        if c.get("cdf").is_some() {
            close(&what("cdf"), &vec64(&d.cdf(&x).unwrap()), &vec64(&arr(&c["cdf"], DType::F64)), 1e-8, 1e-13);
        }
        if c.get("icdf").is_some() {
            let q = arr(&c["q"], DType::F64);
            close(&what("icdf"), &vec64(&d.icdf(&q).unwrap()), &vec64(&arr(&c["icdf"], DType::F64)), 1e-9, 1e-12);
        }
        for (m, got) in [("mean", d.mean()), ("variance", d.variance()), ("entropy", d.entropy())] {
            if c.get(m).is_some() {
                let want = arr(&c[m], DType::F64);
                let got = got.unwrap().broadcast_as(want.shape()).unwrap();
                close(&what(m), &vec64(&got), &vec64(&want), 1e-9, 1e-12);
            }
        }
    }
    assert_eq!(seen.len(), 17, "every distribution has fixture cases: {seen:?}");
}

#[test]
fn scipy_fixture_f32() {
    // The same fixture in f32, for a few distributions, at f32 tolerances.
    let fx = fixture();
    let mut n = 0;
    for c in fx["cases"].as_array().unwrap() {
        let name = c["dist"].as_str().unwrap();
        if !["Normal", "Gamma", "Beta", "StudentT", "Dirichlet", "Weibull"].contains(&name) {
            continue;
        }
        let d = build(name, &params(c, DType::F32)).unwrap();
        assert_eq!(d.dtype(), DType::F32);
        let x = arr(&c["x"], DType::F32);
        let lp = d.log_prob(&x).unwrap();
        assert_eq!(lp.dtype(), DType::F32);
        // The points are rounded to f32, so compare against the f64 log_prob at the rounded points.
        let d64 = build(name, &params(c, DType::F64)).unwrap();
        let want = d64.log_prob(&x.to_dtype(DType::F64).unwrap()).unwrap();
        close(&format!("{name} f32 log_prob"), &vec64(&lp), &vec64(&want), 1e-5, 1e-4);
        let ent = d.entropy().unwrap();
        // Entropies like Gamma(150)'s cancel terms of size ~700: allow f32 rounding of those.
        close(&format!("{name} f32 entropy"), &vec64(&ent), &vec64(&d64.entropy().unwrap()), 1e-5, 2e-4);
        n += 1;
    }
    assert!(n >= 10);
}

/// `Normal::new(0.0, 1.0)` and `Normal::new(&t, &t)` both work; scalars follow tensor args.
#[test]
fn scalar_and_tensor_params() {
    let g = Gamma::new(2.0, 3.0).unwrap();
    assert_eq!(g.dtype(), DType::F32);
    assert!(g.batch_shape().is_empty());
    let a = t64(&[1.0, 2.0, 3.0], &[3, 1]);
    let g = Gamma::new(&a, 2.0).unwrap();
    assert_eq!(g.dtype(), DType::F64);
    assert_eq!(g.batch_shape(), &[3, 1]);
    let b = Beta::new(&a, t64(&[1.0, 5.0], &[2])).unwrap();
    assert_eq!(b.batch_shape(), &[3, 2]);
    // The scalar fast path of Gamma/Normal log_prob agrees with the tensor path.
    let x = t64(&[0.0, 0.1, 1.0, 7.5], &[4]);
    for (c, r) in [(1.0, 2.0), (0.3, 0.5), (4.0, 1.5)] {
        let fast = Gamma::new(c, r).unwrap();
        // A Var parameter is not a constant, so this takes the general tensor path.
        let slow = Gamma::new(Var::new(&[c], &Device::Cpu).unwrap().as_tensor(), t64(&[r], &[1])).unwrap();
        let xf = x.to_dtype(DType::F32).unwrap();
        close("gamma fast", &vec64(&fast.log_prob(&xf).unwrap()), &vec64(&slow.log_prob(&x).unwrap()), 1e-6, 1e-6);
    }
    // Large inputs take the multi-threaded path of the fused kernel.
    let big = t64(&(1..=200_000).map(|i| i as f64 * 1e-4).collect::<Vec<_>>(), &[200_000]).to_dtype(DType::F32).unwrap();
    let fast = vec64(&Gamma::new(2.5, 1.5).unwrap().log_prob(&big).unwrap());
    let conc = Var::new(&[2.5f32], &Device::Cpu).unwrap();
    let slow = vec64(&Gamma::new(&conc, 1.5).unwrap().log_prob(&big).unwrap());
    close("gamma fast, large", &fast, &slow, 1e-5, 1e-5);
    let n = Normal::new(Tensor::new(0.5f64, &Device::Cpu).unwrap(), 2.0).unwrap();
    let want: Vec<f64> = vec64(&x).iter().map(|x| -0.5 * ((x - 0.5) / 2.0f64).powi(2) - 2.0f64.ln() - 0.918_938_533_204_672_8).collect();
    close("normal", &vec64(&n.log_prob(&x).unwrap()), &want, 1e-12, 0.0);
    // The fused constant-parameter paths still pass gradients to the value.
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    let xv = Var::from_tensor(&t64(&[0.2, 1.0, 7.5], &[3])).unwrap();
    let g = Normal::new(0.5, 2.0).unwrap().log_prob(&xv).unwrap().sum_all().unwrap().backward().unwrap();
    close("normal d/dx", &vec64(g.get(&xv).unwrap()), &[0.075, -0.125, -1.75], 1e-12, 0.0);
    let g = Gamma::new(3.0, 1.5).unwrap().log_prob(&xv).unwrap().sum_all().unwrap().backward().unwrap();
    close("gamma d/dx", &vec64(g.get(&xv).unwrap()), &[8.5, 0.5, 2.0 / 7.5 - 1.5], 1e-12, 0.0);
}

#[test]
fn expand_and_broadcast_shapes() {
    let mut r = rng(1);
    let a = t64(&[1.0, 2.0, 3.0], &[3, 1]);
    let b = t64(&[0.5, 4.0], &[2]);
    let dists: Vec<DistRef> = vec![
        Normal::new(&a, &b).unwrap().into_ref(),
        LogNormal::new(&a, &b).unwrap().into_ref(),
        Cauchy::new(&a, &b).unwrap().into_ref(),
        StudentT::new(&a, 0.0, &b).unwrap().into_ref(),
        Laplace::new(&a, &b).unwrap().into_ref(),
        Gamma::new(&a, &b).unwrap().into_ref(),
        Beta::new(&a, &b).unwrap().into_ref(),
        Uniform::new(a.neg().unwrap(), &b).unwrap().into_ref(),
        Weibull::new(&a, &b).unwrap().into_ref(),
        Gumbel::new(&a, &b).unwrap().into_ref(),
        VonMises::new(&a, &b).unwrap().into_ref(),
        HalfNormal::new(a.broadcast_add(&b).unwrap()).unwrap().into_ref(),
        HalfCauchy::new(a.broadcast_mul(&b).unwrap()).unwrap().into_ref(),
        Exponential::new(a.broadcast_mul(&b).unwrap()).unwrap().into_ref(),
        Chi2::new(a.broadcast_mul(&b).unwrap()).unwrap().into_ref(),
    ];
    for d in dists {
        assert_eq!(d.batch_shape(), &[3, 2], "{}", d.name());
        let s = d.sample(&mut r, &[5]).unwrap();
        assert_eq!(s.dims(), &[5, 3, 2], "{} sample", d.name());
        assert_eq!(d.log_prob(&s).unwrap().dims(), &[5, 3, 2], "{} log_prob", d.name());
        let e = d.expand(&[4, 3, 2]).unwrap();
        assert_eq!(e.batch_shape(), &[4, 3, 2]);
        let s = e.sample(&mut r, &[2]).unwrap();
        assert_eq!(s.dims(), &[2, 4, 3, 2], "{} expanded sample", d.name());
        assert_eq!(e.log_prob(&s).unwrap().dims(), &[2, 4, 3, 2]);
        // A value with fewer dims broadcasts against the batch shape.
        let v = s.get(0).unwrap().get(0).unwrap().get(0).unwrap();
        assert_eq!(d.log_prob(&v).unwrap().dims(), &[3, 2], "{} broadcast value", d.name());
        assert!(d.expand(&[3, 5]).is_err(), "{} bad expand", d.name());
        assert!(d.log_prob(&t64(&[0.5; 4], &[4])).is_err(), "{} bad value shape", d.name());
    }
    let dir = Dirichlet::new(t64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])).unwrap();
    assert_eq!((dir.batch_shape(), dir.event_shape()), (&[2usize][..], &[3usize][..]));
    let e = dir.expand(&[4, 2]).unwrap();
    let s = e.sample(&mut r, &[5]).unwrap();
    assert_eq!(s.dims(), &[5, 4, 2, 3]);
    assert_eq!(e.log_prob(&s).unwrap().dims(), &[5, 4, 2]);
    close("simplex", &vec64(&s.sum(3).unwrap()), &[1.0; 40], 1e-12, 1e-12);
    assert!(Dirichlet::new(Tensor::new(1.0f64, &Device::Cpu).unwrap()).is_err());
}

/// Draws `n` samples from the entry's distribution (f64) and returns them with the distribution.
fn draws(e: &Value, n: usize, seed: u64) -> Vec<f64> {
    let name = e["dist"].as_str().unwrap();
    let (base, comp) = match name.split_once('[') {
        Some((b, i)) => (b, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
        None => (name, None),
    };
    let d = build(base, &scalar_params(e)).unwrap();
    let s = d.sample(&mut rng(seed), &[n]).unwrap();
    match comp {
        Some(i) => vec64(&s.narrow(1, i, 1).unwrap()),
        None => vec64(&s),
    }
}

#[test]
fn sample_moments_within_4_standard_errors() {
    let fx = fixture();
    let n = 100_000;
    for (k, e) in fx["moments"].as_array().unwrap().iter().enumerate() {
        let name = e["dist"].as_str().unwrap();
        let x = draws(e, n, 1000 + k as u64);
        assert!(x.iter().all(|v| v.is_finite()), "{name}: non-finite draw");
        let nf = n as f64;
        if let Some(qs) = e.get("q") {
            // Fraction below each reference quantile: binomial SE sqrt(q(1-q)/n).
            for (q, xq) in qs.as_array().unwrap().iter().map(num).zip(e["x"].as_array().unwrap().iter().map(num)) {
                let frac = x.iter().filter(|&&v| v <= xq).count() as f64 / nf;
                let se = (q * (1.0 - q) / nf).sqrt();
                assert!((frac - q).abs() < 4.0 * se, "{name}: P(X <= {xq}) = {frac}, want {q} ± {}", 4.0 * se);
            }
            continue;
        }
        let (m, v, mu4) = (num(&e["mean"]), num(&e["variance"]), num(&e["mu4"]));
        let mean = x.iter().sum::<f64>() / nf;
        let se_m = (v / nf).sqrt();
        assert!((mean - m).abs() < 4.0 * se_m, "{name}: sample mean {mean}, want {m} ± {}", 4.0 * se_m);
        let var = x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (nf - 1.0);
        let se_v = ((mu4 - v * v) / nf).sqrt();
        assert!((var - v).abs() < 4.0 * se_v, "{name}: sample variance {var}, want {v} ± {}", 4.0 * se_v);
    }
}

#[test]
fn samples_are_seeded_and_in_support() {
    let p = |k: &str, v: f64| (k.to_string(), Tensor::new(v, &Device::Cpu).unwrap());
    for (name, ps) in [
        ("Gamma", vec![p("concentration", 0.01), p("rate", 1.0)]),
        ("Beta", vec![p("concentration1", 0.05), p("concentration0", 0.05)]),
        ("VonMises", vec![p("loc", 3.0), p("concentration", 50.0)]),
        ("Uniform", vec![p("low", 1.0), p("high", 1.5)]),
    ] {
        let d = build(name, &ps.into_iter().collect()).unwrap();
        let a = d.sample(&mut rng(7), &[2000]).unwrap();
        let b = d.sample(&mut rng(7), &[2000]).unwrap();
        assert_eq!(vec64(&a), vec64(&b), "{name}: same seed, same draws");
        assert!(d.log_prob(&a).is_ok(), "{name}: draws lie in the support");
        assert!(vec64(&d.log_prob(&a).unwrap()).iter().all(|l| !l.is_nan()), "{name}: log_prob of draws");
    }
    // f32 draws of a tiny-concentration gamma are clamped to the smallest normal f32, not 0.
    let g = Gamma::new(Tensor::new(0.01f32, &Device::Cpu).unwrap(), 1.0).unwrap();
    let s = g.rsample(&mut rng(3), &[5000]).unwrap();
    assert!(vec64(&s).iter().all(|&v| v >= f32::MIN_POSITIVE as f64));
}

#[test]
fn standard_gamma_grad_matches_mpmath() {
    let fx = fixture();
    for p in fx["gamma_grad"].as_array().unwrap() {
        let (a, z, want) = (num(&p[0]), num(&p[1]), num(&p[2]));
        let got = standard_gamma_grad(a, z);
        assert!((got - want).abs() <= 1e-9 * want.abs() + 1e-300, "dz/dα at α={a}, z={z}: got {got}, want {want}");
    }
}

/// `n` copies of `v` as an f64 `Var`, so that each draw gets its own gradient entry.
fn var_n(v: f64, n: usize) -> Var {
    Var::from_tensor(&t64(&vec![v; n], &[n])).unwrap()
}

/// Mean and standard error of per-draw gradients.
fn mean_se(g: &Tensor) -> (f64, f64) {
    let v = vec64(g);
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn assert_mc(what: &str, g: &Tensor, want: f64) {
    let (m, se) = mean_se(g);
    assert!((m - want).abs() < 4.0 * se, "{what}: Monte Carlo mean {m}, want {want} ± {}", 4.0 * se);
    assert!(se < 0.05 * want.abs().max(1e-3), "{what}: standard error {se} too large to be a test");
}

/// Implicit reparameterization, checked by closed forms of `d/dθ E[f(z)]` over many draws.
#[test]
fn implicit_reparam_gradients_closed_forms() {
    let n = 40_000;
    let mut r = rng(11);
    for (a, b) in [(0.3, 2.0), (1.0, 0.5), (4.0, 1.5), (50.0, 3.0)] {
        // Gamma: d/dα E[z] = 1/β, d/dβ E[z] = -α/β².
        let (va, vb) = (var_n(a, n), var_n(b, n));
        let z = Gamma::new(&va, &vb).unwrap().rsample(&mut r, &[]).unwrap();
        let g = z.sum_all().unwrap().backward().unwrap();
        assert_mc(&format!("Gamma({a},{b}) d/dα"), g.get(&va).unwrap(), 1.0 / b);
        assert_mc(&format!("Gamma({a},{b}) d/dβ"), g.get(&vb).unwrap(), -a / (b * b));
        // Beta: d/dα E[z] = β/(α+β)², d/dβ E[z] = -α/(α+β)².
        let (va, vb) = (var_n(a, n), var_n(b, n));
        let z = Beta::new(&va, &vb).unwrap().rsample(&mut r, &[]).unwrap();
        let g = z.sum_all().unwrap().backward().unwrap();
        let s2 = (a + b) * (a + b);
        assert_mc(&format!("Beta({a},{b}) d/dα"), g.get(&va).unwrap(), b / s2);
        assert_mc(&format!("Beta({a},{b}) d/dβ"), g.get(&vb).unwrap(), -a / s2);
    }
    // A scalar parameter broadcast over a sample shape gets the sum of the per-draw gradients
    // (same seed, so the same draws as with one parameter copy per draw).
    let va = Var::new(2.5f64, &Device::Cpu).unwrap();
    let z = Gamma::new(&va, 1.5).unwrap().rsample(&mut rng(21), &[500]).unwrap();
    let g_shared = z.sum_all().unwrap().backward().unwrap().get(&va).unwrap().to_scalar::<f64>().unwrap();
    let vn = var_n(2.5, 500);
    let z2 = Gamma::new(&vn, 1.5).unwrap().rsample(&mut rng(21), &[]).unwrap();
    assert_eq!(vec64(&z), vec64(&z2));
    let g_each = vec64(z2.sum_all().unwrap().backward().unwrap().get(&vn).unwrap()).iter().sum::<f64>();
    assert!((g_shared - g_each).abs() < 1e-9 * g_each.abs(), "{g_shared} vs {g_each}");
    // Chi2: d/ddf E[z] = 1; d/ddf E[z²] = d/ddf (2df + df²) = 2 + 2df.
    let vdf = var_n(3.0, n);
    let z = Chi2::new(&vdf).unwrap().rsample(&mut r, &[]).unwrap();
    let g = z.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert_mc("Chi2 d/ddf E[z²]", g.get(&vdf).unwrap(), 8.0);
    // StudentT: d/ddf E[z²] = -2 scale² / (df - 2)² (loc = 0).
    let vdf = var_n(7.0, n);
    let z = StudentT::new(&vdf, 0.0, 1.5).unwrap().rsample(&mut r, &[]).unwrap();
    let g = z.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert_mc("StudentT d/ddf E[z²]", g.get(&vdf).unwrap(), -2.0 * 2.25 / 25.0);
    // Dirichlet: d/dα_j E[z_i] = (δ_ij α0 - α_i) / α0²; one Var row per draw.
    let alpha = [0.7, 2.0, 5.0];
    let a0: f64 = alpha.iter().sum();
    let m = 20_000;
    let va = Var::from_tensor(&t64(&alpha.repeat(m), &[m, 3])).unwrap();
    let z = Dirichlet::new(&va).unwrap().rsample(&mut r, &[]).unwrap();
    for (i, &ai) in alpha.iter().enumerate() {
        let g = z.narrow(1, i, 1).unwrap().sum_all().unwrap().backward().unwrap();
        let ga = g.get(&va).unwrap();
        for j in 0..3 {
            let want = (if i == j { a0 } else { 0.0 } - ai) / (a0 * a0);
            assert_mc(&format!("Dirichlet dE[z{i}]/dα{j}"), &ga.narrow(1, j, 1).unwrap(), want);
        }
    }
}

/// Pathwise gradients of `mean(tanh(z))` against central finite differences in f64 with common
/// random numbers (the same seed at θ ± h), for every location-scale family.
#[test]
fn rsample_gradients_match_finite_differences() {
    type Make = fn(&[Tensor]) -> crate::Result<DistRef>;
    let cases: Vec<(&str, Vec<f64>, Make)> = vec![
        ("Normal", vec![0.3, 1.7], |p| Ok(Normal::new(&p[0], &p[1])?.into_ref())),
        ("LogNormal", vec![-0.2, 0.6], |p| Ok(LogNormal::new(&p[0], &p[1])?.into_ref())),
        ("HalfNormal", vec![1.3], |p| Ok(HalfNormal::new(&p[0])?.into_ref())),
        ("Cauchy", vec![0.5, 0.4], |p| Ok(Cauchy::new(&p[0], &p[1])?.into_ref())),
        ("HalfCauchy", vec![0.8], |p| Ok(HalfCauchy::new(&p[0])?.into_ref())),
        ("StudentT", vec![5.0, 0.5, 1.2], |p| Ok(StudentT::new(p[0].detach(), &p[1], &p[2])?.into_ref())),
        ("Laplace", vec![-0.4, 0.9], |p| Ok(Laplace::new(&p[0], &p[1])?.into_ref())),
        ("Exponential", vec![1.6], |p| Ok(Exponential::new(&p[0])?.into_ref())),
        ("Uniform", vec![-1.0, 2.5], |p| Ok(Uniform::new(&p[0], &p[1])?.into_ref())),
        ("Weibull", vec![1.4, 0.7], |p| Ok(Weibull::new(&p[0], &p[1])?.into_ref())),
        ("Gumbel", vec![0.2, 1.1], |p| Ok(Gumbel::new(&p[0], &p[1])?.into_ref())),
    ];
    let h = 1e-5;
    for (name, theta, make) in cases {
        let f = |th: &[f64]| -> f64 {
            let p: Vec<Tensor> = th.iter().map(|&v| Tensor::new(v, &Device::Cpu).unwrap()).collect();
            let z = make(&p).unwrap().rsample(&mut rng(5), &[2000]).unwrap();
            z.tanh().unwrap().mean_all().unwrap().to_scalar::<f64>().unwrap()
        };
        let vars: Vec<Var> = theta.iter().map(|&v| Var::new(v, &Device::Cpu).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let z = make(&ts).unwrap().rsample(&mut rng(5), &[2000]).unwrap();
        let g = z.tanh().unwrap().mean_all().unwrap().backward().unwrap();
        for (k, v) in vars.iter().enumerate() {
            if name == "StudentT" && k == 0 {
                continue; // df: the gamma draw is a rejection sampler; checked in closed form above
            }
            let (mut up, mut dn) = (theta.clone(), theta.clone());
            up[k] += h;
            dn[k] -= h;
            let fd = (f(&up) - f(&dn)) / (2.0 * h);
            let ad = g.get(v).unwrap().to_scalar::<f64>().unwrap();
            assert!((ad - fd).abs() < 1e-6 * (1.0 + fd.abs()), "{name} param {k}: autodiff {ad}, finite difference {fd}");
        }
    }
}

/// Every distribution rejects a bad parameter and an out-of-support value, naming itself and
/// the argument.
#[test]
fn validation_errors_name_distribution_and_argument() {
    let s = |v: f64| Tensor::new(v, &Device::Cpu).unwrap();
    let bad_param: Vec<(&str, &str, crate::Result<DistRef>)> = vec![
        ("Normal", "scale", Normal::new(0.0, -1.0).map(|d| d.into_ref())),
        ("LogNormal", "scale", LogNormal::new(0.0, 0.0).map(|d| d.into_ref())),
        ("HalfNormal", "scale", HalfNormal::new(-2.0).map(|d| d.into_ref())),
        ("Cauchy", "loc", Cauchy::new(f64::NAN, 1.0).map(|d| d.into_ref())),
        ("HalfCauchy", "scale", HalfCauchy::new(-1.0).map(|d| d.into_ref())),
        ("StudentT", "df", StudentT::new(0.0, 0.0, 1.0).map(|d| d.into_ref())),
        ("Laplace", "scale", Laplace::new(0.0, -0.5).map(|d| d.into_ref())),
        ("Exponential", "rate", Exponential::new(t64(&[1.0, -1.0], &[2])).map(|d| d.into_ref())),
        ("Gamma", "concentration", Gamma::new(-1.0, 1.0).map(|d| d.into_ref())),
        ("Gamma", "rate", Gamma::new(1.0, 0.0).map(|d| d.into_ref())),
        ("Beta", "concentration0", Beta::new(1.0, -3.0).map(|d| d.into_ref())),
        ("Uniform", "high", Uniform::new(2.0, 1.0).map(|d| d.into_ref())),
        ("Weibull", "concentration", Weibull::new(1.0, 0.0).map(|d| d.into_ref())),
        ("Gumbel", "scale", Gumbel::new(0.0, -1.0).map(|d| d.into_ref())),
        ("Chi2", "df", Chi2::new(-4.0).map(|d| d.into_ref())),
        ("VonMises", "concentration", VonMises::new(0.0, -1.0).map(|d| d.into_ref())),
        ("Dirichlet", "concentration", Dirichlet::new(t64(&[1.0, 0.0], &[2])).map(|d| d.into_ref())),
    ];
    for (dist, arg, r) in bad_param {
        let e = r.expect_err(&format!("{dist} accepts a bad `{arg}`"));
        match &e {
            Error::InvalidParameter { dist: d, arg: a, .. } => assert_eq!((*d, *a), (dist, arg)),
            e => panic!("{dist}: expected InvalidParameter, got {e:?}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(&format!("`{dist}`")) && msg.contains(&format!("`{arg}`")), "{msg}");
    }
    let bad_value: Vec<(DistRef, Tensor)> = vec![
        (Normal::new(0.0, 1.0).unwrap().into_ref(), s(f64::NAN)),
        (LogNormal::new(0.0, 1.0).unwrap().into_ref(), s(0.0)),
        (HalfNormal::new(1.0).unwrap().into_ref(), s(-0.1)),
        (Cauchy::new(0.0, 1.0).unwrap().into_ref(), s(f64::INFINITY)),
        (HalfCauchy::new(1.0).unwrap().into_ref(), s(-1.0)),
        (StudentT::new(3.0, 0.0, 1.0).unwrap().into_ref(), s(f64::NEG_INFINITY)),
        (Laplace::new(0.0, 1.0).unwrap().into_ref(), s(f64::NAN)),
        (Exponential::new(1.0).unwrap().into_ref(), s(-1e-3)),
        (Gamma::new(2.0, 1.0).unwrap().into_ref(), s(-1.0)),
        (Beta::new(2.0, 1.0).unwrap().into_ref(), s(1.5)),
        (Uniform::new(t64(&[0.0, 1.0], &[2]), 3.0).unwrap().into_ref(), t64(&[0.5, 0.5], &[2])),
        (Weibull::new(1.0, 2.0).unwrap().into_ref(), s(-2.0)),
        (Gumbel::new(0.0, 1.0).unwrap().into_ref(), s(f64::INFINITY)),
        (Chi2::new(2.0).unwrap().into_ref(), s(-1.0)),
        (VonMises::new(0.0, 1.0).unwrap().into_ref(), s(f64::NAN)),
        (Dirichlet::new(t64(&[1.0, 2.0], &[2])).unwrap().into_ref(), t64(&[0.7, 0.7], &[2])),
    ];
    for (d, v) in bad_value {
        let v = v.to_dtype(d.dtype()).unwrap();
        let e = d.log_prob(&v).expect_err(&format!("{} accepts an out-of-support value", d.name()));
        match &e {
            Error::OutOfSupport { dist, .. } => assert_eq!(*dist, d.name()),
            e => panic!("{}: expected OutOfSupport, got {e:?}", d.name()),
        }
        assert!(e.to_string().contains(&format!("`{}`", d.name())), "{e}");
    }
    // The fast checks (one pass on contiguous storage; reductions on strided views) agree with
    // the full check.
    let g = Gamma::new(t64(&[1.0, 2.0], &[2, 1]), 1.0).unwrap();
    let ok = t64(&[0.5, 0.0, 2.0, 3.0, 1.0, 4.0], &[3, 2]).t().unwrap();
    assert!(!ok.is_contiguous());
    assert!(g.log_prob(&ok).is_ok() && g.log_prob(&ok.contiguous().unwrap()).is_ok());
    for bad in [f64::NAN, -1.0, f64::NEG_INFINITY] {
        let v = t64(&[0.5, 0.0, 2.0, bad, 1.0, 4.0], &[3, 2]).t().unwrap();
        assert!(matches!(g.log_prob(&v), Err(Error::OutOfSupport { .. })), "strided {bad}");
        assert!(matches!(g.log_prob(&v.contiguous().unwrap()), Err(Error::OutOfSupport { .. })), "contiguous {bad}");
    }
    assert!(matches!(Beta::new(2.0, 2.0).unwrap().log_prob(&s(1.0 + 1e-6).to_dtype(DType::F32).unwrap()), Err(Error::OutOfSupport { .. })));
    assert!(matches!(LogNormal::new(0.0, 1.0).unwrap().log_prob(&s(0.0).to_dtype(DType::F32).unwrap()), Err(Error::OutOfSupport { .. })));
    // Quantiles must be probabilities.
    assert!(matches!(Normal::new(0.0, 1.0).unwrap().icdf(&s(1.5).to_dtype(DType::F32).unwrap()), Err(Error::OutOfSupport { .. })));
    // With validation off, nothing is checked (and Uniform gives -inf outside its bounds).
    let _g = crate::defaults::set_validation(false);
    let u = Uniform::new(0.0, 1.0).unwrap();
    let lp = u.log_prob(&t64(&[2.0, 0.5], &[2]).to_dtype(DType::F32).unwrap()).unwrap();
    assert_eq!(vec64(&lp), vec![f64::NEG_INFINITY, 0.0]);
}

/// Gradients of `log_prob` (and `entropy`) with respect to every parameter element, against
/// central finite differences in f64, with broadcast parameters (shapes [2, 1] and [3]).
#[test]
fn log_prob_gradients_match_finite_differences() {
    type Make = fn(&[Tensor]) -> crate::Result<DistRef>;
    type Case = (&'static str, Vec<(Vec<f64>, Vec<usize>)>, Make, [f64; 2]);
    let p2 = |a: [f64; 2]| (a.to_vec(), vec![2, 1]);
    let p3 = |a: [f64; 3]| (a.to_vec(), vec![3]);
    let cases: Vec<Case> = vec![
        ("Normal", vec![p2([0.3, -1.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Normal::new(&p[0], &p[1])?.into_ref()), [-2.0, 4.0]),
        ("LogNormal", vec![p2([0.3, -1.0]), p3([0.5, 1.0, 2.0])], |p| Ok(LogNormal::new(&p[0], &p[1])?.into_ref()), [0.1, 4.0]),
        ("HalfNormal", vec![p3([0.5, 1.0, 2.0])], |p| Ok(HalfNormal::new(&p[0])?.into_ref()), [0.1, 4.0]),
        ("Cauchy", vec![p2([0.3, -1.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Cauchy::new(&p[0], &p[1])?.into_ref()), [-2.0, 4.0]),
        ("HalfCauchy", vec![p3([0.5, 1.0, 2.0])], |p| Ok(HalfCauchy::new(&p[0])?.into_ref()), [0.1, 4.0]),
        ("StudentT", vec![p2([2.5, 6.0]), p2([0.3, -1.0]), p3([0.5, 1.0, 2.0])], |p| Ok(StudentT::new(&p[0], &p[1], &p[2])?.into_ref()), [-2.0, 4.0]),
        ("Laplace", vec![p2([0.3, -1.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Laplace::new(&p[0], &p[1])?.into_ref()), [-2.0, 4.0]),
        ("Exponential", vec![p3([0.5, 1.0, 2.0])], |p| Ok(Exponential::new(&p[0])?.into_ref()), [0.1, 4.0]),
        ("Gamma", vec![p2([1.0, 3.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Gamma::new(&p[0], &p[1])?.into_ref()), [0.1, 4.0]),
        ("Beta", vec![p2([0.7, 3.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Beta::new(&p[0], &p[1])?.into_ref()), [0.05, 0.9]),
        ("Uniform", vec![p2([-3.0, -2.5]), p3([5.0, 6.0, 7.0])], |p| Ok(Uniform::new(&p[0], &p[1])?.into_ref()), [-2.0, 4.0]),
        ("Weibull", vec![p2([0.7, 3.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Weibull::new(&p[0], &p[1])?.into_ref()), [0.1, 4.0]),
        ("Gumbel", vec![p2([0.3, -1.0]), p3([0.5, 1.0, 2.0])], |p| Ok(Gumbel::new(&p[0], &p[1])?.into_ref()), [-2.0, 4.0]),
        ("Chi2", vec![p3([0.5, 1.0, 7.0])], |p| Ok(Chi2::new(&p[0])?.into_ref()), [0.1, 4.0]),
        ("VonMises", vec![p2([0.3, -1.0]), p3([0.05, 1.0, 20.0])], |p| Ok(VonMises::new(&p[0], &p[1])?.into_ref()), [-2.0, 3.0]),
    ];
    let h = 1e-6;
    for (name, theta, make, [lo, hi]) in cases {
        // Values of shape [4, 2, 3] spread over [lo, hi], weights to make every element count.
        let xs: Vec<f64> = (0..24).map(|i| lo + (hi - lo) * ((i * 7 % 24) as f64 + 0.5) / 24.0).collect();
        let x = t64(&xs, &[4, 2, 3]);
        let w = t64(&(0..24).map(|i| 1.0 + 0.1 * (i % 5) as f64).collect::<Vec<_>>(), &[4, 2, 3]);
        let loss = |p: &[Tensor]| -> Tensor {
            let d = make(p).unwrap();
            let lp = (d.log_prob(&x).unwrap() * &w).unwrap().sum_all().unwrap();
            (lp + d.entropy().unwrap().sum_all().unwrap()).unwrap()
        };
        let vars: Vec<Var> = theta.iter().map(|(v, s)| Var::from_tensor(&t64(v, s)).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let g = loss(&ts).backward().unwrap();
        for (k, (v, s)) in theta.iter().enumerate() {
            let ad = vec64(g.get(&vars[k]).unwrap());
            for i in 0..v.len() {
                let at = |d: f64| {
                    let p: Vec<Tensor> = theta
                        .iter()
                        .enumerate()
                        .map(|(j, (vj, sj))| {
                            let mut vj = vj.clone();
                            if j == k {
                                vj[i] += d;
                            }
                            t64(&vj, if j == k { s } else { sj })
                        })
                        .collect();
                    loss(&p).to_scalar::<f64>().unwrap()
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!((ad[i] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "{name} param {k}[{i}]: autodiff {}, finite difference {fd}", ad[i]);
            }
        }
    }
    // Dirichlet (event dim 1), with a concentration of exactly 1.
    let alpha = [0.5, 1.0, 3.0, 2.0, 7.0, 0.9];
    let x = t64(&[0.2, 0.3, 0.5, 0.01, 0.9, 0.09, 0.6, 0.2, 0.2, 0.3, 0.3, 0.4], &[2, 2, 3]);
    let loss = |a: &Tensor| -> Tensor {
        let d = Dirichlet::new(a).unwrap();
        (d.log_prob(&x).unwrap().sum_all().unwrap() + d.entropy().unwrap().sum_all().unwrap()).unwrap()
    };
    let va = Var::from_tensor(&t64(&alpha, &[2, 3])).unwrap();
    let ad = vec64(loss(va.as_tensor()).backward().unwrap().get(&va).unwrap());
    for i in 0..6 {
        let at = |d: f64| {
            let mut a = alpha.to_vec();
            a[i] += d;
            loss(&t64(&a, &[2, 3])).to_scalar::<f64>().unwrap()
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        assert!((ad[i] - fd).abs() < 1e-5 * (1.0 + fd.abs()), "Dirichlet [{i}]: autodiff {}, finite difference {fd}", ad[i]);
    }
}
