//! Guide-side enumeration in `TraceEnumElbo`: losses against exact expectations over the
//! guide's enumerated sites written out by hand, gradients against finite differences, an SVI
//! fit whose optimum is the exact posterior, and errors.

use super::enumeration::{enumerated, log_normal, lse, rows, take};
use ppl::infer::{Bound, Elbo, ElboEstimate, Program, config_enumerate};
use ppl::prelude::*;
use ppl::{InferConfig, observe, plate, sample, sample_with};

/// `log softmax(logits)`.
fn log_softmax(logits: &[f64]) -> Vec<f64> {
    let z = lse(logits);
    logits.iter().map(|l| l - z).collect()
}

fn estimate(model: Bound<'_>, guide: Bound<'_>) -> Result<ElboEstimate> {
    ParamStore::new().scope(|| TraceEnumElbo::new().estimate(model, guide))
}

fn close(got: f64, want: f64, rtol: f64) -> bool {
    (got - want).abs() <= rtol * want.abs().max(1.0)
}

const X: [f64; 4] = [-0.4, 1.3, 0.2, 2.1];
const PZ: [f64; 3] = [0.2, 0.5, 0.3];
const LOCS: [f64; 3] = [-1.0, 0.5, 2.0];

/// The negative ELBO of test 1 by hand: `−Σ_z q(z)[log p(z) + Σ_i log N(x_i | loc_z) − log q(z)]`.
fn global_loss(logits: &[f64]) -> f64 {
    let lq = log_softmax(logits);
    -(0..3)
        .map(|z| {
            let lik: f64 = X.iter().map(|&x| log_normal(x, LOCS[z], 1.0)).sum();
            lq[z].exp() * (PZ[z].ln() + lik - lq[z])
        })
        .sum::<f64>()
}

/// A global discrete `z` enumerated in the guide (learnable logits), observations in a plate:
/// the loss is the exact expectation, its gradient the finite difference of that expectation.
#[test]
fn global_guide_enumerated_site_loss_and_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let logits_v = [0.3, -0.2, 0.6];
    let logits = Var::new(&logits_v, &dev)?;
    let data = Tensor::new(&X, &dev)?;
    let model = || -> Result<()> {
        let z = sample("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?)?;
        let loc = take(&Tensor::new(&LOCS, &dev)?, &z)?;
        plate("data", 4, |_| observe("x", Normal::new(&loc, 1.0)?, &data).map(|_| ()))
    };
    let guide = || -> Result<()> { sample_with("z", Categorical::from_logits(logits.as_tensor())?, enumerated()).map(|_| ()) };
    let est = estimate(&model, &guide)?;
    let want = global_loss(&logits_v);
    assert!(close(est.loss, want, 1e-10), "{} vs {want}", est.loss);
    // The guide's values lie left of the data plate; the model sees all of them.
    assert_eq!(est.guide_trace.get("z").unwrap().infer.enum_dim, Some(-2));
    assert_eq!(est.model_trace.get("x").unwrap().log_prob()?.unwrap().dims(), &[3, 4]);
    let g: Vec<f64> = est.surrogate.backward()?.get(logits.as_tensor()).unwrap().to_vec1()?;
    let h = 1e-6;
    for k in 0..3 {
        let (mut up, mut down) = (logits_v, logits_v);
        up[k] += h;
        down[k] -= h;
        let fd = (global_loss(&up) - global_loss(&down)) / (2.0 * h);
        assert!((g[k] - fd).abs() < 1e-6, "d/dlogit[{k}]: {} vs {fd}", g[k]);
    }
    Ok(())
}

/// `z_i` enumerated in the guide inside the data plate, one distribution per element: the loss
/// is the sum over elements of per-element expectations (not an expectation of the sum under a
/// joint over all elements' values).
#[test]
fn guide_enumerated_site_inside_a_plate_is_averaged_per_element() -> Result<()> {
    let dev = Device::Cpu;
    let lg = [[0.1, 0.8, -0.5], [1.2, -0.3, 0.0], [-0.7, 0.2, 0.4], [0.0, 0.0, 2.0]];
    let logits = Var::new(&lg, &dev)?;
    let data = Tensor::new(&X, &dev)?;
    let model = || -> Result<()> {
        plate("data", 4, |_| {
            let z = sample("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?)?;
            observe("x", Normal::new(&take(&Tensor::new(&LOCS, &dev)?, &z)?, 1.0)?, &data).map(|_| ())
        })
    };
    let guide = || -> Result<()> {
        plate("data", 4, |_| sample_with("z", Categorical::from_logits(logits.as_tensor())?, enumerated()).map(|_| ()))
    };
    let est = estimate(&model, &guide)?;
    let mut want = 0.0;
    for (i, &x) in X.iter().enumerate() {
        let lq = log_softmax(&lg[i]);
        want -= (0..3).map(|z| lq[z].exp() * (PZ[z].ln() + log_normal(x, LOCS[z], 1.0) - lq[z])).sum::<f64>();
    }
    assert!(close(est.loss, want, 1e-10), "{} vs {want}", est.loss);
    // Per-element expectations: the gradient for element 0's logits involves x_0 only.
    let g: Vec<Vec<f64>> = est.surrogate.backward()?.get(logits.as_tensor()).unwrap().to_vec2()?;
    let elem0 = |l: &[f64]| {
        let lq = log_softmax(l);
        -(0..3).map(|z| lq[z].exp() * (PZ[z].ln() + log_normal(X[0], LOCS[z], 1.0) - lq[z])).sum::<f64>()
    };
    let h = 1e-6;
    for k in 0..3 {
        let (mut up, mut down) = (lg[0], lg[0]);
        up[k] += h;
        down[k] -= h;
        let fd = (elem0(&up) - elem0(&down)) / (2.0 * h);
        assert!((g[0][k] - fd).abs() < 1e-6, "{:?} vs {fd}", g[0]);
    }
    Ok(())
}

const T: [[f64; 2]; 2] = [[0.7, 0.3], [0.25, 0.75]];
const U: [[f64; 3]; 2] = [[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]];
const OFF: [f64; 2] = [-0.5, 0.4];

/// Guide-enumerated global `z`; in the model, `y` (global) depends on `z` and `u_i` (in the
/// plate) on `y`, both enumerated in the model, and `x_i` on `u_i` and `z`:
/// `−Σ_z q(z)[log p(z) + log Σ_y T[z][y] Π_i Σ_u U[y][u] N(x_i | loc_u + off_z) − log q(z)]`.
#[test]
fn model_enumerated_sites_are_summed_with_the_guide_variable_kept() -> Result<()> {
    let dev = Device::Cpu;
    let lz = [0.4, -0.1];
    let data = Tensor::new(&X, &dev)?;
    let model = || -> Result<()> {
        let z = sample("z", Categorical::new(&Tensor::new(&[0.35, 0.65], &dev)?)?)?;
        let y = sample_with("y", Categorical::new(&rows(&Tensor::new(&T, &dev)?, &z)?)?, enumerated())?;
        let off = take(&Tensor::new(&OFF, &dev)?, &z)?;
        plate("data", 4, |_| {
            let u = sample_with("u", Categorical::new(&rows(&Tensor::new(&U, &dev)?, &y)?)?, enumerated())?;
            let loc = take(&Tensor::new(&LOCS, &dev)?, &u)?.broadcast_add(&off)?;
            observe("x", Normal::new(&loc, 1.0)?, &data).map(|_| ())
        })
    };
    let guide = || -> Result<()> {
        sample_with("z", Categorical::from_logits(&Tensor::new(&lz, &dev)?)?, enumerated()).map(|_| ())
    };
    let est = estimate(&model, &guide)?;
    // The model's enumerated sites take dims left of the guide's.
    assert_eq!(est.model_trace.get("z").unwrap().infer.enum_dim, Some(-2));
    assert_eq!(est.model_trace.get("y").unwrap().infer.enum_dim, Some(-3));
    assert_eq!(est.model_trace.get("u").unwrap().infer.enum_dim, Some(-4));
    let lq = log_softmax(&lz);
    let pz = [0.35f64, 0.65];
    let mut elbo = 0.0;
    for z in 0..2 {
        let per_y: Vec<f64> = (0..2)
            .map(|y| {
                T[z][y].ln()
                    + X.iter()
                        .map(|&x| lse(&(0..3).map(|u| U[y][u].ln() + log_normal(x, LOCS[u] + OFF[z], 1.0)).collect::<Vec<_>>()))
                        .sum::<f64>()
            })
            .collect();
        elbo += lq[z].exp() * (pz[z].ln() + lse(&per_y) - lq[z]);
    }
    assert!(close(est.loss, -elbo, 1e-10), "{} vs {}", est.loss, -elbo);
    Ok(())
}

const P2: [[f64; 3]; 2] = [[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]];
const B: [[f64; 3]; 2] = [[0.2, -0.4, 0.9], [-1.0, 0.3, 0.5]];

/// A guide whose `z2_i` (in the plate) depends on the enumerated global `z1`, with a
/// reparameterized global `s` drawn first: every cost is averaged under the guide's marginal of
/// what it depends on (`log p(z1)` under `q(z1)`; `v_i | z1` under `q(z1)` with `z2_i` summed
/// out; `x_i | z2_i` under `q(z1) q(z2_i | z1)`). By hand, with `s` fixed by its draw:
/// `−[log N(s) − log q(s) + Σ_z1 q(z1)(log p(z1) − log q(z1) + Σ_i [log N(v_i | off_z1 + s) +
/// Σ_z2 q(z2|z1)(log P2[z1][z2] + log N(x_i | loc_z2) − log q(z2|z1))])]`.
#[test]
#[allow(clippy::needless_range_loop)] // the indices mirror the formula
fn guide_dependence_between_enumerated_sites_is_marginalized() -> Result<()> {
    let dev = Device::Cpu;
    let l1 = [0.3, -0.6];
    let v = [0.1, -0.8, 0.5, 0.3];
    let (data, vdata) = (Tensor::new(&X, &dev)?, Tensor::new(&v, &dev)?);
    let model = || -> Result<()> {
        let s = sample("s", Normal::new(&Tensor::new(0f64, &dev)?, 1.0)?)?;
        let z1 = sample("z1", Categorical::new(&Tensor::new(&[0.45, 0.55], &dev)?)?)?;
        let off = take(&Tensor::new(&OFF, &dev)?, &z1)?.broadcast_add(&s)?;
        plate("data", 4, |_| {
            let z2 = sample("z2", Categorical::new(&rows(&Tensor::new(&P2, &dev)?, &z1)?)?)?;
            observe("v", Normal::new(&off, 1.0)?, &vdata)?;
            observe("x", Normal::new(&take(&Tensor::new(&LOCS, &dev)?, &z2)?, 1.0)?, &data).map(|_| ())
        })
    };
    let guide = || -> Result<()> {
        sample("s", Normal::new(&Tensor::new(0.2f64, &dev)?, 0.5)?)?;
        let z1 = sample("z1", Categorical::from_logits(&Tensor::new(&l1, &dev)?)?)?;
        let b = rows(&Tensor::new(&B, &dev)?, &z1)?;
        plate("data", 4, |_| sample("z2", Categorical::from_logits(&b)?).map(|_| ()))
    };
    let enumerated_guide = config_enumerate(|_: &()| guide());
    let est = estimate(&model, &|| enumerated_guide.run(&()))?;
    let s: f64 = est.guide_trace.value("s")?.to_scalar()?;
    let lq1 = log_softmax(&l1);
    let p1 = [0.45f64, 0.55];
    let mut elbo = log_normal(s, 0.0, 1.0) - log_normal(s, 0.2, 0.5);
    for z1 in 0..2 {
        let lq2 = log_softmax(&B[z1]);
        let mut inner = p1[z1].ln() - lq1[z1];
        for i in 0..4 {
            inner += log_normal(v[i], OFF[z1] + s, 1.0);
            inner += (0..3).map(|z2| lq2[z2].exp() * (P2[z1][z2].ln() + log_normal(X[i], LOCS[z2], 1.0) - lq2[z2])).sum::<f64>();
        }
        elbo += lq1[z1].exp() * inner;
    }
    assert!(close(est.loss, -elbo, 1e-10), "{} vs {}", est.loss, -elbo);
    Ok(())
}

/// SVI with a guide-enumerated `z`: the ELBO is `log p(x) − KL(q ‖ p(z | x))` exactly (no
/// Monte Carlo noise), so its optimum is the exact posterior and the loss there is `−log p(x)`.
#[test]
fn svi_with_guide_enumeration_recovers_the_exact_posterior() -> Result<()> {
    let data = Tensor::new(&[0.3f64, -0.2, 0.9], &Device::Cpu)?;
    let model = |x: &Tensor| -> Result<()> {
        let z = sample("z", Categorical::new(&Tensor::new(&PZ, x.device())?)?)?;
        let loc = take(&Tensor::new(&LOCS, x.device())?, &z)?;
        plate("data", 3, |_| observe("x", Normal::new(&loc, 1.0)?, x).map(|_| ()))
    };
    let guide = |x: &Tensor| -> Result<()> {
        let logits = ppl::param("logits", Tensor::zeros(3, DType::F64, x.device())?)?;
        sample("z", Categorical::from_logits(&logits)?).map(|_| ())
    };
    let mut svi = Svi::new(model, config_enumerate(guide), Adam::new(0.1), TraceEnumElbo::new()).seed(0);
    let losses = svi.run(&data, 400)?;
    let joint: Vec<f64> = (0..3).map(|z| PZ[z].ln() + [0.3, -0.2, 0.9].iter().map(|&x| log_normal(x, LOCS[z], 1.0)).sum::<f64>()).collect();
    let log_px = lse(&joint);
    let post: Vec<f64> = joint.iter().map(|j| (j - log_px).exp()).collect();
    let logits: Vec<f64> = svi.params().get("logits")?.unwrap().to_vec1()?;
    let q: Vec<f64> = log_softmax(&logits).iter().map(|l| l.exp()).collect();
    for k in 0..3 {
        assert!((q[k] - post[k]).abs() < 2e-3, "q {q:?} vs posterior {post:?}");
    }
    let last = *losses.last().unwrap();
    assert!((last + log_px).abs() < 1e-4, "loss {last} vs -log p(x) {}", -log_px);
    // The first loss (uniform q) is strictly worse: the fit did something.
    assert!(losses[0] > last + 1e-2, "{} vs {last}", losses[0]);
    Ok(())
}

/// A guide-enumerated site the model lacks is an error naming it; so is a model-enumerated site
/// outside a plate whose sum would couple a guide-enumerated site inside it.
#[test]
fn guide_enumeration_errors_name_the_site() -> Result<()> {
    let dev = Device::Cpu;
    let data = Tensor::new(&X, &dev)?;
    let model = || -> Result<()> {
        let z = sample("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?)?;
        plate("data", 4, |_| observe("x", Normal::new(&take(&Tensor::new(&LOCS, &dev)?, &z)?, 1.0)?, &data).map(|_| ()))
    };
    let guide = || -> Result<()> {
        sample_with("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?, enumerated())?;
        sample_with("w", Categorical::new(&Tensor::new(&PZ, &dev)?)?, enumerated()).map(|_| ())
    };
    let e = estimate(&model, &guide).unwrap_err().to_string();
    assert!(e.contains("`w`") && e.contains("the model has no site of that name"), "{e}");

    let coupled = || -> Result<()> {
        let y = sample_with("y", Categorical::new(&Tensor::new(&[0.5, 0.5], &dev)?)?, enumerated())?;
        plate("data", 4, |_| {
            let z = sample("z", Categorical::new(&rows(&Tensor::new(&P2, &dev)?, &y)?)?)?;
            observe("x", Normal::new(&take(&Tensor::new(&LOCS, &dev)?, &z)?, 1.0)?, &data).map(|_| ())
        })
    };
    let per_element = || -> Result<()> {
        plate("data", 4, |_| sample_with("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?, enumerated()).map(|_| ()))
    };
    let e = estimate(&coupled, &per_element).unwrap_err().to_string();
    assert!(e.contains("`y` (plates [])") && e.contains("`z`") && e.contains("plates [data]"), "{e}");
    Ok(())
}

/// With the data plate subsampled (2 of 4, explicit indices), the guide-enumerated loss
/// averaged over all six subsets equals the full-data loss exactly: each element lies in 3 of
/// the 6 subsets and counts 4/2 times in each, model and guide terms alike, while the global
/// `z1` counts once in every subset. One subset alone is not the full value.
#[test]
fn subsampled_guide_enumerated_loss_is_unbiased() -> Result<()> {
    let dev = Device::Cpu;
    let data = Tensor::new(&X, &dev)?;
    let run = |subsample: Option<Vec<u32>>| -> Result<f64> {
        let opts = || -> Result<PlateOptions> {
            Ok(PlateOptions { subsample: subsample.as_ref().map(|s| Tensor::new(s.as_slice(), &dev)).transpose()?, ..Default::default() })
        };
        let model = || -> Result<()> {
            let z1 = sample("z1", Categorical::new(&Tensor::new(&[0.45, 0.55], &dev)?)?)?;
            let off = take(&Tensor::new(&OFF, &dev)?, &z1)?;
            ppl::plate_with("data", 4, opts()?, |idx| {
                let z2 = sample("z2", Categorical::new(&rows(&Tensor::new(&P2, &dev)?, &z1)?)?)?;
                let loc = take(&Tensor::new(&LOCS, &dev)?, &z2)?.broadcast_add(&off)?;
                observe("x", Normal::new(&loc, 1.0)?, &data.index_select(idx, 0)?).map(|_| ())
            })
        };
        let guide = || -> Result<()> {
            let z1 = sample_with("z1", Categorical::from_logits(&Tensor::new(&[0.3, -0.6], &dev)?)?, enumerated())?;
            let b = rows(&Tensor::new(&B, &dev)?, &z1)?;
            ppl::plate_with("data", 4, opts()?, |_| sample_with("z2", Categorical::from_logits(&b)?, enumerated()).map(|_| ()))
        };
        Ok(estimate(&model, &guide)?.loss)
    };
    let full = run(None)?;
    let mut total = 0.0;
    let mut count = 0;
    for a in 0..4u32 {
        for b in a + 1..4 {
            total += run(Some(vec![a, b]))?;
            count += 1;
        }
    }
    let mean = total / count as f64;
    assert!(close(mean, full, 1e-10), "mean over subsets {mean} vs full {full}");
    assert!((run(Some(vec![0, 1]))? - full).abs() > 0.1);
    Ok(())
}

/// A guide site drawn without reparameterization that depends on a guide-enumerated site would
/// need a score-function term per enumerated value: an error naming both sites.
#[test]
fn non_reparameterized_site_after_a_guide_enumerated_one_is_an_error() -> Result<()> {
    let dev = Device::Cpu;
    let model = || -> Result<()> {
        let z = sample("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?)?;
        let w = sample("w", Normal::new(&Tensor::new(0f64, &dev)?, 1.0)?)?;
        observe("x", Normal::new(&take(&Tensor::new(&LOCS, &dev)?, &z)?.broadcast_add(&w)?, 1.0)?, &Tensor::new(0.5f64, &dev)?)
            .map(|_| ())
    };
    let guide = || -> Result<()> {
        let z = sample_with("z", Categorical::new(&Tensor::new(&PZ, &dev)?)?, enumerated())?;
        let opts = SampleOptions::new().infer(InferConfig::new().reparameterize(false));
        sample_with("w", Normal::new(&take(&Tensor::new(&LOCS, &dev)?, &z)?, 1.0)?, opts).map(|_| ())
    };
    let e = estimate(&model, &guide).unwrap_err().to_string();
    assert!(e.contains("`w`") && e.contains("`z`") && e.contains("without reparameterization"), "{e}");
    Ok(())
}
