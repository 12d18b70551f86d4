//! Transforms: round trips, shapes, log-abs-det-Jacobians against numerical Jacobians, and
//! `biject_to` images; constraints and `TransformedDistribution` in submodules.

mod constraints;
mod transformed;

use super::common::{assert_close, rng, t64, vec64};
use crate::dist::constraints::Constraint;
use crate::dist::transforms::*;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// `n` standard normals (scaled) of `shape`, in f64.
fn normals(seed: u64, shape: &[usize], scale: f64) -> Tensor {
    let t = rng(seed).normal_tensor(shape, DType::F64, &Device::Cpu).unwrap();
    t.affine(scale, 0.0).unwrap()
}

/// `log |det A|` of a row-major `n × n` matrix by Gaussian elimination with partial pivoting.
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut acc = 0.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs())).unwrap();
        if p != c {
            for k in 0..n {
                a.swap(p * n + k, c * n + k);
            }
        }
        let piv = a[c * n + c];
        acc += piv.abs().ln();
        for r in c + 1..n {
            let f = a[r * n + c] / piv;
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
        }
    }
    acc
}

/// Maps between an event (flattened row-major) and its free coordinates.
type Coords = Box<dyn Fn(&[f64]) -> Vec<f64>>;

fn identity() -> Coords {
    Box::new(|v| v.to_vec())
}

/// Lower triangle (with diagonal) of a flattened `n × n` matrix, row-major.
fn lower(n: usize, strict: bool) -> Coords {
    Box::new(move |v| (0..n).flat_map(|i| (0..if strict { i } else { i + 1 }).map(move |j| (i, j))).map(|(i, j)| v[i * n + j]).collect())
}

/// A lower-triangular (`symmetric`: symmetric) `n × n` matrix from its lower-triangle coordinates.
fn from_lower(n: usize, symmetric: bool) -> Coords {
    Box::new(move |c| {
        let mut m = vec![0.0; n * n];
        let mut k = 0;
        for i in 0..n {
            for j in 0..=i {
                m[i * n + j] = c[k];
                if symmetric {
                    m[j * n + i] = c[k];
                }
                k += 1;
            }
        }
        m
    })
}

/// Checks `t.log_abs_det_jacobian(x, t(x))` for each batch row of `x` (shape `[B] ++ event`)
/// against `log |det|` of the central-difference Jacobian of `c ↦ free_out(t(build_in(c)))` at
/// `c = free_in(x_b)`. For dimension-changing transforms `free_out` takes the output's free
/// coordinates (torch's convention: e.g. the first K-1 entries of a simplex vector, the strict
/// lower triangle of a correlation Cholesky factor), which makes the Jacobian square.
fn check_ladj(what: &str, t: &dyn Transform, x: &Tensor, free_in: Coords, build_in: Coords, free_out: Coords) {
    let y = t.forward(x).unwrap();
    let ladj = vec64(&t.log_abs_det_jacobian(x, &y).unwrap());
    let b = x.dims()[0];
    assert_eq!(ladj.len(), b, "{what}: ladj has one value per batch row");
    let ev = &x.dims()[1..];
    let eval = |c: &[f64]| -> Vec<f64> { free_out(&vec64(&t.forward(&t64(&build_in(c), ev)).unwrap())) };
    for (i, &got) in ladj.iter().enumerate() {
        let c = free_in(&vec64(&x.get(i).unwrap()));
        let m = c.len();
        let mut jac = vec![0.0; m * m];
        for j in 0..m {
            let h = 1e-6 * c[j].abs().max(1.0);
            let (mut cp, mut cm) = (c.clone(), c.clone());
            cp[j] += h;
            cm[j] -= h;
            let (fp, fm) = (eval(&cp), eval(&cm));
            assert_eq!(fp.len(), m, "{what}: free output coordinates must match the input's");
            for r in 0..m {
                jac[r * m + j] = (fp[r] - fm[r]) / (2.0 * h);
            }
        }
        let want = log_abs_det(jac, m);
        assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "{what}[{i}]: ladj {got}, numerical {want}");
    }
}

/// `x → y → x` within 1e-10, and `forward_shape`/`inverse_shape` match the actual shapes.
fn check_round_trip(what: &str, t: &dyn Transform, x: &Tensor) {
    let y = t.forward(x).unwrap();
    assert_eq!(t.forward_shape(x.dims()).unwrap(), y.dims(), "{what}: forward_shape");
    let back = t.inverse(&y).unwrap();
    assert_eq!(t.inverse_shape(y.dims()).unwrap(), back.dims(), "{what}: inverse_shape");
    assert_close(&format!("{what} round trip"), &vec64(&back), &vec64(x), 1e-10, 1e-10);
}

fn pd_batch(seed: u64, b: usize, n: usize) -> Tensor {
    let a = normals(seed, &[b, n, n], 1.0);
    let eye = Tensor::eye(n, DType::F64, &Device::Cpu).unwrap();
    a.matmul(&a.transpose(1, 2).unwrap()).unwrap().broadcast_add(&eye).unwrap()
}

#[test]
fn elementwise_round_trips_and_jacobians() {
    let x = normals(1, &[6], 1.5);
    let pos = x.exp().unwrap();
    let unit = candle_nn::ops::sigmoid(&x).unwrap();
    let cases: Vec<(&str, TransformRef, &Tensor)> = vec![
        ("exp", Arc::new(ExpTransform), &x),
        ("identity", Arc::new(IdentityTransform), &x),
        ("affine", Arc::new(AffineTransform::new(2.0, -3.0).unwrap()), &x),
        ("sigmoid", Arc::new(SigmoidTransform), &x),
        ("softplus", Arc::new(SoftplusTransform), &x),
        ("power", Arc::new(PowerTransform::new(2.5).unwrap()), &pos),
        ("power(-0.7)", Arc::new(PowerTransform::new(-0.7).unwrap()), &pos),
        ("interval", biject_to(&Constraint::Interval(-2.0, 5.0)).unwrap(), &x),
        ("less_than", biject_to(&Constraint::LessThan(3.0)).unwrap(), &x),
        ("inv(exp)", Arc::new(ExpTransform.inv()), &pos),
        ("inv(sigmoid)", Arc::new(SigmoidTransform.inv()), &unit),
    ];
    for (what, t, x) in cases {
        check_round_trip(what, t.as_ref(), x);
        check_ladj(what, t.as_ref(), x, identity(), identity(), identity());
    }
}

#[test]
fn tensor_affine_and_power_broadcast() {
    let loc = t64(&[1.0, -2.0, 0.5], &[3]);
    let scale = t64(&[2.0, -0.5, 3.0], &[3]);
    let x = normals(2, &[4, 3], 1.0);
    // event_dim 1: one Jacobian term per row.
    let t = AffineTransform::new(&loc, &scale).unwrap().with_event_dim(1);
    check_round_trip("affine tensor", &t, &x);
    check_ladj("affine tensor", &t, &x, identity(), identity(), identity());
    assert_eq!(t.domain_event_dim(), 1);
    // event_dim 0: elementwise log|scale|, broadcast to the input; a scalar input broadcasts up.
    let t0 = AffineTransform::new(&loc, &scale).unwrap();
    let y = t0.forward(&x).unwrap();
    let lad = t0.log_abs_det_jacobian(&x, &y).unwrap();
    assert_eq!(lad.dims(), &[4, 3]);
    assert_close("affine lad", &vec64(&lad)[..3], &[2f64.ln(), 0.5f64.ln(), 3f64.ln()], 1e-15, 0.0);
    assert_eq!(t0.forward_shape(&[]).unwrap(), vec![3]);
    assert!(t0.forward_shape(&[4]).is_err());
    assert_eq!(t0.sign(), None);
    assert_eq!(AffineTransform::new(0.0, -2.0).unwrap().sign(), Some(-1.0));
    assert!(AffineTransform::new(0.0, 0.0).is_err());
    let p = PowerTransform::new(t64(&[0.5, 2.0, -1.0], &[3])).unwrap();
    let xp = normals(3, &[5, 3], 1.0).exp().unwrap();
    check_round_trip("power tensor", &p, &xp);
    let lad = vec64(&p.log_abs_det_jacobian(&xp, &p.forward(&xp).unwrap()).unwrap());
    let xv = vec64(&xp);
    for (i, e) in [0.5f64, 2.0, -1.0].iter().enumerate() {
        // d/dx x^e = e x^(e-1)
        assert!((lad[i] - (e.abs() * xv[i].powf(e - 1.0)).ln()).abs() < 1e-12);
    }
    // f32 works through the same code.
    let x32 = x.to_dtype(DType::F32).unwrap();
    let t32 = AffineTransform::new(loc.to_dtype(DType::F32).unwrap(), scale.to_dtype(DType::F32).unwrap()).unwrap();
    assert_eq!(t32.forward(&x32).unwrap().dtype(), DType::F32);
}

#[test]
fn vector_and_matrix_round_trips_and_jacobians() {
    let b = 4;
    let sb = StickBreakingTransform;
    let x = normals(10, &[b, 3], 1.5);
    check_round_trip("stick_breaking", &sb, &x);
    check_ladj("stick_breaking", &sb, &x, identity(), identity(), Box::new(|y| y[..3].to_vec()));
    let y = sb.forward(&x).unwrap();
    assert_close("simplex sums", &vec64(&y.sum(1).unwrap()), &[1.0; 4], 1e-14, 0.0);

    let ord = OrderedTransform;
    let x = normals(11, &[b, 4], 1.0);
    check_round_trip("ordered", &ord, &x);
    check_ladj("ordered", &ord, &x, identity(), identity(), identity());

    let lcv = LowerCholeskyTransform::from_vector();
    let x = normals(12, &[b, 6], 1.0);
    check_round_trip("lower_cholesky(vector)", &lcv, &x);
    check_ladj("lower_cholesky(vector)", &lcv, &x, identity(), identity(), lower(3, false));

    // Matrix form: a bijection on lower-triangular inputs (the upper triangle is ignored).
    let lcm = LowerCholeskyTransform::new();
    let x = crate::dist::linalg::tril(&normals(13, &[b, 3, 3], 1.0), 0).unwrap();
    check_round_trip("lower_cholesky(matrix)", &lcm, &x);
    check_ladj("lower_cholesky(matrix)", &lcm, &x, lower(3, false), from_lower(3, false), lower(3, false));
    let full = normals(14, &[b, 3, 3], 1.0);
    let y = lcm.forward(&full).unwrap();
    assert_close("upper ignored", &vec64(&y), &vec64(&lcm.forward(&crate::dist::linalg::tril(&full, 0).unwrap()).unwrap()), 0.0, 0.0);

    let cc = CorrCholeskyTransform;
    let x = normals(15, &[b, 6], 1.0);
    check_round_trip("corr_cholesky", &cc, &x);
    check_ladj("corr_cholesky", &cc, &x, identity(), identity(), lower(4, true));
    let x2 = normals(16, &[b, 1], 1.0);
    check_round_trip("corr_cholesky 2x2", &cc, &x2);
    check_ladj("corr_cholesky 2x2", &cc, &x2, identity(), identity(), lower(2, true));

    let ch = CholeskyTransform;
    let a = pd_batch(17, b, 3);
    check_round_trip("cholesky", &ch, &a);
    check_ladj("cholesky", &ch, &a, lower(3, false), from_lower(3, true), lower(3, false));
    let l = ch.forward(&a).unwrap();
    let inv = ch.clone().inv();
    check_ladj("inv(cholesky)", &inv, &l, lower(3, false), from_lower(3, false), lower(3, false));

    // The inverse of stick-breaking, on the simplex's free coordinates (the first K-1 entries).
    let inv_sb = sb.clone().inv();
    let y = sb.forward(&normals(18, &[b, 3], 1.0)).unwrap();
    let complete: Coords = Box::new(|c| c.iter().copied().chain([1.0 - c.iter().sum::<f64>()]).collect());
    check_ladj("inv(stick_breaking)", &inv_sb, &y, Box::new(|v| v[..3].to_vec()), complete, identity());
}

#[test]
fn shape_errors_name_the_transform() {
    let err = CorrCholeskyTransform.forward(&t64(&[1.0, 2.0], &[2])).unwrap_err().to_string();
    assert!(err.contains("CorrCholeskyTransform") && err.contains("triangular"), "{err}");
    let err = LowerCholeskyTransform::from_vector().forward_shape(&[5]).unwrap_err().to_string();
    assert!(err.contains("n(n+1)/2"), "{err}");
    assert!(StickBreakingTransform.inverse_shape(&[1]).is_err());
    assert!(CholeskyTransform.forward(&t64(&[1.0; 6], &[2, 3])).is_err());
    assert_eq!(StickBreakingTransform.forward_shape(&[2, 3]).unwrap(), vec![2, 4]);
    assert_eq!(CorrCholeskyTransform.forward_shape(&[5, 10]).unwrap(), vec![5, 5, 5]);
    assert_eq!(CorrCholeskyTransform.inverse_shape(&[5, 5, 5]).unwrap(), vec![5, 10]);
    assert_eq!(LowerCholeskyTransform::from_vector().inverse_shape(&[3, 3]).unwrap(), vec![6]);
}

#[test]
fn inverse_and_compose_bookkeeping() {
    let e: TransformRef = Arc::new(ExpTransform);
    let ie = e.inv();
    assert!(Arc::ptr_eq(&ie.inv(), &e), "inv of inv unwraps");
    assert_eq!(ie.domain(), Constraint::Positive);
    let x = normals(20, &[5], 1.0).exp().unwrap();
    let y = ie.forward(&x).unwrap();
    assert_close("inv ladj", &vec64(&ie.log_abs_det_jacobian(&x, &y).unwrap()), &vec64(&y.neg().unwrap()), 1e-15, 0.0);

    // torch's event-dim rules: elementwise then vector → domain and codomain event dim 1.
    let c = ComposeTransform::new(vec![Arc::new(ExpTransform), Arc::new(StickBreakingTransform)]);
    assert_eq!((c.domain_event_dim(), c.codomain_event_dim()), (1, 1));
    assert_eq!(c.domain(), Constraint::Real.independent(1));
    let x = normals(21, &[3, 2], 0.5);
    check_ladj("exp∘stick_breaking", &c, &x, identity(), identity(), Box::new(|y| y[..2].to_vec()));
    // Vector → matrix → matrix.
    let pd = biject_to(&Constraint::PositiveDefinite).unwrap();
    assert_eq!((pd.domain_event_dim(), pd.codomain_event_dim()), (1, 2));
    let x = normals(22, &[3, 6], 0.7);
    check_round_trip("positive_definite", pd.as_ref(), &x);
    check_ladj("positive_definite", pd.as_ref(), &x, identity(), identity(), lower(3, false));
    // Independent sums the Jacobian over reinterpreted dims.
    let ind = IndependentTransform::new(Arc::new(ExpTransform), 1);
    let x = normals(23, &[4, 3], 1.0);
    check_ladj("independent(exp, 1)", &ind, &x, identity(), identity(), identity());
    assert_eq!(ind.codomain(), Constraint::Positive.independent(1));
    assert_eq!(ComposeTransform::new(vec![]).log_abs_det_jacobian(&x, &x).unwrap().dims(), &[4, 3]);
    assert_eq!(c.sign(), None);
    assert_eq!(ComposeTransform::new(vec![Arc::new(ExpTransform), Arc::new(AffineTransform::new(0.0, -1.0).unwrap())]).sign(), Some(-1.0));
}

#[test]
fn biject_to_images_satisfy_their_constraint() {
    use Constraint::*;
    let cases: Vec<(Constraint, Vec<usize>)> = vec![
        (Real, vec![7]),
        (RealVector, vec![7, 3]),
        (Positive, vec![7]),
        (Nonnegative, vec![7]),
        (GreaterThan(2.5), vec![7]),
        (GreaterThanEq(-1.0), vec![7]),
        (LessThan(3.0), vec![7]),
        (UnitInterval, vec![7]),
        (Interval(-2.0, 5.0), vec![7]),
        (HalfOpenInterval(0.0, 1.0), vec![7]),
        (Simplex, vec![7, 4]),
        (LowerCholesky, vec![7, 3, 3]),
        (CorrCholesky, vec![7, 4, 4]),
        (PositiveDefinite, vec![7, 3, 3]),
        (OrderedVector, vec![7, 5]),
        (Positive.independent(1), vec![7, 3]),
        (Simplex.independent(1), vec![7, 2, 3]),
    ];
    for (i, (c, shape)) in cases.into_iter().enumerate() {
        let t = biject_to(&c).unwrap();
        let ushape = t.inverse_shape(&shape).unwrap();
        let x = normals(30 + i as u64, &ushape, 1.5);
        let y = t.forward(&x).unwrap();
        assert_eq!(y.dims(), shape.as_slice(), "biject_to({c}) output shape");
        assert_eq!(c.first_violation(&y).unwrap(), None, "biject_to({c}) image");
        assert_eq!(t.domain_event_dim(), ushape.len() - 1, "biject_to({c}) domain event dim");
        assert_eq!(t.codomain_event_dim(), c.event_dim(), "biject_to({c}) codomain event dim");
        check_round_trip(&format!("biject_to({c})"), t.as_ref(), &x);
        let lad = t.log_abs_det_jacobian(&x, &y).unwrap();
        assert_eq!(lad.dims(), &ushape[..1 + ushape.len() - 1 - t.domain_event_dim()], "biject_to({c}) ladj shape");
        assert!(vec64(&lad).iter().all(|v| v.is_finite()));
    }
    for c in [Boolean, IntegerInterval(0, 3), NonnegativeInteger, OneHot] {
        let err = biject_to(&c).unwrap_err().to_string();
        assert!(err.contains(&c.to_string()), "{err}");
    }
}

#[test]
fn transforms_are_differentiable() {
    // Gradient of Σ ladj + Σ y through corr-Cholesky and stick-breaking at a random point,
    // against central differences.
    for (what, t) in [("corr_cholesky", Arc::new(CorrCholeskyTransform) as TransformRef), ("stick_breaking", Arc::new(StickBreakingTransform))] {
        let x0 = vec64(&normals(40, &[3], 1.0));
        let f = |x: &Tensor| -> Tensor {
            let y = t.forward(x).unwrap();
            let w = Tensor::arange(0.0, y.elem_count() as f64, &Device::Cpu).unwrap().reshape(y.dims()).unwrap();
            (y.mul(&w).unwrap().sum_all().unwrap() + t.log_abs_det_jacobian(x, &y).unwrap().sum_all().unwrap()).unwrap()
        };
        let var = candle_core::Var::from_tensor(&t64(&x0, &[3])).unwrap();
        let g = vec64(f(var.as_tensor()).backward().unwrap().get(&var).unwrap());
        for j in 0..3 {
            let h = 1e-6;
            let (mut p, mut m) = (x0.clone(), x0.clone());
            p[j] += h;
            m[j] -= h;
            let fd = (vec64(&f(&t64(&p, &[3])))[0] - vec64(&f(&t64(&m, &[3])))[0]) / (2.0 * h);
            assert!((g[j] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "{what}: grad {j}: {} vs {fd}", g[j]);
        }
    }
}

#[test]
fn biject_to_works_in_f32() {
    use Constraint::*;
    let cases: Vec<(Constraint, Vec<usize>)> = vec![
        (Interval(-1.0, 2.0), vec![5]),
        (Simplex, vec![5, 4]),
        (OrderedVector, vec![5, 3]),
        (LowerCholesky, vec![5, 3, 3]),
        (CorrCholesky, vec![5, 3, 3]),
        (PositiveDefinite, vec![5, 3, 3]),
    ];
    for (i, (c, shape)) in cases.into_iter().enumerate() {
        let t = biject_to(&c).unwrap();
        let x = normals(50 + i as u64, &t.inverse_shape(&shape).unwrap(), 1.0).to_dtype(DType::F32).unwrap();
        let y = t.forward(&x).unwrap();
        assert_eq!(y.dtype(), DType::F32, "{c}");
        assert_eq!(c.first_violation(&y).unwrap(), None, "{c}");
        assert_close(&format!("{c} f32 round trip"), &vec64(&t.inverse(&y).unwrap()), &vec64(&x), 1e-4, 1e-4);
        let lad = t.log_abs_det_jacobian(&x, &y).unwrap();
        assert_eq!(lad.dtype(), DType::F32, "{c}");
        // Same value as the f64 computation, to f32 precision.
        let x64 = x.to_dtype(DType::F64).unwrap();
        let lad64 = t.log_abs_det_jacobian(&x64, &t.forward(&x64).unwrap()).unwrap();
        assert_close(&format!("{c} f32 ladj"), &vec64(&lad), &vec64(&lad64), 1e-5, 1e-5);
    }
}

#[test]
fn one_element_ordered_vector_is_the_identity() {
    let x = normals(60, &[3, 1], 1.0);
    let t = OrderedTransform;
    assert_eq!(vec64(&t.forward(&x).unwrap()), vec64(&x));
    assert_eq!(vec64(&t.log_abs_det_jacobian(&x, &x).unwrap()), vec![0.0; 3]);
}
