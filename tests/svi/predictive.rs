//! Predictive sampling from a guide, in parallel, and from posterior samples; subsampled models.

use super::{mean_se, positive};
use ppl::prelude::*;
use std::collections::HashMap;

fn model(x: &Tensor) -> Result<()> {
    let mu = ppl::sample("mu", Normal::new(0.0, 2.0)?)?;
    ppl::deterministic("mu2", &(&mu * 2.0)?)?;
    ppl::plate("data", 6, |_| ppl::observe("x", Normal::new(&mu, 1.0)?, x).map(|_| ()))
}

fn guide(_: &Tensor) -> Result<()> {
    let loc = ppl::param("loc", 1.0)?;
    let scale = ppl::param_with("scale", 0.4, positive())?;
    ppl::sample("mu", Normal::new(&loc, &scale)?).map(|_| ())
}

fn data() -> Tensor {
    Tensor::new(&[0.8f32, 1.9, 1.2, 0.3, 1.5, 1.1], &Device::Cpu).unwrap()
}

fn column(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

#[test]
fn predictive_from_a_guide_sequential_and_parallel() -> Result<()> {
    let store = ParamStore::new();
    for parallel in [false, true] {
        let out = Predictive::from_guide(model, guide, &store, 2000).parallel(parallel).seed(3).run(&data())?;
        assert_eq!(out["mu"].dims(), &[2000], "parallel {parallel}");
        assert_eq!(out["mu2"].dims(), &[2000], "deterministic sites are included");
        assert_eq!(out["x"].dims(), &[2000, 6], "observed sites are predicted afresh");
        let (m, se) = mean_se(&column(&out["mu"]));
        assert!((m - 1.0).abs() < 4.0 * se, "guide mean 1: {m} ± {se}");
        let twice: Vec<f64> = column(&out["mu2"]);
        assert!(column(&out["mu"]).iter().zip(&twice).all(|(a, b)| (2.0 * a - b).abs() < 1e-5));
        // x = mu + N(0, 1): residuals have mean 0 and variance 1.
        let mu = out["mu"].unsqueeze(1)?.broadcast_as((2000, 6))?;
        let res = column(&(out["x"].clone() - mu)?);
        let (rm, rse) = mean_se(&res);
        assert!(rm.abs() < 4.0 * rse, "residual mean {rm} ± {rse}");
        let var = res.iter().map(|r| r * r).sum::<f64>() / res.len() as f64;
        // sd of a variance estimate from 12000 normals: √(2/12000) ≈ 0.013.
        assert!((var - 1.0).abs() < 0.06, "residual variance {var}");
    }
    let only = Predictive::from_guide(model, guide, &store, 10).return_sites(["x"]).seed(0).run(&data())?;
    assert_eq!(only.keys().collect::<Vec<_>>(), ["x"]);
    Ok(())
}

#[test]
fn predictive_from_posterior_samples_uses_each_row() -> Result<()> {
    let mu = Tensor::new(&[-5f32, 0.0, 5.0, 10.0], &Device::Cpu)?;
    let samples: HashMap<String, Tensor> = [("mu".to_string(), mu)].into();
    for parallel in [false, true] {
        let out = Predictive::from_samples(model, samples.clone())?.parallel(parallel).seed(1).run(&data())?;
        assert!(!out.contains_key("mu"), "sites given as samples are not returned by default");
        assert_eq!(out["x"].dims(), &[4, 6]);
        let twice = column(&out["mu2"]);
        assert_eq!(twice, [-10.0, 0.0, 10.0, 20.0], "parallel {parallel}");
        for (row, m) in [-5.0, 0.0, 5.0, 10.0].iter().enumerate() {
            let xs = column(&out["x"].get(row)?);
            let mean = xs.iter().sum::<f64>() / 6.0;
            // Six draws of N(m, 1): the mean is within 4/√6 of m.
            assert!((mean - m).abs() < 4.0 / 6f64.sqrt(), "row {row}: mean {mean} vs {m}");
        }
    }
    let bad: HashMap<String, Tensor> = [
        ("mu".to_string(), Tensor::zeros(3, DType::F32, &Device::Cpu)?),
        ("other".to_string(), Tensor::zeros(4, DType::F32, &Device::Cpu)?),
    ]
    .into();
    let err = Predictive::from_samples(model, bad).err().expect("inconsistent sample counts").to_string();
    assert!(err.contains("samples"), "{err}");
    Ok(())
}

/// A model with a local latent per data row, subsampled: the guide's locals must meet the
/// model's rows, and the subsampled ELBO must be unbiased for the full one.
fn local_model(subsample: Option<usize>) -> impl Fn(&Tensor) -> Result<()> + Clone {
    move |x: &Tensor| {
        let mu = ppl::sample("mu", Normal::new(0.0, 1.0)?)?;
        let opts = PlateOptions { subsample_size: subsample, ..Default::default() };
        ppl::plate_with("rows", 20, opts, |idx| {
            let z = ppl::sample("z", Normal::new(&mu, 1.0)?)?;
            ppl::observe("x", Normal::new(&z, 0.5)?, &x.index_select(idx, 0)?).map(|_| ())
        })
    }
}

fn local_guide(subsample: Option<usize>) -> impl Fn(&Tensor) -> Result<()> + Clone {
    move |x: &Tensor| {
        ppl::sample("mu", Normal::new(0.3, 0.5)?)?;
        let opts = PlateOptions { subsample_size: subsample, ..Default::default() };
        // The local guide centres each z on its own data row.
        ppl::plate_with("rows", 20, opts, |idx| ppl::sample("z", Normal::new(&x.index_select(idx, 0)?, 0.4)?).map(|_| ()))
    }
}

fn rows() -> Tensor {
    Tensor::arange(0f32, 20.0, &Device::Cpu).unwrap().affine(0.3, -3.0).unwrap()
}

#[test]
fn subsampled_guide_locals_meet_the_same_data_rows_in_the_model() -> Result<()> {
    let x = rows();
    let (m, g) = (local_model(Some(5)), local_guide(Some(5)));
    let mut elbo = TraceElbo::default();
    let est = handlers::seed(0, || ParamStore::new().scope(|| elbo.estimate(&|| m(&x), &|| g(&x))))?;
    let gi = column(est.guide_trace.value("rows")?);
    let mi = column(est.model_trace.value("rows")?);
    assert_eq!(gi, mi, "the model replays the guide's subsample");
    // The model observed exactly the rows the guide's locals were drawn for.
    let obs = column(est.model_trace.value("x")?);
    let want: Vec<f64> = gi.iter().map(|&i| 0.3 * i - 3.0).collect();
    assert!(obs.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "{obs:?} vs {want:?}");
    assert_eq!(est.model_trace.get("x").unwrap().scale, 4.0);
    Ok(())
}

#[test]
fn the_subsampled_elbo_is_unbiased_for_the_full_elbo() -> Result<()> {
    let x = rows();
    let estimates = |sub: Option<usize>, reps: usize, particles: usize| -> Result<Vec<f64>> {
        let elbo = TraceElbo::default().num_particles(particles).vectorize_particles(true);
        let mut svi = Svi::new(local_model(sub), local_guide(sub), Adam::new(0.01), elbo).seed(9);
        (0..reps).map(|_| svi.evaluate_loss(&x).map(|l| -l)).collect()
    };
    let (full, full_se) = mean_se(&estimates(None, 10, 400)?);
    let (sub, sub_se) = mean_se(&estimates(Some(5), 300, 20)?);
    let se = (full_se * full_se + sub_se * sub_se).sqrt();
    assert!((full - sub).abs() < 4.0 * se, "full ELBO {full} ± {full_se} vs subsampled {sub} ± {sub_se}");
    assert!(se < 0.05 * full.abs(), "the test is sharp: se {se} against ELBO {full}");
    Ok(())
}
