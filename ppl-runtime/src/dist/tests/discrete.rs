//! Tests of the discrete distributions, Delta, MixtureSameFamily and ZeroInflatedPoisson: scipy
//! fixtures (`tools/fixtures_discrete.py`), sample moments within 4 standard errors, support
//! enumeration, validation errors and finite-difference gradients.

use super::common::{assert_close, rng, t64, vec64};
use crate::dist::{
    Bernoulli, Binomial, Categorical, Delta, DistRef, Distribution, DistributionExt, Geometric, MixtureSameFamily,
    Multinomial, NegativeBinomial, Normal, OneHotCategorical, Poisson, ZeroInflatedPoisson,
};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/discrete.json");

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// A fixture array as (shape, data), decoding "inf"/"-inf"/"nan".
fn arr(v: &Value) -> (Vec<usize>, Vec<f64>) {
    let shape = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| match x.as_str() {
            Some("inf") => f64::INFINITY,
            Some("-inf") => f64::NEG_INFINITY,
            Some(_) => f64::NAN,
            None => x.as_f64().unwrap(),
        })
        .collect();
    (shape, data)
}

fn tensor(v: &Value, dtype: DType) -> Tensor {
    let (shape, data) = arr(v);
    t64(&data, &shape).to_dtype(dtype).unwrap()
}

/// Builds the distribution a fixture case describes, in `dtype`.
fn build(c: &Value, dtype: DType) -> DistRef {
    let p = |k: &str| tensor(&c["params"][k], dtype);
    let n = || arr(&c["params"]["total_count"]).1[0] as u64;
    match (c["dist"].as_str().unwrap(), c["ctor"].as_str().unwrap()) {
        ("Bernoulli", "probs") => Bernoulli::new(p("probs")).unwrap().into_ref(),
        ("Bernoulli", "logits") => Bernoulli::from_logits(p("logits")).unwrap().into_ref(),
        ("Binomial", "probs") => Binomial::new(p("total_count"), p("probs")).unwrap().into_ref(),
        ("Binomial", "logits") => Binomial::from_logits(p("total_count"), p("logits")).unwrap().into_ref(),
        ("Categorical", "probs") => Categorical::new(p("probs")).unwrap().into_ref(),
        ("Categorical", "logits") => Categorical::from_logits(p("logits")).unwrap().into_ref(),
        ("OneHotCategorical", "probs") => OneHotCategorical::new(p("probs")).unwrap().into_ref(),
        ("OneHotCategorical", "logits") => OneHotCategorical::from_logits(p("logits")).unwrap().into_ref(),
        ("Poisson", _) => Poisson::new(p("rate")).unwrap().into_ref(),
        ("Geometric", "probs") => Geometric::new(p("probs")).unwrap().into_ref(),
        ("Geometric", "logits") => Geometric::from_logits(p("logits")).unwrap().into_ref(),
        ("NegativeBinomial", "probs") => NegativeBinomial::new(p("total_count"), p("probs")).unwrap().into_ref(),
        ("NegativeBinomial", "logits") => {
            NegativeBinomial::from_logits(p("total_count"), p("logits")).unwrap().into_ref()
        }
        ("Multinomial", "probs") => Multinomial::new(n(), p("probs")).unwrap().into_ref(),
        ("Multinomial", "logits") => Multinomial::from_logits(n(), p("logits")).unwrap().into_ref(),
        ("ZeroInflatedPoisson", _) => ZeroInflatedPoisson::new(p("gate"), p("rate")).unwrap().into_ref(),
        ("MixtureSameFamily", "normal") => {
            let comp = Normal::new(p("loc"), p("scale")).unwrap().into_ref();
            MixtureSameFamily::new(Categorical::new(p("mixing_probs")).unwrap(), comp).unwrap().into_ref()
        }
        ("MixtureSameFamily", "poisson") => {
            let comp = Poisson::new(p("rate")).unwrap().into_ref();
            MixtureSameFamily::new(Categorical::new(p("mixing_probs")).unwrap(), comp).unwrap().into_ref()
        }
        (d, k) => panic!("unknown fixture case {d}/{k}"),
    }
}

/// Compares with -inf handled: a -inf reference must give -inf, except that probability-form
/// categorical families clamp zero probabilities and may give a very negative finite number.
fn check(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64, clamped_ok: bool) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w == f64::NEG_INFINITY {
            assert!(g == w || (clamped_ok && g < -80.0), "{what}[{i}]: got {g}, want -inf");
        } else {
            assert_close(&format!("{what}[{i}]"), &[g], &[w], rtol, atol);
        }
    }
}

#[test]
fn fixture_log_prob_moments_entropy_cdf() -> Result<()> {
    let cases = cases();
    assert!(cases.len() >= 19);
    for c in &cases {
        for dtype in [DType::F64, DType::F32] {
            if dtype == DType::F32 && !c["f32"].as_bool().unwrap() {
                continue;
            }
            let (rtol, atol) = if dtype == DType::F64 { (1e-8, 1e-10) } else { (2e-4, 2e-4) };
            let name = format!("{}/{} {dtype:?}", c["dist"].as_str().unwrap(), c["ctor"].as_str().unwrap());
            let d = build(c, dtype);
            let clamped =
                c["ctor"] == "probs" && ["Categorical", "OneHotCategorical", "Multinomial"].contains(&d.name());
            let x = tensor(&c["x"], dtype);
            let lp = d.log_prob(&x)?;
            assert_eq!(lp.dims(), arr(&c["log_prob"]).0.as_slice(), "{name}: log_prob shape");
            assert_eq!(lp.dtype(), dtype);
            check(&format!("{name} log_prob"), &vec64(&lp), &arr(&c["log_prob"]).1, rtol, atol, clamped);
            if d.name() == "Categorical" {
                // Integer index tensors give the same answer as float ones.
                let lp_u32 = d.log_prob(&x.to_dtype(DType::U32)?)?;
                let lp_i64 = d.log_prob(&x.to_dtype(DType::I64)?)?;
                let lp_u8 = d.log_prob(&x.to_dtype(DType::U8)?)?;
                assert_eq!(vec64(&lp_u8), vec64(&lp));
                assert_eq!(vec64(&lp_u32), vec64(&lp));
                assert_eq!(vec64(&lp_i64), vec64(&lp));
            }
            for (key, got) in [("mean", d.mean()), ("variance", d.variance()), ("entropy", d.entropy())] {
                if c.get(key).is_some() {
                    let got = got?;
                    assert_eq!(got.dims(), arr(&c[key]).0.as_slice(), "{name}: {key} shape");
                    check(&format!("{name} {key}"), &vec64(&got), &arr(&c[key]).1, rtol, atol, false);
                }
            }
            if c.get("cdf").is_some() {
                let got = d.cdf(&tensor(&c["cdf_x"], dtype))?;
                check(&format!("{name} cdf"), &vec64(&got), &arr(&c["cdf"]).1, rtol, atol, false);
            }
        }
    }
    Ok(())
}

/// Sample mean and variance per batch element, and their 4-standard-error tolerances from the
/// known variance and 4th central moment.
fn check_moments(what: &str, samples: &Tensor, mean: &[f64], var: &[f64], mu4: &[f64]) {
    let n = samples.dims()[0];
    let s = samples.to_dtype(DType::F64).unwrap();
    let m_hat = vec64(&s.mean(0).unwrap());
    let v_hat: Vec<f64> = vec64(&s.broadcast_sub(&s.mean_keepdim(0).unwrap()).unwrap().sqr().unwrap().sum(0).unwrap())
        .iter()
        .map(|x| x / (n - 1) as f64)
        .collect();
    for i in 0..mean.len() {
        let se_m = (var[i] / n as f64).sqrt();
        // Exact variance of the unbiased sample variance: mu4/n - var^2 (n-3) / (n (n-1)).
        let nf = n as f64;
        let se_v = (mu4[i] / nf - var[i] * var[i] * (nf - 3.0) / (nf * (nf - 1.0))).max(0.0).sqrt();
        assert!(
            (m_hat[i] - mean[i]).abs() <= 4.0 * se_m + 1e-12,
            "{what}[{i}]: sample mean {} vs {} (4 se = {})",
            m_hat[i],
            mean[i],
            4.0 * se_m
        );
        assert!(
            (v_hat[i] - var[i]).abs() <= 4.0 * se_v + 1e-12,
            "{what}[{i}]: sample variance {} vs {} (4 se = {})",
            v_hat[i],
            var[i],
            4.0 * se_v
        );
    }
}

#[test]
fn sample_moments_within_four_standard_errors() -> Result<()> {
    let n = 20_000;
    for (seed, c) in cases().iter().enumerate() {
        if c.get("mu4").is_none() {
            continue;
        }
        let d = build(c, DType::F64);
        let s = d.sample(&mut rng(1000 + seed as u64), &[n])?;
        let mut want_shape = vec![n];
        want_shape.extend(d.batch_shape().iter().chain(d.event_shape()));
        assert_eq!(s.dims(), want_shape.as_slice(), "{}: sample shape", d.name());
        assert_eq!(s.dtype(), DType::F64);
        check_moments(d.name(), &s, &arr(&c["mean"]).1, &arr(&c["variance"]).1, &arr(&c["mu4"]).1);
    }
    // Bernoulli and OneHotCategorical: indicator moments, mu4 = pq (1 - 3pq).
    let p = [0.1, 0.5, 0.97];
    let ind = |p: &[f64]| -> (Vec<f64>, Vec<f64>) {
        (
            p.iter().map(|p| p * (1.0 - p)).collect(),
            p.iter().map(|p| p * (1.0 - p) * (1.0 - 3.0 * p * (1.0 - p))).collect(),
        )
    };
    let (v, m4) = ind(&p);
    let s = Bernoulli::new(t64(&p, &[3]))?.sample(&mut rng(7), &[n])?;
    check_moments("Bernoulli", &s, &p, &v, &m4);
    let q = [0.1, 0.0, 0.6, 0.3];
    let (v, m4) = ind(&q);
    let s = OneHotCategorical::new(t64(&q, &[4]))?.sample(&mut rng(8), &[n])?;
    check_moments("OneHotCategorical", &s, &q, &v, &m4);
    // Categorical: U32 indices whose frequencies match the probabilities (zero-probability
    // categories never drawn).
    let c = Categorical::new(t64(&q, &[4]))?;
    let idx = c.sample(&mut rng(9), &[n])?;
    assert_eq!((idx.dtype(), idx.dims()), (DType::U32, &[n][..]));
    let counts = idx.to_vec1::<u32>()?.iter().fold([0usize; 4], |mut a, &j| {
        a[j as usize] += 1;
        a
    });
    for (j, &pj) in q.iter().enumerate() {
        let se = (pj * (1.0 - pj) / n as f64).sqrt();
        assert!((counts[j] as f64 / n as f64 - pj).abs() <= 4.0 * se, "category {j}: {} of {n}", counts[j]);
    }
    Ok(())
}

#[test]
fn enumerate_support_shapes_and_values() -> Result<()> {
    let probs = t64(&[0.2, 0.3, 0.5, 0.1, 0.1, 0.8], &[2, 3]);
    let c = Categorical::new(&probs)?;
    let e = c.enumerate_support(false)?;
    assert_eq!((e.dtype(), e.dims()), (DType::U32, &[3usize, 1][..]));
    assert_eq!(e.flatten_all()?.to_vec1::<u32>()?, vec![0, 1, 2]);
    let e = c.enumerate_support(true)?;
    assert_eq!(e.dims(), &[3, 2]);
    assert_eq!(e.flatten_all()?.to_vec1::<u32>()?, vec![0, 0, 1, 1, 2, 2]);
    // Enumerated values are in the support: their probabilities sum to one per batch element.
    let total = c.log_prob(&e)?.exp()?.sum(0)?;
    assert_close("Categorical sum of enumerated probs", &vec64(&total), &[1.0, 1.0], 1e-12, 1e-12);

    let oh = OneHotCategorical::new(&probs)?;
    let e = oh.enumerate_support(false)?;
    assert_eq!(e.dims(), &[3, 1, 3]);
    assert_eq!(vec64(&e), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    let e = oh.enumerate_support(true)?;
    assert_eq!(e.dims(), &[3, 2, 3]);
    let total = oh.log_prob(&e)?.exp()?.sum(0)?;
    assert_close("OneHotCategorical sum of enumerated probs", &vec64(&total), &[1.0, 1.0], 1e-12, 1e-12);

    let b = Binomial::new(4.0, t64(&[0.1, 0.5, 0.9], &[3]))?;
    let e = b.enumerate_support(false)?;
    assert_eq!((e.dtype(), e.dims()), (DType::F64, &[5usize, 1][..]));
    assert_eq!(vec64(&e), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    let e = b.enumerate_support(true)?;
    assert_eq!(e.dims(), &[5, 3]);
    let total = b.log_prob(&e)?.exp()?.sum(0)?;
    assert_close("Binomial sum of enumerated probs", &vec64(&total), &[1.0; 3], 1e-12, 1e-12);
    // Heterogeneous total_count cannot be enumerated.
    let b = Binomial::new(t64(&[2.0, 3.0], &[2]), 0.5)?;
    assert!(matches!(b.enumerate_support(false), Err(Error::Unsupported { dist: "Binomial", .. })));
    assert!(Bernoulli::new(0.3)?.has_enumerate_support() && !Poisson::new(1.0)?.has_enumerate_support());
    Ok(())
}

/// Asserts `r` is an error whose message names every word in `words`.
fn assert_err_names<T: std::fmt::Debug>(r: Result<T>, words: &[&str]) {
    let e = r.expect_err("expected a validation error");
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "error `{msg}` does not name `{w}`");
    }
}

#[test]
fn validation_errors_name_distribution_and_argument() -> Result<()> {
    let bad_p = t64(&[0.5, 1.5], &[2]);
    assert!(matches!(Binomial::new(3.0, &bad_p), Err(Error::InvalidParameter { dist: "Binomial", arg: "probs", .. })));
    assert_err_names(Binomial::new(3.0, &bad_p), &["Binomial", "probs", "unit_interval", "1.5"]);
    assert_err_names(Binomial::new(2.5, 0.5), &["Binomial", "total_count", "nonnegative_integer"]);
    assert_err_names(Geometric::new(0.0), &["Geometric", "probs", "positive"]);
    assert_err_names(Geometric::new(-0.1), &["Geometric", "probs"]);
    assert_err_names(Poisson::new(t64(&[1.0, -2.0], &[2])), &["Poisson", "rate", "nonnegative", "-2"]);
    assert_err_names(NegativeBinomial::new(0.0, 0.5), &["NegativeBinomial", "total_count", "positive"]);
    assert_err_names(NegativeBinomial::new(2.0, 1.0), &["NegativeBinomial", "probs"]);
    assert_err_names(ZeroInflatedPoisson::new(1.2, 1.0), &["ZeroInflatedPoisson", "gate"]);
    assert_err_names(ZeroInflatedPoisson::new(0.2, -1.0), &["ZeroInflatedPoisson", "rate"]);
    // Probabilities that do not sum to one.
    let not_simplex = t64(&[0.2, 0.3, 0.6], &[3]);
    assert_err_names(Categorical::new(&not_simplex), &["Categorical", "probs", "simplex"]);
    assert_err_names(OneHotCategorical::new(&not_simplex), &["OneHotCategorical", "probs", "simplex"]);
    assert_err_names(Multinomial::new(3, &not_simplex), &["Multinomial", "probs", "simplex"]);
    assert_err_names(Categorical::from_logits(t64(&[f64::NAN, 0.0], &[2])), &["Categorical", "logits"]);
    assert_err_names(Categorical::new(0.5), &["Categorical", "probs"]);

    // Out-of-support values.
    let b = Binomial::new(t64(&[3.0, 5.0], &[2]), 0.5)?;
    assert!(matches!(b.log_prob(&t64(&[1.5, 2.0], &[2])), Err(Error::OutOfSupport { dist: "Binomial", .. })));
    assert_err_names(b.log_prob(&t64(&[4.0, 5.0], &[2])), &["Binomial", "total_count", "4"]);
    assert_err_names(b.log_prob(&t64(&[-1.0, 2.0], &[2])), &["Binomial", "nonnegative_integer"]);
    assert_err_names(
        Poisson::new(2.0)?.log_prob(&Tensor::new(0.5f32, &Device::Cpu)?),
        &["Poisson", "nonnegative_integer", "0.5"],
    );
    assert_err_names(Geometric::new(0.3)?.log_prob(&Tensor::new(-1f32, &Device::Cpu)?), &["Geometric", "support"]);
    assert_err_names(
        NegativeBinomial::new(2.0, 0.3)?.log_prob(&Tensor::new(2.5f32, &Device::Cpu)?),
        &["NegativeBinomial", "support"],
    );
    assert_err_names(
        ZeroInflatedPoisson::new(0.3, 1.0)?.log_prob(&Tensor::new(1.5f32, &Device::Cpu)?),
        &["ZeroInflatedPoisson"],
    );
    let c = Categorical::new(t64(&[0.5, 0.5], &[2]))?;
    assert_err_names(c.log_prob(&Tensor::new(2u32, &Device::Cpu)?), &["Categorical", "integer_interval(0, 1)", "2"]);
    assert_err_names(c.log_prob(&Tensor::new(0.5f64, &Device::Cpu)?), &["Categorical", "0.5"]);
    let oh = OneHotCategorical::new(t64(&[0.5, 0.25, 0.25], &[3]))?;
    assert_err_names(oh.log_prob(&t64(&[1.0, 1.0, 0.0], &[3])), &["OneHotCategorical", "one_hot"]);
    assert_err_names(oh.log_prob(&t64(&[0.0, 0.0, 0.0], &[3])), &["OneHotCategorical", "one_hot"]);
    assert_err_names(oh.log_prob(&t64(&[1.0, 0.0], &[2])), &["OneHotCategorical", "shape"]);
    let m = Multinomial::new(3, t64(&[0.5, 0.25, 0.25], &[3]))?;
    assert_err_names(m.log_prob(&t64(&[1.0, 1.0, 0.0], &[3])), &["Multinomial", "total_count 3"]);
    assert_err_names(m.log_prob(&t64(&[4.0, 0.0, -1.0], &[3])), &["Multinomial"]);
    assert_err_names(Bernoulli::new(0.3)?.log_prob(&Tensor::new(2f32, &Device::Cpu)?), &["Bernoulli", "boolean"]);
    // Validation can be switched off.
    let _g = crate::defaults::set_validation(false);
    assert!(Poisson::new(-1.0).is_ok());
    Ok(())
}

#[test]
fn delta_log_prob_sample_and_gradient() -> Result<()> {
    let v = Var::new(&[[1.0f64, 2.0], [3.0, 4.0]], &Device::Cpu)?;
    let d = Delta::new(&v, 0.0, 0)?;
    assert_eq!((d.batch_shape(), d.event_shape()), (&[2usize, 2][..], &[][..]));
    let lp = d.log_prob(&t64(&[1.0, 0.0, 3.0, 4.5], &[2, 2]))?;
    assert_eq!(vec64(&lp), vec![0.0, f64::NEG_INFINITY, 0.0, f64::NEG_INFINITY]);
    // event_dim 1: the whole row must match; log_density is added per batch element.
    let d = Delta::new(&v, t64(&[0.5, -1.0], &[2]), 1)?;
    assert_eq!((d.batch_shape(), d.event_shape()), (&[2usize][..], &[2usize][..]));
    let lp = d.log_prob(&t64(&[1.0, 2.0, 3.0, 0.0], &[2, 2]))?;
    assert_eq!(vec64(&lp), vec![0.5, f64::NEG_INFINITY]);
    let lp = d.log_prob(&t64(&[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0], &[2, 2, 2]))?;
    assert_eq!(lp.dims(), &[2, 2]);
    assert_eq!(vec64(&lp), vec![0.5, -1.0, 0.5, -1.0]);
    // Samples are v; rsample carries the gradient to v.
    let s = d.rsample(&mut rng(0), &[3])?;
    assert_eq!(s.dims(), &[3, 2, 2]);
    assert_eq!(vec64(&s)[..4], [1.0, 2.0, 3.0, 4.0]);
    let g = s.sum_all()?.backward()?;
    assert_eq!(vec64(g.get(v.as_tensor()).unwrap()), vec![3.0; 4]);
    assert_eq!(vec64(&d.variance()?), vec![0.0; 4]);
    let e = d.expand(&[3, 2])?;
    assert_eq!((e.batch_shape(), e.event_shape()), (&[3usize, 2][..], &[2usize][..]));
    assert_err_names(Delta::new(1.0, 0.0, 1), &["Delta", "event_dim"]);
    assert_err_names(Delta::new(&v, t64(&[0.0, 0.0, 0.0], &[3]), 1), &["Delta", "log_density"]);
    Ok(())
}

/// Checks the autodiff gradient of `sum(f(x))` at `x0` against central finite differences (f64).
fn check_grad(what: &str, f: impl Fn(&Tensor) -> Result<Tensor>, x0: &[f64], shape: &[usize]) -> Result<()> {
    let x = Var::from_tensor(&t64(x0, shape))?;
    let g = f(x.as_tensor())?.sum_all()?.backward()?;
    let got = vec64(g.get(x.as_tensor()).expect("no gradient reached the parameter"));
    let h = 1e-5;
    let at = |x: Vec<f64>| -> Result<f64> { Ok(f(&t64(&x, shape))?.sum_all()?.to_scalar::<f64>()?) };
    let mut fd = Vec::new();
    for i in 0..x0.len() {
        let (mut p, mut m) = (x0.to_vec(), x0.to_vec());
        p[i] += h;
        m[i] -= h;
        fd.push((at(p)? - at(m)?) / (2.0 * h));
    }
    assert_close(&format!("{what} gradient"), &got, &fd, 1e-6, 1e-7);
    Ok(())
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    let k = t64(&[0.0, 3.0, 5.0], &[3]);
    check_grad("Binomial/logits", |l| Binomial::from_logits(5.0, l)?.log_prob(&k), &[-1.0, 0.3, 2.0], &[3])?;
    check_grad("Binomial/probs", |p| Binomial::new(5.0, p)?.log_prob(&k), &[0.2, 0.5, 0.9], &[3])?;
    check_grad(
        "Binomial mean/variance",
        |p| Ok((Binomial::new(5.0, p)?.variance()? + Binomial::new(5.0, p)?.mean()?)?),
        &[0.2, 0.7],
        &[2],
    )?;
    let k2 = t64(&[0.0, 7.0], &[2]);
    check_grad("NegativeBinomial/total_count", |r| NegativeBinomial::new(r, 0.4)?.log_prob(&k2), &[0.7, 3.5], &[2])?;
    check_grad(
        "NegativeBinomial/logits",
        |l| NegativeBinomial::from_logits(2.5, l)?.log_prob(&k2),
        &[-0.5, 1.0],
        &[2],
    )?;
    check_grad("Poisson/rate", |r| Poisson::new(r)?.log_prob(&k), &[0.5, 2.0, 7.0], &[3])?;
    check_grad("Geometric/probs", |p| Geometric::new(p)?.log_prob(&k), &[0.1, 0.5, 0.8], &[3])?;
    check_grad("Geometric cdf", |p| Geometric::new(p)?.cdf(&k), &[0.1, 0.5, 0.8], &[3])?;
    check_grad("Geometric entropy", |p| Geometric::new(p)?.entropy(), &[0.1, 0.5, 0.8], &[3])?;
    let idx = Tensor::new(&[2u32, 0], &Device::Cpu)?;
    check_grad(
        "Categorical/logits",
        |l| Categorical::from_logits(l)?.log_prob(&idx),
        &[0.1, -1.0, 2.0, 0.0, 0.5, 0.3],
        &[2, 3],
    )?;
    {
        // Finite differences leave the simplex; probs are normalized by their sum, as in torch.
        let _g = crate::defaults::set_validation(false);
        check_grad(
            "Categorical/probs",
            |p| Categorical::new(p)?.log_prob(&idx),
            &[0.2, 0.3, 0.5, 0.6, 0.1, 0.3],
            &[2, 3],
        )?;
    }
    check_grad("Categorical entropy", |l| Categorical::from_logits(l)?.entropy(), &[0.1, -1.0, 2.0], &[3])?;
    let counts = t64(&[2.0, 0.0, 1.0], &[3]);
    check_grad("Multinomial/logits", |l| Multinomial::from_logits(3, l)?.log_prob(&counts), &[0.1, -1.0, 2.0], &[3])?;
    let z = t64(&[0.0, 0.0, 3.0, 3.0], &[4]);
    check_grad(
        "ZeroInflatedPoisson/gate",
        |g| ZeroInflatedPoisson::new(g, 1.5)?.log_prob(&z),
        &[0.1, 0.6, 0.1, 0.6],
        &[4],
    )?;
    check_grad(
        "ZeroInflatedPoisson/rate",
        |r| ZeroInflatedPoisson::new(0.3, r)?.log_prob(&z),
        &[0.5, 4.0, 0.5, 4.0],
        &[4],
    )?;
    // The gate-logits form agrees with the gate form.
    let gl = ZeroInflatedPoisson::from_gate_logits(t64(&[(0.3f64 / 0.7).ln(), 0.0], &[2]), 1.5)?
        .log_prob(&z.unsqueeze(1)?)?;
    let gp = ZeroInflatedPoisson::new(t64(&[0.3, 0.5], &[2]), 1.5)?.log_prob(&z.unsqueeze(1)?)?;
    assert_close("ZeroInflatedPoisson gate_logits", &vec64(&gl), &vec64(&gp), 1e-12, 1e-12);
    // Mixture: through the component parameters and through the mixing logits.
    let x = t64(&[-1.0, 0.3, 2.5], &[3]);
    let mix = || Categorical::from_logits(t64(&[0.2, -0.4], &[2]));
    check_grad(
        "MixtureSameFamily/loc",
        |loc| MixtureSameFamily::new(mix()?, Normal::new(loc, 0.8)?.into_ref())?.log_prob(&x),
        &[-1.0, 1.5],
        &[2],
    )?;
    let comp = || Normal::new(t64(&[-1.0, 1.5], &[2]), t64(&[0.5, 2.0], &[2])).map(|n| n.into_ref());
    check_grad(
        "MixtureSameFamily/mixing",
        |l| MixtureSameFamily::new(Categorical::from_logits(l)?, comp()?)?.log_prob(&x),
        &[0.2, -0.4],
        &[2],
    )?;
    check_grad(
        "MixtureSameFamily variance",
        |loc| MixtureSameFamily::new(mix()?, Normal::new(loc, 0.8)?.into_ref())?.variance(),
        &[-1.0, 1.5],
        &[2],
    )?;
    Ok(())
}

#[test]
fn mixture_shapes_safe_logsumexp_and_expand() -> Result<()> {
    // Batch [3] of 2-component mixtures of 2-d diagonal normals (event_shape [2]).
    let loc = t64(&(0..12).map(|i| i as f64 * 0.1).collect::<Vec<_>>(), &[3, 2, 2]);
    let comp = Normal::new(&loc, 1.0)?.to_event(1)?.into_ref();
    let m = MixtureSameFamily::new(Categorical::new(t64(&[0.3, 0.7], &[2]))?, comp)?;
    assert_eq!((m.batch_shape(), m.event_shape()), (&[3usize][..], &[2usize][..]));
    let s = m.sample(&mut rng(3), &[5])?;
    assert_eq!(s.dims(), &[5, 3, 2]);
    assert_eq!(m.log_prob(&s)?.dims(), &[5, 3]);
    assert_eq!(m.mean()?.dims(), &[3, 2]);
    assert_eq!(m.variance()?.dims(), &[3, 2]);
    let e = m.expand(&[4, 3])?;
    assert_eq!((e.batch_shape(), e.event_shape()), (&[4usize, 3][..], &[2usize][..]));
    assert_eq!(e.log_prob(&s.unsqueeze(1)?)?.dims(), &[5, 4, 3]);
    // Each sample is one of the components' draws: a Delta mixture returns exactly its atoms.
    let atoms = t64(&[1.0, 5.0], &[2]);
    let dm = MixtureSameFamily::new(Categorical::new(t64(&[0.25, 0.75], &[2]))?, Delta::point(&atoms)?.into_ref())?;
    let s = vec64(&dm.sample(&mut rng(4), &[4000])?);
    let ones = s.iter().filter(|&&x| x == 1.0).count() as f64;
    assert!(s.iter().all(|&x| x == 1.0 || x == 5.0));
    assert!((ones / 4000.0 - 0.25).abs() <= 4.0 * (0.25f64 * 0.75 / 4000.0).sqrt());
    assert_eq!(vec64(&dm.log_prob(&t64(&[5.0, 2.0], &[2]))?), vec![0.75f64.ln(), f64::NEG_INFINITY]);
    // All components impossible: -inf, not NaN, and the gradient of a finite row is not poisoned.
    let logits = Var::from_tensor(&t64(&[0.0, 0.0], &[2]))?;
    let dm = MixtureSameFamily::new(Categorical::from_logits(logits.as_tensor())?, Delta::point(&atoms)?.into_ref())?;
    let lp = dm.log_prob(&t64(&[1.0, 3.0], &[2]))?;
    assert_eq!(vec64(&lp), vec![0.5f64.ln(), f64::NEG_INFINITY]);
    let g = lp.get(0)?.backward()?;
    assert!(vec64(g.get(logits.as_tensor()).unwrap()).iter().all(|x| x.is_finite()));
    // Component batch must end in K.
    let bad = Normal::new(t64(&[0.0, 1.0, 2.0], &[3]), 1.0)?.into_ref();
    assert_err_names(
        MixtureSameFamily::new(Categorical::new(t64(&[0.5, 0.5], &[2]))?, bad),
        &["MixtureSameFamily", "[..., 2]"],
    );
    Ok(())
}

#[test]
fn shapes_expand_dtypes_and_seeds() -> Result<()> {
    let p = t64(&[0.2, 0.5, 0.7], &[3]);
    let dists: Vec<DistRef> = vec![
        Binomial::new(t64(&[3.0, 4.0, 5.0], &[3]), &p)?.into_ref(),
        Poisson::new(&p)?.into_ref(),
        Geometric::new(&p)?.into_ref(),
        NegativeBinomial::new(2.0, &p)?.into_ref(),
        ZeroInflatedPoisson::new(&p, 2.0)?.into_ref(),
        Categorical::new(t64(&[0.2, 0.3, 0.5, 0.1, 0.1, 0.8, 0.5, 0.5, 0.0], &[3, 3]))?.into_ref(),
        OneHotCategorical::new(t64(&[0.2, 0.8, 0.5, 0.5, 1.0, 0.0], &[3, 2]))?.into_ref(),
        Multinomial::new(4, t64(&[0.2, 0.8, 0.5, 0.5, 1.0, 0.0], &[3, 2]))?.into_ref(),
    ];
    for d in &dists {
        assert_eq!(d.batch_shape(), &[3], "{}", d.name());
        assert!(d.is_discrete() && !d.has_rsample(), "{}", d.name());
        let s = d.sample(&mut rng(11), &[4, 2])?;
        let mut want = vec![4, 2, 3];
        want.extend(d.event_shape());
        assert_eq!(s.dims(), want.as_slice(), "{} sample shape", d.name());
        assert_eq!(vec64(&s), vec64(&d.sample(&mut rng(11), &[4, 2])?), "{}: same seed, same draws", d.name());
        assert!(d.log_prob(&s)?.flatten_all()?.to_vec1::<f64>()?.iter().all(|x| x.is_finite()), "{}", d.name());
        let e = d.expand(&[2, 3])?;
        assert_eq!(e.batch_shape(), &[2, 3], "{} expand", d.name());
        assert_eq!(e.log_prob(&s)?.dims(), &[4, 2, 3], "{} expanded log_prob", d.name());
        assert!(d.expand(&[4]).is_err(), "{}: [3] cannot expand to [4]", d.name());
    }
    // Scalar parameters use the thread defaults (f32 on the CPU); f32 samples stay f32.
    let d = Poisson::new(3.0)?;
    assert_eq!(d.dtype(), DType::F32);
    assert_eq!(d.sample(&mut rng(1), &[2])?.dtype(), DType::F32);
    assert!(Binomial::new(2.0, &p.to_dtype(DType::F32)?).is_ok());
    assert_eq!(
        Categorical::new(&p.to_dtype(DType::F32)?.affine(1.0 / 1.4, 0.0)?)?.sample(&mut rng(1), &[2])?.dtype(),
        DType::U32
    );
    Ok(())
}
