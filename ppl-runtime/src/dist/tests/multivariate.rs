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
        let x32 = linalg::solve_triangular(&m.to_dtype(DType::F32).unwrap(), &rhs.to_dtype(DType::F32).unwrap(), lower, left)
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
    let l0 = linalg::tril(&(weights(&[3, 3], 7) + (linalg::eye_like(3, &weights(&[1], 0)).unwrap() * 3.0).unwrap()).unwrap(), 0)
        .unwrap();
    let b0 = weights(&[4, 3, 2], 8);
    check_grad("d solve broadcast", &l0, |l| Ok(linalg::solve_triangular(&linalg::tril(l, 0)?, &b0, true, true)?.sqr()?.sum_all()?));
}
