//! The fast paths of per-step checks (issue 11's VAE overhead): vectorized finiteness and support
//! folds, validation of broadcast parameters through their distinct elements only, and the
//! gradient check of `Svi` on large gradients. Each is compared with an element-by-element
//! answer, with the bad element placed where a chunked or narrowed pass could miss it.

use ppl::dist::{Bernoulli, Distribution, Normal};
use ppl::infer::checks::all_finite;
use ppl::infer::{Svi, TraceElbo};
use ppl::optim::Adam;
use ppl::prelude::*;

/// Positions that exercise a vectorized fold: the first element, one inside the SIMD body and
/// the last ones (the scalar remainder).
fn positions(n: usize) -> Vec<usize> {
    let mut p = vec![0, n / 2, n - 1];
    if n > 2 {
        p.push(n - 2);
    }
    p
}

#[test]
fn finiteness_check_finds_every_bad_element() -> Result<()> {
    for n in [1usize, 7, 8, 9, 31, 33, 1000, 70_001] {
        for dtype in [DType::F32, DType::F64] {
            let ok = Tensor::arange(0u32, n as u32, &Device::Cpu)?.to_dtype(dtype)?;
            assert!(all_finite(&ok)?, "n={n} {dtype:?}: all finite");
            for &at in &positions(n) {
                for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                    let mut v: Vec<f64> = (0..n).map(|i| i as f64).collect();
                    v[at] = bad;
                    let t = Tensor::from_vec(v, n, &Device::Cpu)?.to_dtype(dtype)?;
                    assert!(!all_finite(&t)?, "n={n} {dtype:?}: {bad} at {at} missed");
                }
            }
        }
    }
    // f32 overflow of a finite f64 value is infinite, hence caught.
    assert!(!all_finite(&Tensor::new(&[1e39f64], &Device::Cpu)?.to_dtype(DType::F32)?)?);
    Ok(())
}

#[test]
fn broadcast_parameters_are_validated_through_their_distinct_elements() -> Result<()> {
    let dev = Device::Cpu;
    // A row broadcast down (stride 0 on dim 0): the bad element is in every row.
    let row = Tensor::new(&[1f32, -1.0], &dev)?.broadcast_as((3, 2))?;
    let e = Normal::new(0.0, &row).expect_err("scale -1 in a broadcast row").to_string();
    assert!(e.contains("Normal") && e.contains("scale") && e.contains("-1"), "{e}");
    // A column broadcast across (stride 0 on dim 1): the bad value only in the last row, which
    // narrowing the wrong dim would drop.
    let col = Tensor::new(&[[1f64], [2.0], [0.0]], &dev)?.broadcast_as((3, 4))?;
    let e = Normal::new(0.0, &col).expect_err("scale 0 in the last row").to_string();
    assert!(e.contains("scale") && e.contains("[2, 0]"), "{e}");
    // A scalar NaN broadcast to a vector, as loc (real, but it must be finite).
    let nan = Tensor::new(f32::NAN, &dev)?.broadcast_as(5)?;
    let e = Normal::new(&nan, 1.0).expect_err("NaN loc").to_string();
    assert!(e.contains("loc") && e.contains("NaN"), "{e}");
    // Valid broadcasts pass, and the distribution keeps the broadcast shape.
    let good = Tensor::new(&[0.5f32, 2.0], &dev)?.broadcast_as((3, 2))?;
    let d = Normal::new(0.0, &good)?;
    assert_eq!(d.batch_shape(), &[3, 2]);
    let lp = d.log_prob(&Tensor::zeros((3, 2), DType::F32, &dev)?)?.to_vec2::<f32>()?;
    let want = |s: f32| -(s.ln()) - 0.5 * (2.0 * std::f32::consts::PI).ln();
    assert!((lp[2][0] - want(0.5)).abs() < 1e-6 && (lp[1][1] - want(2.0)).abs() < 1e-6, "{lp:?}");
    Ok(())
}

#[test]
fn bernoulli_checks_find_a_bad_logit_or_value_at_the_end_of_a_long_tensor() -> Result<()> {
    let dev = Device::Cpu;
    let n = 1003;
    let mut logits = vec![0.25f32; n];
    logits[n - 1] = f32::INFINITY;
    let e = Bernoulli::from_logits(&Tensor::from_vec(logits, n, &dev)?).expect_err("inf logit").to_string();
    assert!(e.contains("logits") && e.contains("inf"), "{e}");
    let d = Bernoulli::from_logits(&Tensor::zeros(n, DType::F32, &dev)?)?;
    let mut x = vec![1f32; n];
    x[n - 2] = 2.0;
    let e = d.log_prob(&Tensor::from_vec(x, n, &dev)?).expect_err("value 2").to_string();
    assert!(e.contains("Bernoulli") && e.contains("[1001]"), "{e}");
    Ok(())
}

/// A gradient with one non-finite element among 5,000 (past any SIMD body, in the remainder)
/// stops the step, names it, and updates nothing.
#[test]
fn one_non_finite_gradient_element_in_a_large_parameter_stops_the_step() -> Result<()> {
    let _no_validation = ppl::defaults::set_validation(false);
    let n = 5_000;
    let model = move |_: &()| -> Result<()> {
        // log p = Σ sqrt(w): its gradient 1 / (2 sqrt(w)) is infinite where w = 0.
        let w = ppl::param("w", Tensor::ones(n, DType::F32, &Device::Cpu)?)?;
        let mask: Vec<f32> = (0..n).map(|i| if i == n - 3 { 0.0 } else { 1.0 }).collect();
        let w = w.mul(&Tensor::from_vec(mask, n, &Device::Cpu)?)?;
        ppl::factor("f", &w.sqrt()?.sum_all()?)
    };
    let guide = |_: &()| -> Result<()> { Ok(()) };
    let mut svi = Svi::new(model, guide, Adam::new(0.1), TraceElbo::default()).seed(0);
    let err = svi.step(&()).expect_err("an infinite gradient").to_string();
    assert!(err.contains("gradient") && err.contains("`w`"), "{err}");
    let w = svi.params().get("w")?.unwrap().to_vec1::<f32>()?;
    assert!(w.iter().all(|&x| x == 1.0), "parameters changed by a failed step");
    Ok(())
}
