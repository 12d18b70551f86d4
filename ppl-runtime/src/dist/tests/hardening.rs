//! Validation and API gaps closed for issue 7: infinite parameters are errors, masks must be
//! boolean 0/1 tensors, `Binomial` takes integer `total_count` tensors, `kl_divergence` takes
//! `DistRef`s, and `LogisticNormal` behaves as torch's (its densities are in the continuous
//! fixture; here its shapes, support and reparameterized draws).

use super::common::{assert_close, rng, t64, vec64};
use crate::Error;
use crate::dist::*;
use candle_core::{DType, Device, Tensor, Var};

/// Every parameter whose constraint means a finite number rejects `+inf` (and `-inf` where the
/// sign is allowed), naming the distribution and the argument.
#[test]
fn infinite_parameters_are_errors() {
    let inf = f64::INFINITY;
    let v = |x: &[f64]| t64(x, &[x.len()]);
    let eye_inf = t64(&[inf, 0.0, 0.5, 1.0], &[2, 2]);
    let cases: Vec<(&str, &str, crate::Result<DistRef>)> = vec![
        ("Normal", "scale", Normal::new(0.0, inf).map(|d| d.into_ref())),
        ("Normal", "loc", Normal::new(-inf, 1.0).map(|d| d.into_ref())),
        ("LogNormal", "scale", LogNormal::new(0.0, inf).map(|d| d.into_ref())),
        ("HalfNormal", "scale", HalfNormal::new(v(&[1.0, inf])).map(|d| d.into_ref())),
        ("Cauchy", "scale", Cauchy::new(0.0, inf).map(|d| d.into_ref())),
        ("HalfCauchy", "scale", HalfCauchy::new(inf).map(|d| d.into_ref())),
        ("StudentT", "df", StudentT::new(inf, 0.0, 1.0).map(|d| d.into_ref())),
        ("Laplace", "scale", Laplace::new(0.0, inf).map(|d| d.into_ref())),
        ("Exponential", "rate", Exponential::new(inf).map(|d| d.into_ref())),
        ("Gamma", "rate", Gamma::new(1.0, inf).map(|d| d.into_ref())),
        ("Gamma", "concentration", Gamma::new(inf, 1.0).map(|d| d.into_ref())),
        ("Chi2", "df", Chi2::new(inf).map(|d| d.into_ref())),
        ("Beta", "concentration1", Beta::new(inf, 1.0).map(|d| d.into_ref())),
        ("Uniform", "high", Uniform::new(0.0, inf).map(|d| d.into_ref())),
        ("Weibull", "scale", Weibull::new(inf, 1.0).map(|d| d.into_ref())),
        ("Gumbel", "scale", Gumbel::new(0.0, inf).map(|d| d.into_ref())),
        ("VonMises", "concentration", VonMises::new(0.0, inf).map(|d| d.into_ref())),
        ("Dirichlet", "concentration", Dirichlet::new(v(&[1.0, inf])).map(|d| d.into_ref())),
        ("Poisson", "rate", Poisson::new(inf).map(|d| d.into_ref())),
        ("NegativeBinomial", "total_count", NegativeBinomial::new(inf, 0.5).map(|d| d.into_ref())),
        ("ZeroInflatedPoisson", "rate", ZeroInflatedPoisson::new(0.1, inf).map(|d| d.into_ref())),
        ("LkjCholesky", "concentration", LkjCholesky::new(2, inf).map(|d| d.into_ref())),
        ("LogisticNormal", "scale", LogisticNormal::new(v(&[0.0, 0.0]), v(&[1.0, inf])).map(|d| d.into_ref())),
        (
            "LowRankMultivariateNormal",
            "cov_diag",
            LowRankMultivariateNormal::new(v(&[0.0, 0.0]), t64(&[1.0, 0.0], &[2, 1]), v(&[1.0, inf])).map(|d| d.into_ref()),
        ),
        ("MultivariateNormal", "scale_tril", MultivariateNormal::from_scale_tril(v(&[0.0, 0.0]), &eye_inf).map(|d| d.into_ref())),
    ];
    for (dist, arg, r) in cases {
        let e = r.expect_err(&format!("{dist} accepts an infinite `{arg}`"));
        match &e {
            Error::InvalidParameter { dist: d, arg: a, .. } => assert_eq!((*d, *a), (dist, arg), "{e}"),
            e => panic!("{dist}: expected InvalidParameter, got {e:?}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(&format!("`{dist}`")) && msg.contains(&format!("`{arg}`")) && msg.contains("inf"), "{msg}");
    }
    // Large finite parameters are still fine.
    assert!(Normal::new(0.0, 1e30).is_ok() && Gamma::new(1.0, 1e30).is_ok());
}

/// `Masked` takes u8 masks of 0s and 1s only; other dtypes and values are errors that say so.
#[test]
fn masks_must_be_boolean() {
    let d = || Normal::new(0.0, 1.0).unwrap().expand(&[3]).unwrap();
    let x = Tensor::new(&[0.5f32, 1.0, 2.0], &Device::Cpu).unwrap();
    let keep = Tensor::new(&[1u8, 0, 1], &Device::Cpu).unwrap();
    let lp = d().mask(&keep).unwrap().log_prob(&x).unwrap();
    let full = vec64(&d().log_prob(&x).unwrap());
    assert_eq!(vec64(&lp), vec![full[0], 0.0, full[2]]);
    // A comparison gives a mask directly, and an expanded masked distribution keeps it.
    let m = d().mask(&x.ge(1.0).unwrap()).unwrap();
    assert_eq!(vec64(&m.expand(&[2, 3]).unwrap().log_prob(&x).unwrap()), [[0.0, full[1], full[2]]; 2].concat());
    let bad_dtype = d().mask(&Tensor::new(&[1f32, 0.0, 0.5], &Device::Cpu).unwrap()).unwrap_err();
    let msg = bad_dtype.to_string();
    assert!(msg.contains("`Normal`.mask") && msg.contains("u8") && msg.contains("F32") && msg.contains("scale"), "{msg}");
    let bad_value = d().mask(&Tensor::new(&[1u8, 2, 0], &Device::Cpu).unwrap()).unwrap_err();
    let msg = bad_value.to_string();
    assert!(msg.contains("only 0 and 1") && msg.contains('2'), "{msg}");
    assert!(d().mask(&Tensor::new(&[1i64, 0, 1], &Device::Cpu).unwrap()).is_err());
}

/// An integer `total_count` tensor (u8, u32, i64) works like the float one.
#[test]
fn binomial_takes_integer_total_count() {
    let probs = t64(&[0.2, 0.7], &[2]);
    let x = t64(&[1.0, 3.0], &[2]);
    let want = vec64(&Binomial::new(t64(&[4.0, 5.0], &[2]), &probs).unwrap().log_prob(&x).unwrap());
    for n in [
        Tensor::new(&[4u32, 5], &Device::Cpu).unwrap(),
        Tensor::new(&[4i64, 5], &Device::Cpu).unwrap(),
        Tensor::new(&[4u8, 5], &Device::Cpu).unwrap(),
    ] {
        let d = Binomial::new(&n, &probs).unwrap();
        assert_eq!(d.total_count().dtype(), DType::F64);
        assert_eq!(vec64(&d.log_prob(&x).unwrap()), want);
        let d = Binomial::from_logits(&n, t64(&[0.0, 1.0], &[2])).unwrap();
        assert_eq!(d.dtype(), DType::F64);
    }
    // With scalar probabilities the count tensor takes the default dtype.
    let d = Binomial::new(Tensor::new(&[3u32], &Device::Cpu).unwrap(), 0.5).unwrap();
    assert_eq!(d.dtype(), DType::F32);
    assert_close("Binomial(3, 1/2) at 1", &vec64(&d.log_prob(&Tensor::new(&[1f32], &Device::Cpu).unwrap()).unwrap()), &[(3.0f64 / 8.0).ln()], 1e-6, 0.0);
    let e = Binomial::new(Tensor::new(&[-2i64], &Device::Cpu).unwrap(), 0.5).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { arg: "total_count", .. }), "{e}");
}

/// `kl_divergence` takes `DistRef`s (and mixes them with concrete distributions).
#[test]
fn kl_divergence_takes_dist_refs() {
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    let p = Normal::new(t64(&[0.0, 1.0], &[2]), 1.5).unwrap();
    let q = Normal::new(0.5, 2.0).unwrap();
    let want = vec64(&kl_divergence(&p, &q).unwrap());
    // ½ (r + t − 1 − log r), r = (1.5/2)², t = ((μp − 0.5)/2)²: an independent closed form.
    let r: f64 = 0.75 * 0.75;
    let closed: Vec<f64> = [0.0f64, 1.0].iter().map(|m| 0.5 * (r + ((m - 0.5) / 2.0).powi(2) - 1.0 - r.ln())).collect();
    assert_close("KL(Normal ‖ Normal)", &want, &closed, 1e-12, 0.0);
    let (pr, qr): (DistRef, DistRef) = (p.clone().into_ref(), q.clone().into_ref());
    assert_eq!(vec64(&kl_divergence(&pr, &qr).unwrap()), want);
    assert_eq!(vec64(&kl_divergence(&pr, &q).unwrap()), want);
    assert_eq!(vec64(&kl_divergence(&p, &qr).unwrap()), want);
    assert_eq!(vec64(&kl_divergence(pr.as_ref(), qr.as_ref()).unwrap()), want);
    let e = kl_divergence(&pr, &Gamma::new(1.0, 1.0).unwrap().into_ref()).unwrap_err();
    assert!(e.to_string().contains("`Normal` ‖ `Gamma`"), "{e}");
}

/// `LogisticNormal`: torch's shapes (scalar parameters give the 2-simplex), draws on the simplex
/// whose logit-ratios are the normal (`log(y_i / y_K)` for `K = 2` is `x - log 1`), expand, errors
/// named after it, and reparameterized draws.
#[test]
fn logistic_normal_shapes_draws_and_errors() {
    let d = LogisticNormal::new(0.3, 0.8).unwrap();
    assert_eq!((d.batch_shape(), d.event_shape()), (&[][..], &[2usize][..]));
    let d = LogisticNormal::new(t64(&[0.3, -1.0, 0.5, 0.0, 2.0, 1.0], &[2, 3]), 0.8).unwrap();
    assert_eq!((d.batch_shape(), d.event_shape()), (&[2usize][..], &[4usize][..]));
    let s = d.sample(&mut rng(80), &[5]).unwrap();
    assert_eq!(s.dims(), &[5, 2, 4]);
    assert!(vec64(&s.sum(2).unwrap()).iter().all(|t| (t - 1.0).abs() < 1e-12));
    assert_eq!(d.log_prob(&s).unwrap().dims(), &[5, 2]);
    let e = d.expand(&[3, 2]).unwrap();
    assert_eq!((e.name(), e.batch_shape(), e.event_shape()), ("LogisticNormal", &[3usize, 2][..], &[4usize][..]));
    // K = 2: y_1 = sigmoid(x), so logit(y_1) ~ Normal(loc, scale) exactly.
    let d2 = LogisticNormal::new(t64(&[0.3], &[1]), t64(&[0.8], &[1])).unwrap();
    let y = d2.sample(&mut rng(81), &[4000]).unwrap();
    let y1 = y.narrow(1, 0, 1).unwrap();
    let x = vec64(&(y1.log().unwrap() - y.narrow(1, 1, 1).unwrap().log().unwrap()).unwrap());
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    assert!((m - 0.3).abs() < 4.0 * 0.8 / n.sqrt(), "mean of logit(y_1) {m}");
    let err = d.log_prob(&t64(&[0.5, 0.6, 0.0, 0.0], &[4])).unwrap_err();
    assert!(matches!(err, Error::OutOfSupport { dist: "LogisticNormal", .. }), "{err}");
    let err = d.log_prob(&t64(&[0.5, 0.5], &[2])).unwrap_err();
    assert!(err.to_string().contains("LogisticNormal"), "{err}");
    // rsample: d/dloc E[logit(y_1)] = 1 for K = 2.
    let loc = Var::new(&[0.3f64], &Device::Cpu).unwrap();
    let y = LogisticNormal::new(loc.as_tensor(), 0.8).unwrap().rsample(&mut rng(82), &[50]).unwrap();
    let lr = (y.narrow(1, 0, 1).unwrap().log().unwrap() - y.narrow(1, 1, 1).unwrap().log().unwrap()).unwrap();
    let g = lr.mean_all().unwrap().backward().unwrap();
    assert_close("d/dloc mean logit", &vec64(g.get(&loc).unwrap()), &[1.0], 1e-9, 0.0);
}

/// The summed entropies are differentiable: gradients against central finite differences of the
/// entropy values (which the discrete fixture checks against scipy/mpmath).
#[test]
fn discrete_entropy_gradients_match_finite_differences() {
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    type Make = fn(&[Tensor]) -> crate::Result<DistRef>;
    let cases: Vec<(&str, Vec<f64>, Make)> = vec![
        ("Poisson", vec![3.7], |p| Ok(Poisson::new(&p[0])?.into_ref())),
        ("Binomial(probs)", vec![0.3], |p| Ok(Binomial::new(12.0, &p[0])?.into_ref())),
        ("Binomial(logits)", vec![1.2], |p| Ok(Binomial::from_logits(40.0, &p[0])?.into_ref())),
        ("NegativeBinomial", vec![2.5, 0.6], |p| Ok(NegativeBinomial::new(&p[0], &p[1])?.into_ref())),
        ("NegativeBinomial(r < 1)", vec![0.4, 0.9], |p| Ok(NegativeBinomial::new(&p[0], &p[1])?.into_ref())),
        ("Multinomial(logits)", vec![0.3, -1.0, 0.8], |p| {
            Ok(Multinomial::from_logits(7, Tensor::stack(&[&p[0], &p[1], &p[2]], 0)?)?.into_ref())
        }),
        ("Multinomial(probs)", vec![0.2, 0.5, 0.3], |p| Ok(Multinomial::new(5, Tensor::stack(&[&p[0], &p[1], &p[2]], 0)?)?.into_ref())),
    ];
    let h = 1e-6;
    for (name, theta, make) in cases {
        let value = |th: &[f64]| -> f64 {
            let p: Vec<Tensor> = th.iter().map(|&v| Tensor::new(v, &Device::Cpu).unwrap()).collect();
            make(&p).unwrap().entropy().unwrap().to_scalar::<f64>().unwrap()
        };
        let vars: Vec<Var> = theta.iter().map(|&v| Var::new(v, &Device::Cpu).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let ent = make(&ts).unwrap().entropy().unwrap();
        assert_eq!(ent.to_scalar::<f64>().unwrap(), value(&theta), "{name}: the gradient term leaves the value alone");
        let g = ent.backward().unwrap();
        for (k, v) in vars.iter().enumerate() {
            let (mut up, mut dn) = (theta.clone(), theta.clone());
            up[k] += h;
            dn[k] -= h;
            let fd = (value(&up) - value(&dn)) / (2.0 * h);
            let ad = g.get(v).unwrap().to_scalar::<f64>().unwrap();
            assert!((ad - fd).abs() < 1e-6 * (1.0 + fd.abs()), "{name} param {k}: autodiff {ad}, finite difference {fd}");
        }
    }
}
