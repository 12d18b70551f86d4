//! Tests of the KL registry: closed forms against scipy (quadrature, closed forms) and Monte Carlo
//! estimates of `E_p[log p − log q]` within 4 standard errors.

use super::*;
use crate::dist::{
    Bernoulli, Beta, Categorical, Delta, Dirichlet, DistributionExt, Gamma, Normal, kl_divergence, register_kl,
};

/// Monte Carlo `E_p[log p − log q]` per batch element, with its standard error (sample std / √N).
fn mc_kl(p: &dyn Distribution, q: &dyn Distribution, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let x = p.sample(&mut rng(seed), &[n]).unwrap();
    let d = p.log_prob(&x).unwrap().sub(&q.log_prob(&x).unwrap()).unwrap();
    let b: usize = d.dims()[1..].iter().product();
    let v = vec64(&d);
    (0..b)
        .map(|j| {
            let xs: Vec<f64> = (0..n).map(|s| v[s * b + j]).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            (m, (var / n as f64).sqrt())
        })
        .unzip()
}

/// Checks the closed-form KL against a Monte Carlo estimate (4 standard errors) and, when
/// given, against reference values.
fn check_kl(what: &str, p: &dyn Distribution, q: &dyn Distribution, want: Option<&[f64]>, seed: u64) {
    let kl = vec64(&kl_divergence(p, q).unwrap());
    if let Some(w) = want {
        assert_close(&format!("{what} vs reference"), &kl, w, 1e-8, 1e-10);
    }
    let (m, se) = mc_kl(p, q, 20000, seed);
    assert_eq!(kl.len(), m.len(), "{what}: batch sizes");
    for i in 0..kl.len() {
        assert!(
            (kl[i] - m[i]).abs() <= 4.0 * se[i],
            "{what}[{i}]: closed form {} vs Monte Carlo {} ± {}",
            kl[i],
            m[i],
            4.0 * se[i]
        );
    }
}

#[test]
fn kl_normal_and_mvn() {
    let fx = fixture();
    let k = &fx["kl"];
    let nn = k["normal"].as_array().unwrap();
    let col =
        |key: &str, i: usize| t64(&nn.iter().map(|c| c[key][i].as_f64().unwrap()).collect::<Vec<_>>(), &[nn.len()]);
    let p = Normal::new(col("p", 0), col("p", 1)).unwrap();
    let q = Normal::new(col("q", 0), col("q", 1)).unwrap();
    let want: Vec<f64> = nn.iter().map(|c| c["kl"].as_f64().unwrap()).collect();
    check_kl("normal", &p, &q, Some(&want), 50);
    // closed-form spot value: KL(N(0, 1) ‖ N(1, 2)) = log 2 + (1 + 1)/8 − ½
    let spot =
        kl_divergence(&Normal::new(t64(&[0.0], &[]), 1.0).unwrap(), &Normal::new(t64(&[1.0], &[]), 2.0).unwrap())
            .unwrap();
    assert_close("normal spot", &[spot.to_scalar::<f64>().unwrap()], &[2f64.ln() + 0.25 - 0.5], 1e-14, 1e-14);

    let m = &k["mvn"];
    let p = MultivariateNormal::from_covariance_matrix(ft(&m["loc_p"]), ft(&m["cov_p"])).unwrap();
    let q = MultivariateNormal::from_covariance_matrix(ft(&m["loc_q"]), ft(&m["cov_q"])).unwrap();
    check_kl("mvn", &p, &q, Some(&[m["kl"].as_f64().unwrap()]), 51);
    // batched p against a shared q
    let f = &fx["mvn"];
    let pb = MultivariateNormal::from_scale_tril(ft(&f["loc"]), ft(&f["scale_tril"])).unwrap();
    let kl = kl_divergence(&pb, &q).unwrap();
    assert_eq!(kl.dims(), &[2]);
    check_kl("mvn batched", &pb, &q, None, 52);
    // gradient of the KL wrt q's loc and covariance factor
    let b0 = weights(&[3, 3], 53);
    let lq = ft(&m["loc_q"]);
    check_grad("kl mvn d cov_q", &b0, |b| {
        let cov = b.matmul(&b.t()?)?.broadcast_add(&linalg::eye_like(3, b)?)?;
        kl_divergence(&p, &MultivariateNormal::from_covariance_matrix(&lq, &cov)?)
    });
    check_grad("kl mvn d loc_q", &lq, |l| {
        kl_divergence(&p, &MultivariateNormal::from_scale_tril(l, &q.scale_tril()?)?)
    });
    // event sizes must agree
    let q2 = MultivariateNormal::from_scale_tril(0.0, linalg::eye_like(2, &lq).unwrap()).unwrap();
    let e = kl_divergence(&p, &q2).unwrap_err();
    assert!(e.to_string().contains("[3]") && e.to_string().contains("[2]"), "{e}");
}

#[test]
fn kl_independent_sums_the_base_kl() {
    let p = Normal::new(weights(&[2, 3], 60), t64(&[0.5, 1.0, 1.5, 2.0, 0.7, 1.1], &[2, 3])).unwrap();
    let q = Normal::new(weights(&[2, 3], 61), t64(&[1.0, 0.8, 1.2, 1.0, 0.9, 1.3], &[2, 3])).unwrap();
    let base = vec64(&kl_divergence(&p, &q).unwrap());
    let (pi, qi) = (p.clone().to_event(1).unwrap(), q.clone().to_event(1).unwrap());
    let want: Vec<f64> = base.chunks(3).map(|c| c.iter().sum()).collect();
    check_kl("independent", &pi, &qi, Some(&want), 62);
    let e = kl_divergence(&pi, &p.clone().to_event(2).unwrap().to_event(0).unwrap()).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let e = kl_divergence(&pi, &q.to_event(2).unwrap()).unwrap_err();
    assert!(e.to_string().contains("1 and 2"), "{e}");
}

#[test]
fn kl_beta_gamma_dirichlet() {
    let k = &fixture()["kl"];
    let two = |v: &Value| (t64(&[v[0].as_f64().unwrap()], &[1]), t64(&[v[1].as_f64().unwrap()], &[1]));
    let (a, b) = two(&k["beta"]["p"]);
    let (c, d) = two(&k["beta"]["q"]);
    check_kl(
        "beta",
        &Beta::new(&a, &b).unwrap(),
        &Beta::new(&c, &d).unwrap(),
        Some(&[k["beta"]["kl"].as_f64().unwrap()]),
        70,
    );
    let (a, b) = two(&k["gamma"]["p"]);
    let (c, d) = two(&k["gamma"]["q"]);
    check_kl(
        "gamma",
        &Gamma::new(&a, &b).unwrap(),
        &Gamma::new(&c, &d).unwrap(),
        Some(&[k["gamma"]["kl"].as_f64().unwrap()]),
        71,
    );
    let dp = Dirichlet::new(t64(&fv(&k["dirichlet"]["p"]), &[3])).unwrap();
    let dq = Dirichlet::new(t64(&fv(&k["dirichlet"]["q"]), &[3])).unwrap();
    let want = k["dirichlet"]["kl"].as_f64().unwrap();
    assert_close("dirichlet", &[kl_divergence(&dp, &dq).unwrap().to_scalar::<f64>().unwrap()], &[want], 1e-10, 1e-12);
    let (m, se) = mc_kl(&dp, &dq, 20000, 72);
    assert!((m[0] - want).abs() <= 4.0 * se[0], "dirichlet MC {} vs {want} ± {}", m[0], 4.0 * se[0]);
    // batched Dirichlet broadcast against a single one
    let db = Dirichlet::new(t64(&[1.5, 2.0, 0.7, 3.0, 1.0, 1.0], &[2, 3])).unwrap();
    assert_eq!(kl_divergence(&db, &dq).unwrap().dims(), &[2]);
    check_kl("dirichlet batched", &db, &dq, None, 73);
}

#[test]
fn kl_bernoulli_categorical_delta() {
    let k = &fixture()["kl"];
    let bp = Bernoulli::new(t64(&[k["bernoulli"]["p"].as_f64().unwrap()], &[1])).unwrap();
    let bq = Bernoulli::new(t64(&[k["bernoulli"]["q"].as_f64().unwrap()], &[1])).unwrap();
    check_kl("bernoulli", &bp, &bq, Some(&[k["bernoulli"]["kl"].as_f64().unwrap()]), 80);
    let cp = Categorical::new(t64(&fv(&k["categorical"]["p"]), &[3])).unwrap();
    let cq = Categorical::new(t64(&fv(&k["categorical"]["q"]), &[3])).unwrap();
    let want = k["categorical"]["kl"].as_f64().unwrap();
    assert_close("categorical", &[kl_divergence(&cp, &cq).unwrap().to_scalar::<f64>().unwrap()], &[want], 1e-10, 1e-12);
    let (m, se) = mc_kl(&cp, &cq, 20000, 81);
    assert!((m[0] - want).abs() <= 4.0 * se[0], "categorical MC {} vs {want} ± {}", m[0], 4.0 * se[0]);
    // a zero-probability category in p contributes 0, with a finite gradient
    let pz = Var::new(&[0.0f64, 0.6, 0.4], &Device::Cpu).unwrap();
    let kz = kl_divergence(&Categorical::new(pz.as_tensor()).unwrap(), &cq).unwrap();
    let want_z = 0.6 * (0.6f64 / 0.4).ln() + 0.4 * (0.4f64 / 0.2).ln();
    assert_close("categorical zero", &[kz.to_scalar::<f64>().unwrap()], &[want_z], 1e-10, 1e-12);
    let g = kz.backward().unwrap();
    assert!(vec64(g.get(pz.as_tensor()).unwrap()).iter().all(|x| x.is_finite()));
    // Delta: KL(δ_v ‖ q) = −q.log_prob(v) + log_density
    let v = t64(&[0.3, -1.2], &[2]);
    let q = Normal::new(t64(&[0.0, 1.0], &[2]), 2.0).unwrap();
    let dd = Delta::new(&v, t64(&[0.5, -0.25], &[2]), 0).unwrap();
    let want: Vec<f64> = vec64(&q.log_prob(&v).unwrap()).iter().zip([0.5, -0.25]).map(|(lq, ld)| -lq + ld).collect();
    assert_close("delta", &vec64(&kl_divergence(&dd, &q).unwrap()), &want, 1e-14, 1e-14);
}

#[test]
fn kl_unsupported_pairs_name_both_and_rules_can_be_registered() {
    let n = Normal::new(t64(&[0.0], &[]), 1.0).unwrap();
    let g = Gamma::new(t64(&[2.0], &[]), 1.0).unwrap();
    let e = kl_divergence(&n, &g).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let s = e.to_string();
    assert!(s.contains("`Normal`") && s.contains("`Gamma`"), "{s}");
    // a user rule for a pair that has no built-in one (LkjCholesky with itself, equal dims)
    let a = LkjCholesky::new(3, t64(&[2.0], &[])).unwrap();
    assert!(kl_divergence(&a, &a).is_err());
    register_kl(|p, q| {
        let (_p, _q) = (p.as_any().downcast_ref::<LkjCholesky>()?, q.as_any().downcast_ref::<LkjCholesky>()?);
        Some(Ok(Tensor::new(0.0f64, &Device::Cpu).unwrap()))
    });
    assert_eq!(kl_divergence(&a, &a).unwrap().to_scalar::<f64>().unwrap(), 0.0);
}
