//! The fast paths of enumeration: an enumerated `Categorical`'s log-density read off its logits
//! (a broadcast view whose plate dims drop out of its factor) and the fused log-sum-exp kernel.
//! Both must leave the loss and every gradient — also those reaching the mixture weights
//! through the logits — as the closed form and the general path have them.

use crate::enumeration::{enumerated, estimate, log_normal, lse, take};
use ppl::dist::kernels::with_generic;
use ppl::prelude::*;
use ppl::{observe, plate, sample_with};

const X: [f64; 6] = [-2.5, -0.3, 0.4, 2.9, 3.3, 7.0];
const LOCS: [f64; 3] = [-2.0, 0.5, 3.0];
const SCALE: f64 = 1.3;

/// `-Σ_n log Σ_k w_k N(x_n | loc_k, σ)` with `w = p / Σ p`, by hand.
fn loss_by_hand(p: &[f64]) -> f64 {
    let total: f64 = p.iter().sum();
    -X.iter()
        .map(|&x| lse(&(0..3).map(|k| (p[k] / total).ln() + log_normal(x, LOCS[k], SCALE)).collect::<Vec<_>>()))
        .sum::<f64>()
}

/// The GMM's loss and gradient with respect to the unnormalized weights `p` (a `Var`),
/// optionally with an all-true mask on the assignment (which makes it take `log_prob`).
fn loss_and_grad(p: &[f64], masked: bool) -> Result<(f64, Vec<f64>)> {
    let dev = Device::Cpu;
    let pv = Var::new(p, &dev)?;
    let data = Tensor::new(&X, &dev)?;
    let locs = Tensor::new(&LOCS, &dev)?;
    let model = || -> Result<()> {
        plate("data", X.len(), |_| {
            let draw = || sample_with("z", Categorical::new(pv.as_tensor())?, enumerated());
            let z = if masked {
                let all = Tensor::ones(X.len(), DType::U8, &dev)?;
                handlers::mask(&all, draw)?
            } else {
                draw()?
            };
            observe("x", Normal::new(&take(&locs, &z)?, SCALE)?, &data).map(|_| ())
        })
    };
    let est = estimate(&mut TraceEnumElbo::new(), &model)?;
    assert_eq!(est.model_trace.get("z").expect("z").mask.is_some(), masked);
    let g: Vec<f64> = est.surrogate.backward()?.get(pv.as_tensor()).expect("gradient").to_vec1()?;
    Ok((est.loss, g))
}

/// The mixture weights reach the loss only through the enumerated site's log-density: its
/// value and gradient match the closed form and its central finite differences.
#[test]
fn enumerated_categorical_weights_get_the_exact_gradient() -> Result<()> {
    let p = [0.2, 0.5, 0.3];
    let (loss, g) = loss_and_grad(&p, false)?;
    let want = loss_by_hand(&p);
    assert!((loss - want).abs() < 1e-10 * want.abs(), "{loss} vs {want}");
    let h = 1e-6;
    for k in 0..3 {
        let (mut up, mut down) = (p, p);
        up[k] += h;
        down[k] -= h;
        let fd = (loss_by_hand(&up) - loss_by_hand(&down)) / (2.0 * h);
        assert!((g[k] - fd).abs() < 1e-6, "weight {k}: autodiff {} vs finite differences {fd}", g[k]);
    }
    Ok(())
}

/// A masked enumerated site takes the general `log_prob` path: the same loss and gradient.
#[test]
fn masked_assignment_takes_log_prob_and_agrees() -> Result<()> {
    let p = [0.6, 0.1, 0.3];
    let (fast, gf) = loss_and_grad(&p, false)?;
    let (general, gg) = loss_and_grad(&p, true)?;
    assert!((fast - general).abs() < 1e-10 * general.abs(), "{fast} vs {general}");
    assert!(gf.iter().zip(&gg).all(|(a, b)| (a - b).abs() < 1e-10), "{gf:?} vs {gg:?}");
    Ok(())
}

/// In f32, the fused log-sum-exp (CPU kernels) and the composed ops (the device-generic path)
/// give one loss and one gradient for the locations.
#[test]
fn fused_and_generic_paths_agree_in_f32() -> Result<()> {
    let run = || -> Result<(f64, Vec<f32>)> {
        let dev = Device::Cpu;
        let locs = Var::new(&[-2f32, 0.5, 3.0], &dev)?;
        let data = Tensor::new(&X, &dev)?.to_dtype(DType::F32)?;
        let w = Tensor::new(&[0.2f32, 0.5, 0.3], &dev)?;
        let model = || -> Result<()> {
            plate("data", X.len(), |_| {
                let z = sample_with("z", Categorical::new(&w)?, enumerated())?;
                observe("x", Normal::new(&take(locs.as_tensor(), &z)?, 1.3f32)?, &data).map(|_| ())
            })
        };
        let est = estimate(&mut TraceEnumElbo::new(), &model)?;
        Ok((est.loss, est.surrogate.backward()?.get(locs.as_tensor()).expect("gradient").to_vec1()?))
    };
    let (lf, gf) = run()?;
    let (lg, gg) = with_generic(run)?;
    assert!((lf - lg).abs() < 1e-5 * lg.abs(), "{lf} vs {lg}");
    assert!(gf.iter().zip(&gg).all(|(a, b)| (a - b).abs() < 1e-4 * b.abs().max(1.0)), "{gf:?} vs {gg:?}");
    Ok(())
}
