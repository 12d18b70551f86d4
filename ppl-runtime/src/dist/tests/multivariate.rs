//! Tests of `linalg`, `MultivariateNormal`, `LowRankMultivariateNormal`, `LKJCholesky` and the KL
//! registry, against numpy/scipy fixtures (`tools/fixtures_multivariate.py`), finite differences
//! and Monte Carlo estimates with 4-standard-error tolerances.

use super::common::{assert_close, rng, t64, vec64};
use crate::dist::linalg;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/multivariate.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).unwrap()
}

/// A CPU f64 tensor from a fixture `{"shape", "data"}` object.
fn ft(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    let data: Vec<f64> = v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    t64(&data, &shape)
}

fn fv(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
        Value::Object(_) => v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect(),
        v => vec![v.as_f64().unwrap()],
    }
}

/// Compares the autograd gradient of scalar `f` at `x0` with central finite differences (f64, h = 1e-5).
fn check_grad(what: &str, x0: &Tensor, f: impl Fn(&Tensor) -> Result<Tensor>) {
    let var = Var::from_tensor(x0).unwrap();
    let y = f(var.as_tensor()).unwrap();
    let grads = y.backward().unwrap();
    let g = vec64(grads.get(var.as_tensor()).expect("no gradient"));
    let base = vec64(x0);
    let h = 1e-5;
    let fd: Vec<f64> = (0..base.len())
        .map(|i| {
            let eval = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                let y = f(&t64(&v, x0.dims())).unwrap();
                y.to_scalar::<f64>().unwrap()
            };
            (eval(h) - eval(-h)) / (2.0 * h)
        })
        .collect();
    assert_close(what, &g, &fd, 1e-5, 1e-6);
}

fn weights(shape: &[usize], seed: u64) -> Tensor {
    rng(seed).normal_tensor(shape, DType::F64, &Device::Cpu).unwrap()
}

// ---------------------------------------------------------------- linalg

#[test]
fn cholesky_matches_numpy_f64_and_f32() {
    let f = &fixture()["linalg"];
    let l = linalg::cholesky(&ft(&f["a"])).unwrap();
    assert_close("chol f64", &vec64(&l), &fv(&f["chol"]), 1e-12, 1e-12);
    let l32 = linalg::cholesky(&ft(&f["a"]).to_dtype(DType::F32).unwrap()).unwrap();
    assert_eq!(l32.dtype(), DType::F32);
    assert_close("chol f32", &vec64(&l32), &fv(&f["chol"]), 1e-5, 1e-5);
    let big = linalg::cholesky(&ft(&f["big"])).unwrap();
    assert_close("chol 6x6", &vec64(&big), &fv(&f["big_chol"]), 1e-12, 1e-12);
    // a non-contiguous input (transpose of a symmetric matrix) gives the same factor
    let lt = linalg::cholesky(&ft(&f["a"]).transpose(1, 2).unwrap()).unwrap();
    assert_close("chol strided", &vec64(&lt), &fv(&f["chol"]), 1e-12, 1e-12);
}

#[test]
fn solve_triangular_matches_scipy() {
    let f = &fixture()["linalg"];
    let l = ft(&f["chol"]);
    let u = linalg::mt(&l).unwrap();
    let (b, br) = (ft(&f["b"]), ft(&f["b_right"]));
    let cases = [
        ("lower left", &l, &b, true, true, "solve_lower_left"),
        ("upper left", &u, &b, false, true, "solve_upper_left"),
        ("lower right", &l, &br, true, false, "solve_lower_right"),
        ("upper right", &u, &br, false, false, "solve_upper_right"),
    ];
    for (what, m, rhs, lower, left, key) in cases {
        let x = linalg::solve_triangular(m, rhs, lower, left).unwrap();
        assert_close(what, &vec64(&x), &fv(&f[key]), 1e-10, 1e-10);
        let x32 =
            linalg::solve_triangular(&m.to_dtype(DType::F32).unwrap(), &rhs.to_dtype(DType::F32).unwrap(), lower, left)
                .unwrap();
        assert_close(what, &vec64(&x32), &fv(&f[key]), 1e-4, 1e-4);
    }
    let x = linalg::cholesky_solve(&b, &l).unwrap();
    assert_close("cholesky_solve", &vec64(&x), &fv(&f["cholesky_solve"]), 1e-10, 1e-10);
    let inv = linalg::cholesky_inverse(&l).unwrap();
    assert_close("cholesky_inverse", &vec64(&inv), &fv(&f["inverse"]), 1e-10, 1e-10);
    let ld = linalg::log_det_from_cholesky(&l).unwrap();
    assert_close("logdet", &vec64(&ld), &fv(&f["logdet"]), 1e-12, 1e-12);
}

#[test]
fn solve_triangular_broadcasts_batch_dims() {
    let f = &fixture()["linalg"];
    let l = ft(&f["chol"]);
    let b = ft(&f["b"]);
    // one matrix against a batch of right-hand sides
    let l0 = l.get(0).unwrap();
    let x = linalg::solve_triangular(&l0, &b, true, true).unwrap();
    assert_eq!(x.dims(), &[2, 3, 2]);
    for i in 0..2 {
        let xi = linalg::solve_triangular(&l0, &b.get(i).unwrap(), true, true).unwrap();
        assert_close("broadcast", &vec64(&x.get(i).unwrap()), &vec64(&xi), 1e-14, 1e-14);
    }
    // Mahalanobis with extra sample dims equals the broadcast path
    let xs = weights(&[4, 2, 3], 5);
    let m = linalg::batch_mahalanobis(&l, &xs).unwrap();
    assert_eq!(m.dims(), &[4, 2]);
    let z = linalg::solve_triangular(&l, &xs.unsqueeze(3).unwrap(), true, true).unwrap();
    let want = z.sqr().unwrap().sum(3).unwrap().sum(2).unwrap();
    assert_close("mahalanobis", &vec64(&m), &vec64(&want), 1e-12, 1e-12);
    // x with fewer batch dims than l takes the general path
    let m1 = linalg::batch_mahalanobis(&l, &xs.get(0).unwrap().get(0).unwrap()).unwrap();
    assert_eq!(m1.dims(), &[2]);
}

#[test]
fn linalg_errors_name_shapes() {
    let nonsquare = t64(&[1.0; 6], &[2, 3]);
    let e = linalg::cholesky(&nonsquare).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("[2, 3]"), "{e}");
    let not_pd = t64(&[1.0, 2.0, 2.0, 1.0, 4.0, 0.0, 0.0, 4.0], &[2, 2, 2]);
    let e = linalg::cholesky(&not_pd).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    let s = e.to_string();
    assert!(s.contains("not positive definite") && s.contains("matrix 0") && s.contains("[2, 2, 2]"), "{s}");
    let nan = t64(&[f64::NAN, 0.0, 0.0, 1.0], &[2, 2]);
    assert!(linalg::cholesky(&nan).is_err());
    let l = t64(&[1.0, 0.0, 1.0, 1.0], &[2, 2]);
    let e = linalg::solve_triangular(&l, &t64(&[1.0; 3], &[3, 1]), true, true).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("[2, 2]") && s.contains("[3, 1]"), "{s}");
    let singular = t64(&[1.0, 0.0, 1.0, 0.0], &[2, 2]);
    let e = linalg::solve_triangular(&singular, &t64(&[1.0; 2], &[2, 1]), true, true).unwrap_err();
    assert!(e.to_string().contains("singular"), "{e}");
}

#[test]
fn cholesky_gradient_matches_finite_differences() {
    // f(B) = Σ W ⊙ chol(B Bᵀ + 2I): the symmetric input keeps the finite differences honest.
    let b0 = weights(&[2, 3, 3], 1);
    let w = weights(&[2, 3, 3], 2);
    check_grad("d chol", &b0, |b| {
        let a = b.matmul(&linalg::mt(b)?)?.broadcast_add(&(linalg::eye_like(3, b)? * 2.0)?)?;
        Ok(linalg::cholesky(&a)?.mul(&w)?.sum_all()?)
    });
    // and through log-det, whose gradient is the inverse
    check_grad("d logdet", &b0, |b| {
        let a = b.matmul(&linalg::mt(b)?)?.broadcast_add(&(linalg::eye_like(3, b)? * 2.0)?)?;
        Ok(linalg::log_det_from_cholesky(&linalg::cholesky(&a)?)?.sum_all()?)
    });
}

#[test]
fn solve_triangular_gradients_match_finite_differences() {
    for (lower, left) in [(true, true), (false, true), (true, false), (false, false)] {
        let raw = weights(&[2, 3, 3], 3);
        let base = raw.broadcast_add(&(linalg::eye_like(3, &raw).unwrap() * 3.0).unwrap()).unwrap();
        let tri = |m: &Tensor| if lower { linalg::tril(m, 0) } else { linalg::triu(m, 0) };
        let bshape = if left { [2, 3, 2] } else { [2, 2, 3] };
        let b0 = weights(&bshape, 4);
        let w = weights(&bshape, 6);
        let what = format!("d solve lower={lower} left={left}");
        check_grad(&format!("{what} wrt l"), &base, |m| {
            Ok(linalg::solve_triangular(&tri(m)?, &b0, lower, left)?.mul(&w)?.sum_all()?)
        });
        let m0 = tri(&base).unwrap();
        check_grad(&format!("{what} wrt b"), &b0, |b| {
            Ok(linalg::solve_triangular(&m0, b, lower, left)?.mul(&w)?.sum_all()?)
        });
    }
    // broadcast l: its gradient sums over the batch of right-hand sides
    let l0 = linalg::tril(
        &(weights(&[3, 3], 7) + (linalg::eye_like(3, &weights(&[1], 0)).unwrap() * 3.0).unwrap()).unwrap(),
        0,
    )
    .unwrap();
    let b0 = weights(&[4, 3, 2], 8);
    check_grad("d solve broadcast", &l0, |l| {
        Ok(linalg::solve_triangular(&linalg::tril(l, 0)?, &b0, true, true)?.sqr()?.sum_all()?)
    });
}

// ---------------------------------------------------------------- MultivariateNormal

use crate::dist::{Distribution, LowRankMultivariateNormal, MultivariateNormal};

fn mvn_three_ways(f: &Value, dtype: DType) -> Vec<(&'static str, MultivariateNormal)> {
    let c = |k: &str| ft(&f[k]).to_dtype(dtype).unwrap();
    vec![
        ("scale_tril", MultivariateNormal::from_scale_tril(c("loc"), c("scale_tril")).unwrap()),
        ("covariance", MultivariateNormal::from_covariance_matrix(c("loc"), c("cov")).unwrap()),
        ("precision", MultivariateNormal::from_precision_matrix(c("loc"), c("precision")).unwrap()),
    ]
}

#[test]
fn mvn_log_prob_and_entropy_match_scipy() {
    let f = &fixture()["mvn"];
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-4)] {
        let x = ft(&f["x"]).to_dtype(dtype).unwrap();
        for (what, d) in mvn_three_ways(f, dtype) {
            assert_eq!(d.batch_shape(), &[2]);
            assert_eq!(d.event_shape(), &[3]);
            let lp = d.log_prob(&x).unwrap();
            assert_eq!(lp.dims(), &[4, 2]);
            assert_eq!(lp.dtype(), dtype);
            assert_close(&format!("{what} log_prob {dtype:?}"), &vec64(&lp), &fv(&f["log_prob"]), tol, tol);
            assert_close(&format!("{what} entropy"), &vec64(&d.entropy().unwrap()), &fv(&f["entropy"]), tol, tol);
            assert_close(&format!("{what} cov"), &vec64(&d.covariance_matrix().unwrap()), &fv(&f["cov"]), tol, tol);
            assert_close(
                &format!("{what} prec"),
                &vec64(&d.precision_matrix().unwrap()),
                &fv(&f["precision"]),
                10.0 * tol,
                tol,
            );
            let diag: Vec<f64> = fv(&f["cov"]).chunks(9).flat_map(|m| [m[0], m[4], m[8]]).collect();
            assert_close(&format!("{what} variance"), &vec64(&d.variance().unwrap()), &diag, tol, tol);
            assert_close(&format!("{what} mean"), &vec64(&d.mean().unwrap()), &fv(&f["loc"]), 0.0, tol);
        }
    }
}

#[test]
fn mvn_broadcasts_loc_and_matrix_batches() {
    let f = &fixture()["mvn"];
    let (loc, l, x) = (ft(&f["loc"]), ft(&f["scale_tril"]), ft(&f["x"]));
    let lp_full = vec64(&MultivariateNormal::from_scale_tril(&loc, &l).unwrap().log_prob(&x).unwrap());
    // one shared matrix, batched loc
    let l0 = l.get(0).unwrap();
    let d = MultivariateNormal::from_scale_tril(&loc, &l0).unwrap();
    assert_eq!(d.batch_shape(), &[2]);
    let lp = vec64(&d.log_prob(&x).unwrap());
    for s in 0..4 {
        for b in 0..2 {
            let single = MultivariateNormal::from_scale_tril(loc.get(b).unwrap(), &l0).unwrap();
            let want = single.log_prob(&x.get(s).unwrap().get(b).unwrap()).unwrap().to_scalar::<f64>().unwrap();
            assert_close("shared matrix", &[lp[s * 2 + b]], &[want], 1e-12, 1e-12);
        }
    }
    // one loc, batched matrices; scalar loc
    let d = MultivariateNormal::from_scale_tril(loc.get(1).unwrap(), &l).unwrap();
    assert_eq!(d.batch_shape(), &[2]);
    let d0 = MultivariateNormal::from_scale_tril(0.0, &l).unwrap();
    assert_eq!(d0.loc().dims(), &[2, 3]);
    assert_eq!(vec64(d0.loc()), vec![0.0; 6]);
    // a value without batch dims broadcasts against the batch
    let lp1 =
        MultivariateNormal::from_scale_tril(&loc, &l).unwrap().log_prob(&x.get(0).unwrap().get(1).unwrap()).unwrap();
    assert_eq!(lp1.dims(), &[2]);
    assert_close("value broadcast", &vec64(&lp1)[1..], &lp_full[1..2], 1e-12, 1e-12);
    // expand
    let e = MultivariateNormal::from_scale_tril(&loc, &l).unwrap().expand(&[5, 2]).unwrap();
    assert_eq!(e.batch_shape(), &[5, 2]);
    let lpe = e.log_prob(&x.get(0).unwrap()).unwrap();
    assert_eq!(lpe.dims(), &[5, 2]);
    assert_close("expand", &vec64(&lpe)[..2], &lp_full[..2], 1e-12, 1e-12);
    assert_eq!(e.entropy().unwrap().dims(), &[5, 2]);
    assert_eq!(e.sample(&mut rng(0), &[7]).unwrap().dims(), &[7, 5, 2, 3]);
}

/// Checks sample means and covariances of draws `[N, B, n]` against `mean` `[B, n]` and `cov`
/// `[B, n, n]`, within 4 standard errors computed from the known Gaussian moments.
fn check_gaussian_moments(what: &str, xs: &Tensor, mean: &[f64], cov: &[f64], n: usize) {
    let big_n = xs.dims()[0];
    let b = xs.dims()[1];
    let v = vec64(xs);
    for bi in 0..b {
        let m = &mean[bi * n..(bi + 1) * n];
        let c = |i: usize, j: usize| cov[bi * n * n + i * n + j];
        let at = |s: usize, i: usize| v[s * b * n + bi * n + i] - m[i];
        for i in 0..n {
            let got: f64 = (0..big_n).map(|s| at(s, i)).sum::<f64>() / big_n as f64;
            let se = (c(i, i) / big_n as f64).sqrt();
            assert!(got.abs() <= 4.0 * se, "{what}: mean[{bi}][{i}] off by {got} (4 SE = {})", 4.0 * se);
            for j in 0..=i {
                // with the known mean, Var[(xᵢ-μᵢ)(xⱼ-μⱼ)] = ΣᵢᵢΣⱼⱼ + Σᵢⱼ² (Isserlis)
                let got: f64 = (0..big_n).map(|s| at(s, i) * at(s, j)).sum::<f64>() / big_n as f64;
                let se = ((c(i, i) * c(j, j) + c(i, j).powi(2)) / big_n as f64).sqrt();
                assert!(
                    (got - c(i, j)).abs() <= 4.0 * se,
                    "{what}: cov[{bi}][{i}][{j}] = {got}, want {} ± {}",
                    c(i, j),
                    4.0 * se
                );
            }
        }
    }
}

#[test]
fn mvn_and_low_rank_sample_moments() {
    let fx = fixture();
    let f = &fx["mvn"];
    let d = MultivariateNormal::from_scale_tril(ft(&f["loc"]), ft(&f["scale_tril"])).unwrap();
    let xs = d.sample(&mut rng(11), &[20000]).unwrap();
    assert_eq!(xs.dims(), &[20000, 2, 3]);
    check_gaussian_moments("mvn", &xs, &fv(&f["loc"]), &fv(&f["cov"]), 3);
    // f32 sampling is seeded too
    let d32 = MultivariateNormal::from_scale_tril(
        ft(&f["loc"]).to_dtype(DType::F32).unwrap(),
        ft(&f["scale_tril"]).to_dtype(DType::F32).unwrap(),
    )
    .unwrap();
    let a = vec64(&d32.sample(&mut rng(3), &[4]).unwrap());
    assert_eq!(a, vec64(&d32.sample(&mut rng(3), &[4]).unwrap()));
    let g = &fx["lowrank"];
    let lr = LowRankMultivariateNormal::new(ft(&g["loc"]), ft(&g["cov_factor"]), ft(&g["cov_diag"])).unwrap();
    let xs = lr.sample(&mut rng(12), &[20000]).unwrap();
    assert_eq!(xs.dims(), &[20000, 2, 4]);
    check_gaussian_moments("low rank", &xs, &fv(&g["loc"]), &fv(&g["cov"]), 4);
}

#[test]
fn low_rank_matches_scipy_and_full_mvn() {
    let g = &fixture()["lowrank"];
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-4)] {
        let c = |k: &str| ft(&g[k]).to_dtype(dtype).unwrap();
        let lr = LowRankMultivariateNormal::new(c("loc"), c("cov_factor"), c("cov_diag")).unwrap();
        assert_eq!((lr.batch_shape(), lr.event_shape()), (&[2usize][..], &[4usize][..]));
        let lp = lr.log_prob(&c("x")).unwrap();
        assert_eq!(lp.dims(), &[5, 2]);
        assert_close("lowrank log_prob", &vec64(&lp), &fv(&g["log_prob"]), tol, tol);
        assert_close("lowrank entropy", &vec64(&lr.entropy().unwrap()), &fv(&g["entropy"]), tol, tol);
        assert_close("lowrank cov", &vec64(&lr.covariance_matrix().unwrap()), &fv(&g["cov"]), tol, tol);
        let full = MultivariateNormal::from_covariance_matrix(c("loc"), c("cov")).unwrap();
        assert_close("vs full log_prob", &vec64(&lp), &vec64(&full.log_prob(&c("x")).unwrap()), tol, tol);
        assert_close("vs full variance", &vec64(&lr.variance().unwrap()), &vec64(&full.variance().unwrap()), tol, tol);
        assert_close(
            "vs full prec",
            &vec64(&lr.precision_matrix().unwrap()),
            &vec64(&full.precision_matrix().unwrap()),
            tol,
            tol,
        );
        assert_close("vs full tril", &vec64(&lr.scale_tril().unwrap()), &vec64(&full.scale_tril().unwrap()), tol, tol);
    }
    // scalar loc and cov_diag, shared factor, expand
    let w = ft(&g["cov_factor"]).get(0).unwrap();
    let lr = LowRankMultivariateNormal::new(0.0, &w, 1.5).unwrap();
    assert_eq!(lr.batch_shape(), &[] as &[usize]);
    let e = lr.expand(&[3]).unwrap();
    let lp = e.log_prob(&t64(&[0.1, 0.2, 0.3, 0.4], &[4])).unwrap();
    assert_eq!(lp.dims(), &[3]);
}

#[test]
fn mvn_rsample_gradients_match_finite_differences() {
    // Common random numbers: the same seed gives the same ε, so x = loc + L ε is a smooth
    // function of (loc, L) and its finite differences are exact up to O(h²).
    let f = &fixture()["mvn"];
    let (loc0, l0) = (ft(&f["loc"]), ft(&f["scale_tril"]));
    let objective = |loc: &Tensor, l: &Tensor| -> Result<Tensor> {
        let d = MultivariateNormal::from_scale_tril(loc, &linalg::tril(l, 0)?)?;
        Ok(d.rsample(&mut rng(21), &[30])?.sin()?.sum_all()?)
    };
    check_grad("rsample d loc", &loc0, |loc| objective(loc, &l0));
    check_grad("rsample d scale_tril", &l0, |l| objective(&loc0, l));
    // low rank: d/d loc, W, D
    let g = &fixture()["lowrank"];
    let (gl, gw, gd) = (ft(&g["loc"]), ft(&g["cov_factor"]), ft(&g["cov_diag"]));
    let lr_obj = |loc: &Tensor, w: &Tensor, d: &Tensor| -> Result<Tensor> {
        Ok(LowRankMultivariateNormal::new(loc, w, d)?.rsample(&mut rng(22), &[30])?.sin()?.sum_all()?)
    };
    check_grad("lowrank rsample d loc", &gl, |x| lr_obj(x, &gw, &gd));
    check_grad("lowrank rsample d W", &gw, |x| lr_obj(&gl, x, &gd));
    check_grad("lowrank rsample d D", &gd, |x| lr_obj(&gl, &gw, x));
}

#[test]
fn mvn_log_prob_gradients_match_finite_differences() {
    let fx = fixture();
    let f = &fx["mvn"];
    let (loc0, x) = (ft(&f["loc"]), ft(&f["x"]));
    let b0 = weights(&[2, 3, 3], 31);
    // covariance = B Bᵀ + I keeps the perturbed matrix symmetric positive definite
    let cov =
        |b: &Tensor| -> Result<Tensor> { Ok(b.matmul(&linalg::mt(b)?)?.broadcast_add(&linalg::eye_like(3, b)?)?) };
    check_grad("log_prob d cov", &b0, |b| {
        Ok(MultivariateNormal::from_covariance_matrix(&loc0, &cov(b)?)?.log_prob(&x)?.sum_all()?)
    });
    check_grad("log_prob d prec", &b0, |b| {
        Ok(MultivariateNormal::from_precision_matrix(&loc0, &cov(b)?)?.log_prob(&x)?.sum_all()?)
    });
    check_grad("log_prob d loc", &loc0, |loc| {
        Ok(MultivariateNormal::from_covariance_matrix(loc, &cov(&b0)?)?.log_prob(&x)?.sum_all()?)
    });
    let g = &fx["lowrank"];
    let (gl, gw, gd, gx) = (ft(&g["loc"]), ft(&g["cov_factor"]), ft(&g["cov_diag"]), ft(&g["x"]));
    check_grad("lowrank log_prob d W", &gw, |w| {
        Ok(LowRankMultivariateNormal::new(&gl, w, &gd)?.log_prob(&gx)?.sum_all()?)
    });
    check_grad("lowrank log_prob d D", &gd, |d| {
        Ok(LowRankMultivariateNormal::new(&gl, &gw, d)?.log_prob(&gx)?.sum_all()?)
    });
}

#[test]
fn mvn_validation_errors_name_arguments_and_shapes() {
    let cov_bad = t64(&[1.0, 2.0, 2.0, 1.0], &[2, 2]);
    let e = MultivariateNormal::from_covariance_matrix(0.0, &cov_bad).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { arg: "covariance_matrix", .. }), "{e}");
    assert!(e.to_string().contains("positive_definite"), "{e}");
    let e = MultivariateNormal::from_precision_matrix(0.0, &cov_bad).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { arg: "precision_matrix", .. }), "{e}");
    let upper = t64(&[1.0, 0.5, 0.0, 1.0], &[2, 2]);
    let e = MultivariateNormal::from_scale_tril(0.0, &upper).unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { arg: "scale_tril", .. }) && e.to_string().contains("lower_cholesky"),
        "{e}"
    );
    let eye3 = linalg::eye_like(3, &t64(&[0.0], &[1])).unwrap();
    let e = MultivariateNormal::from_covariance_matrix(t64(&[0.0; 4], &[4]), &eye3).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && s.contains("[4]") && s.contains("[3, 3]"), "{s}");
    let e = MultivariateNormal::from_covariance_matrix(0.0, t64(&[1.0; 6], &[2, 3])).unwrap_err();
    assert!(e.to_string().contains("[2, 3]"), "{e}");
    let e = MultivariateNormal::from_scale_tril(t64(&[0.0; 6], &[2, 3]), eye3.broadcast_as((4, 3, 3)).unwrap())
        .unwrap_err();
    let s = e.to_string();
    assert!(s.contains("[2]") && s.contains("[4]") && s.contains("loc") && s.contains("scale_tril"), "{s}");
    let e = MultivariateNormal::from_scale_tril(0.0, 1.0).unwrap_err();
    assert!(e.to_string().contains("scale_tril"), "{e}");
    let e = MultivariateNormal::from_scale_tril(t64(&[0.0; 3], &[3]).to_dtype(DType::F32).unwrap(), &eye3).unwrap_err();
    assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    let d = MultivariateNormal::from_scale_tril(0.0, &eye3).unwrap();
    let e = d.log_prob(&t64(&[0.0; 4], &[4])).unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && s.contains("[4]") && s.contains("[3]"), "{s}");
    let e = d.log_prob(&t64(&[0.0, f64::NAN, 0.0], &[3])).unwrap_err();
    assert!(matches!(e, Error::OutOfSupport { .. }), "{e}");
    // low rank
    let w = t64(&[1.0; 6], &[3, 2]);
    let e = LowRankMultivariateNormal::new(0.0, &w, t64(&[1.0, -1.0, 1.0], &[3])).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { arg: "cov_diag", .. }), "{e}");
    let e = LowRankMultivariateNormal::new(t64(&[0.0; 4], &[4]), &w, 1.0).unwrap_err();
    let s = e.to_string();
    assert!(s.contains("[4]") && s.contains("[3, 2]"), "{s}");
}

// ---------------------------------------------------------------- LkjCholesky

use crate::dist::LkjCholesky;

#[test]
fn lkj_log_prob_matches_torch_formula() {
    let f = &fixture()["lkj"];
    for case in f["cases"].as_array().unwrap() {
        let dim = case["dim"].as_u64().unwrap() as usize;
        let eta = case["eta"].as_f64().unwrap();
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
            let d = LkjCholesky::new(dim, Tensor::new(eta, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let v = ft(&case["value"]).to_dtype(dtype).unwrap();
            let lp = d.log_prob(&v).unwrap();
            assert_eq!(lp.dims(), &[4]);
            assert_close(&format!("lkj dim {dim} eta {eta} {dtype:?}"), &vec64(&lp), &fv(&case["log_prob"]), tol, tol);
        }
    }
}

#[test]
fn lkj_dim2_is_a_scaled_beta() {
    // r = L[1,0]; (r + 1)/2 ~ Beta(η, η), so p(r) = Beta.pdf((r + 1)/2) / 2 (scipy values).
    let f = &fixture()["lkj"];
    for c in f["beta_dim2"].as_array().unwrap() {
        let eta = c["eta"].as_f64().unwrap();
        let r = fv(&c["r"]);
        let mut v = vec![];
        for &x in &r {
            v.extend([1.0, 0.0, x, (1.0 - x * x).sqrt()]);
        }
        let lp = LkjCholesky::new(2, t64(&[eta], &[])).unwrap().log_prob(&t64(&v, &[r.len(), 2, 2])).unwrap();
        assert_close(&format!("lkj beta eta {eta}"), &vec64(&lp), &fv(&c["log_prob"]), 1e-10, 1e-10);
    }
}

#[test]
fn lkj_samples_have_the_right_correlation_moments() {
    // Each off-diagonal correlation of LKJ(η) in dimension d has (r + 1)/2 ~ Beta(β, β) with
    // β = η - 1 + d/2: E r = 0, E r² = 1/(2β+1), E r⁴ = 3/((2β+1)(2β+3)).
    let n = 6000;
    for (dim, etas) in [(2usize, [0.5, 1.0, 3.0]), (3, [0.7, 1.0, 2.0]), (5, [1.0, 1.5, 4.0])] {
        let conc = t64(&etas, &[3]);
        let d = LkjCholesky::new(dim, &conc).unwrap();
        let l = d.sample(&mut rng(40 + dim as u64), &[n]).unwrap();
        assert_eq!(l.dims(), &[n, 3, dim, dim]);
        assert!(crate::dist::Constraint::CorrCholesky.first_violation(&l).unwrap().is_none());
        assert!(d.log_prob(&l).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().all(|x| x.is_finite()));
        let c = vec64(&linalg::bmm(&l, &linalg::mt(&l).unwrap()).unwrap());
        for (b, &eta) in etas.iter().enumerate() {
            let beta = eta - 1.0 + dim as f64 / 2.0;
            let m2 = 1.0 / (2.0 * beta + 1.0);
            let m4 = 3.0 / ((2.0 * beta + 1.0) * (2.0 * beta + 3.0));
            for i in 1..dim {
                for j in 0..i {
                    let r: Vec<f64> = (0..n).map(|s| c[((s * 3 + b) * dim + i) * dim + j]).collect();
                    let mean = r.iter().sum::<f64>() / n as f64;
                    let se = (m2 / n as f64).sqrt();
                    assert!(mean.abs() <= 4.0 * se, "dim {dim} eta {eta} r[{i}{j}] mean {mean} (4 SE {})", 4.0 * se);
                    let sq = r.iter().map(|x| x * x).sum::<f64>() / n as f64;
                    let se = ((m4 - m2 * m2) / n as f64).sqrt();
                    assert!(
                        (sq - m2).abs() <= 4.0 * se,
                        "dim {dim} eta {eta} r[{i}{j}] E r² {sq}, want {m2} ± {}",
                        4.0 * se
                    );
                }
            }
        }
    }
}

#[test]
fn lkj_gradient_errors_and_expand() {
    let f = &fixture()["lkj"];
    let case = &f["cases"][3];
    let v = ft(&case["value"]);
    check_grad("lkj d concentration", &t64(&[2.5], &[1]), |eta| {
        Ok(LkjCholesky::new(3, eta)?.log_prob(&v)?.sum_all()?)
    });
    let e = LkjCholesky::new(1, 1.0).unwrap_err();
    assert!(e.to_string().contains("dim"), "{e}");
    let e = LkjCholesky::new(3, 0.0).unwrap_err();
    assert!(matches!(e, Error::InvalidParameter { arg: "concentration", .. }), "{e}");
    let d = LkjCholesky::new(3, t64(&[1.0], &[])).unwrap();
    let e = d.log_prob(&t64(&[1.0, 0.0, 0.0, 1.0], &[2, 2])).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("[2, 2]"), "{e}");
    let not_corr = linalg::eye_like(3, &v).unwrap().affine(2.0, 0.0).unwrap();
    let e = d.log_prob(&not_corr).unwrap_err();
    assert!(matches!(e, Error::OutOfSupport { .. }) && e.to_string().contains("corr_cholesky"), "{e}");
    let ex = d.expand(&[2, 4]).unwrap();
    assert_eq!(ex.batch_shape(), &[2, 4]);
    assert_eq!(ex.log_prob(&v).unwrap().dims(), &[2, 4]);
    assert!(!d.has_rsample());
}

// ---------------------------------------------------------------- KL registry

mod kl;
