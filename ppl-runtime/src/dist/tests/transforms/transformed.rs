//! `TransformedDistribution`: LogNormal as Normal + exp against scipy.stats.lognorm, affine
//! images of a Normal against the Normal they equal, vector transforms, shapes and sampling.

use crate::dist::tests::common::{assert_close, rng, t64, vec64};
use crate::dist::transforms::*;
use crate::dist::{Constraint, DistRef, Distribution, DistributionExt, Normal, TransformedDistribution};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;
use std::sync::Arc;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/special.json")).unwrap()
}

fn col(v: &Value, key: &str) -> Vec<f64> {
    v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn exp_of(base: DistRef) -> TransformedDistribution {
    TransformedDistribution::new(base, vec![Arc::new(ExpTransform)]).unwrap()
}

#[test]
fn log_normal_matches_scipy_lognorm() {
    let f = fixture();
    let ln = &f["lognormal"];
    let (loc, scale, x) = (col(ln, "loc"), col(ln, "scale"), col(ln, "x"));
    let n = loc.len();
    let d = exp_of(Normal::new(t64(&loc, &[n]), t64(&scale, &[n])).unwrap().into_ref());
    assert_eq!(d.batch_shape(), &[n]);
    assert_eq!(d.event_shape(), &[] as &[usize]);
    assert_eq!(d.support(), Constraint::Positive);
    let xt = t64(&x, &[n]);
    assert_close("lognormal log_prob", &vec64(&d.log_prob(&xt).unwrap()), &col(ln, "log_prob"), 1e-13, 1e-13);
    assert_close("lognormal cdf", &vec64(&d.cdf(&xt).unwrap()), &col(ln, "cdf"), 1e-12, 1e-15);
    // f32 too.
    let d32 = exp_of(Normal::new(t64(&loc, &[n]).to_dtype(DType::F32).unwrap(), t64(&scale, &[n]).to_dtype(DType::F32).unwrap()).unwrap().into_ref());
    let lp32 = d32.log_prob(&xt.to_dtype(DType::F32).unwrap()).unwrap();
    assert_eq!(lp32.dtype(), DType::F32);
    assert_close("lognormal log_prob f32", &vec64(&lp32), &col(ln, "log_prob"), 1e-5, 1e-5);
    // Out of support and wrong shapes are errors naming the distribution.
    let err = d.log_prob(&t64(&[-1.0; 6], &[6])).unwrap_err().to_string();
    assert!(err.contains("TransformedDistribution") && err.contains("positive"), "{err}");
    assert!(d.log_prob(&t64(&[1.0; 4], &[4])).is_err());
}

#[test]
fn log_normal_samples_have_the_right_moments() {
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    // mean e^{μ+σ²/2}; 4 standard errors from the known variance (e^{σ²}-1) e^{2μ+σ²}.
    let (mu, sigma, n) = (0.3f64, 0.5f64, 40_000usize);
    let d = exp_of(Normal::new(mu, sigma).unwrap().into_ref());
    let s = d.sample(&mut rng(7), &[n]).unwrap();
    assert_eq!(s.dims(), &[n]);
    let mean = vec64(&s.mean_all().unwrap())[0];
    let want = (mu + sigma * sigma / 2.0).exp();
    let var = ((sigma * sigma).exp() - 1.0) * (2.0 * mu + sigma * sigma).exp();
    let se = (var / n as f64).sqrt();
    assert!((mean - want).abs() < 4.0 * se, "mean {mean} vs {want} (se {se})");
    // Seeded: the same seed gives the same draws.
    let again = d.sample(&mut rng(7), &[n]).unwrap();
    assert_eq!(vec64(&again)[..5], vec64(&s)[..5]);
}

#[test]
fn affine_normal_equals_normal() {
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    // y = 3 - 0.5 x, x ~ N(1, 2)  ⇒  y ~ N(2.5, 1); the cdf flips for the negative scale.
    let d = TransformedDistribution::new(Normal::new(1.0, 2.0).unwrap().into_ref(), vec![Arc::new(AffineTransform::new(3.0, -0.5).unwrap())]).unwrap();
    let want = Normal::new(2.5, 1.0).unwrap();
    let y = t64(&[-1.0, 0.0, 2.5, 4.0, 10.0], &[5]);
    assert_close("affine log_prob", &vec64(&d.log_prob(&y).unwrap()), &vec64(&want.log_prob(&y).unwrap()), 1e-14, 1e-14);
    assert_close("affine cdf", &vec64(&d.cdf(&y).unwrap()), &vec64(&want.cdf(&y).unwrap()), 1e-14, 1e-15);
    let u = t64(&[0.01, 0.3, 0.5, 0.9], &[4]);
    if let Ok(wq) = want.icdf(&u) {
        assert_close("affine icdf", &vec64(&d.icdf(&u).unwrap()), &vec64(&wq), 1e-12, 1e-12);
    }
    // Tensor loc/scale broadcast a scalar base up to batch [3].
    let loc = t64(&[0.0, 1.0, -2.0], &[3]);
    let scale = t64(&[1.0, 3.0, -0.25], &[3]);
    let d = TransformedDistribution::new(Normal::new(0.5, 2.0).unwrap().into_ref(), vec![Arc::new(AffineTransform::new(&loc, &scale).unwrap())]).unwrap();
    assert_eq!(d.batch_shape(), &[3]);
    assert_eq!(d.base_dist().batch_shape(), &[3]);
    let want = Normal::new(t64(&[0.5, 2.5, -2.125], &[3]), t64(&[2.0, 6.0, 0.5], &[3])).unwrap();
    let y = t64(&[0.3, 1.0, -2.0, 4.0, 0.0, -1.9], &[2, 3]);
    assert_close("tensor affine log_prob", &vec64(&d.log_prob(&y).unwrap()), &vec64(&want.log_prob(&y).unwrap()), 1e-14, 1e-14);
    assert!(d.cdf(&y).is_err(), "no monotone sign for a tensor scale");
    assert_eq!(d.sample(&mut rng(1), &[4]).unwrap().dims(), &[4, 3]);
}

#[test]
fn stick_breaking_pushes_a_batch_into_an_event() {
    let base = Normal::new(Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(), 1.0).unwrap().into_ref();
    let d = TransformedDistribution::new(base, vec![Arc::new(StickBreakingTransform)]).unwrap();
    assert_eq!((d.batch_shape(), d.event_shape()), (&[] as &[usize], &[4usize] as &[usize]));
    assert_eq!(d.base_dist().event_shape(), &[3], "base made Independent");
    assert_eq!(d.support(), Constraint::Simplex);
    let s = d.sample(&mut rng(3), &[10]).unwrap();
    assert_eq!(s.dims(), &[10, 4]);
    assert_close("rows sum to 1", &vec64(&s.sum(1).unwrap()), &[1.0; 10], 1e-12, 0.0);
    // log_prob = Σ base log_prob(x) - ladj(x), x = the inverse image.
    let lp = vec64(&d.log_prob(&s).unwrap());
    let x = StickBreakingTransform.inverse(&s).unwrap();
    let base_lp = vec64(&x.sqr().unwrap().affine(-0.5, -0.5 * (2.0 * std::f64::consts::PI).ln()).unwrap().sum(1).unwrap());
    let ladj = vec64(&StickBreakingTransform.log_abs_det_jacobian(&x, &s).unwrap());
    let want: Vec<f64> = base_lp.iter().zip(&ladj).map(|(b, l)| b - l).collect();
    assert_close("stick-breaking log_prob", &lp, &want, 1e-12, 1e-12);
    assert!(d.cdf(&s).is_err());
    assert_eq!(d.expand(&[2, 5]).unwrap().sample(&mut rng(4), &[]).unwrap().dims(), &[2, 5, 4]);
}

#[test]
fn chains_expand_and_rsample() {
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    // y = 2 + exp(x) with x ~ N(0, 1): log_prob by hand.
    let d = TransformedDistribution::new(
        Normal::new(0.0, 1.0).unwrap().into_ref(),
        vec![Arc::new(ExpTransform), Arc::new(AffineTransform::new(2.0, 1.0).unwrap())],
    )
    .unwrap();
    let y = t64(&[2.5, 3.0, 10.0], &[3]);
    let lp = vec64(&d.log_prob(&y).unwrap());
    for (i, yv) in [2.5f64, 3.0, 10.0].iter().enumerate() {
        let x = (yv - 2.0).ln();
        let want = -0.5 * x * x - 0.5 * (2.0 * std::f64::consts::PI).ln() - x;
        assert!((lp[i] - want).abs() < 1e-14);
    }
    let e = d.expand(&[4]).unwrap();
    assert_eq!(e.batch_shape(), &[4]);
    assert_eq!(e.log_prob(&t64(&[3.0; 4], &[4])).unwrap().dims(), &[4]);

    // Gradients flow through rsample: d/dμ exp(μ + σε) = y.
    let mu = Var::new(0.3f64, &Device::Cpu).unwrap();
    let d = exp_of(Normal::new(mu.as_tensor(), 0.5).unwrap().into_ref());
    assert!(d.has_rsample());
    let y = d.rsample(&mut rng(5), &[6]).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let want: f64 = vec64(&y).iter().sum();
    assert!((vec64(g.get(&mu).unwrap())[0] - want).abs() < 1e-12);

    // Too few base dims for a vector transform is an error.
    let err = TransformedDistribution::new(Normal::new(0.0, 1.0).unwrap().into_ref(), vec![Arc::new(StickBreakingTransform)]).unwrap_err().to_string();
    assert!(err.contains("TransformedDistribution") && err.contains("rank >= 1"), "{err}");
    // No transforms: the base distribution itself.
    let id = TransformedDistribution::new(Normal::new(0.0, 1.0).unwrap().into_ref(), vec![]).unwrap();
    assert_eq!(id.support(), Constraint::Real);
    assert_close("identity", &vec64(&id.log_prob(&t64(&[0.0], &[1])).unwrap()), &[-0.918_938_533_204_672_8], 1e-15, 0.0);
}
