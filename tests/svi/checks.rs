//! The first-step model/guide checks, each on a pair built to break it, and the provenance of a
//! non-finite step.

use super::positive;
use ppl::prelude::*;
use ppl::{InferConfig, model};

fn x() -> Tensor {
    Tensor::new(&[0.5f32, 1.5, 1.0], &Device::Cpu).unwrap()
}

/// The error of the first step of `model` with `guide`.
fn first_step_error<M, MM, G, GM>(model: M, guide: G) -> String
where
    M: ppl::infer::Program<Tensor, MM> + 'static,
    MM: 'static,
    G: ppl::infer::Program<Tensor, GM> + 'static,
    GM: 'static,
{
    let mut svi = Svi::new(model, guide, Adam::new(0.01), TraceElbo::default()).seed(0);
    match svi.step(&x()) {
        Ok(loss) => panic!("the step should fail, got loss {loss}"),
        Err(e) => e.to_string(),
    }
}

fn normal_guide(name: &'static str) -> impl Fn(&Tensor) -> Result<()> {
    move |_| {
        let loc = ppl::param(format!("{name}_loc"), 0.0)?;
        ppl::sample(name, Normal::new(&loc, 1.0)?).map(|_| ())
    }
}

#[test]
fn a_latent_missing_from_the_guide_is_named_even_with_a_dynamic_name() {
    let model = |x: &Tensor| -> Result<()> {
        for i in 0..3 {
            ppl::sample(format!("z_{i}"), Normal::new(0.0, 1.0)?)?;
        }
        ppl::plate("data", 3, |_| ppl::observe("x", Normal::new(0.0, 1.0)?, x).map(|_| ()))
    };
    let guide = |_: &Tensor| -> Result<()> {
        for i in 0..2 {
            ppl::sample(format!("z_{i}"), Normal::new(0.0, 1.0)?)?;
        }
        Ok(())
    };
    let msg = first_step_error(model, guide);
    assert!(msg.contains("`z_2`") && msg.contains("guide has no site"), "{msg}");
    assert!(msg.contains("`Normal` with batch shape []"), "says what the model has: {msg}");
}

#[test]
fn a_guide_site_absent_from_the_model_is_named_unless_auxiliary() -> Result<()> {
    let model = |x: &Tensor| -> Result<()> {
        let z = ppl::sample("z", Normal::new(0.0, 1.0)?)?;
        ppl::plate("data", 3, |_| ppl::observe("x", Normal::new(&z, 1.0)?, x).map(|_| ()))
    };
    let guide = |auxiliary: bool| {
        move |_: &Tensor| -> Result<()> {
            let infer = if auxiliary { InferConfig::new().auxiliary() } else { InferConfig::new() };
            let u = ppl::sample_with("u", Normal::new(0.0, 1.0)?, SampleOptions::new().infer(infer))?;
            let loc = ppl::param("loc", 0.0)?;
            ppl::sample("z", Normal::new(&(loc + u)?, 1.0)?).map(|_| ())
        }
    };
    let msg = first_step_error(model, guide(false));
    assert!(msg.contains("guide samples `u`") && msg.contains("model has no site"), "{msg}");
    assert!(msg.contains("auxiliary"), "hints at the fix: {msg}");
    let mut svi = Svi::new(model, guide(true), Adam::new(0.01), TraceElbo::default()).seed(0);
    assert!(svi.step(&x())?.is_finite());
    Ok(())
}

#[test]
fn a_guide_whose_support_exceeds_the_model_s_is_refused() {
    let model = |x: &Tensor| -> Result<()> {
        let s = ppl::sample("s", Gamma::new(2.0, 1.0)?)?;
        ppl::plate("data", 3, |_| ppl::observe("x", Normal::new(0.0, &s)?, x).map(|_| ()))
    };
    let msg = first_step_error(model, normal_guide("s"));
    assert!(msg.contains("site `s`"), "{msg}");
    assert!(msg.contains("`Normal` has support `real`") && msg.contains("`Gamma` has support `nonnegative`"), "{msg}");
}

#[test]
fn batch_shapes_that_disagree_under_the_same_plates_are_refused() {
    let model = |_: &Tensor| -> Result<()> {
        ppl::sample("z", Normal::new(&Tensor::zeros(3, DType::F32, &Device::Cpu)?, 1.0)?.to_event(1)?).map(|_| ())
    };
    let guide = |_: &Tensor| -> Result<()> {
        let loc = ppl::param("loc", Tensor::zeros(3, DType::F32, &Device::Cpu)?)?;
        ppl::sample("z", Normal::new(&loc, 1.0)?).map(|_| ())
    };
    let msg = first_step_error(model, guide);
    assert!(msg.contains("site `z`") && msg.contains("batch shapes disagree"), "{msg}");
    assert!(msg.contains("batch shape [] and event shape [3]") && msg.contains("batch shape [3] and event shape []"), "{msg}");
}

#[test]
fn a_guide_site_in_a_plate_the_model_lacks_is_refused() {
    let model = |x: &Tensor| -> Result<()> {
        let z = ppl::sample("z", Normal::new(0.0, 1.0)?)?;
        ppl::plate("data", 3, |_| ppl::observe("x", Normal::new(&z, 1.0)?, x).map(|_| ()))
    };
    let guide = |_: &Tensor| -> Result<()> {
        ppl::plate("extra", 1, |_| ppl::sample("z", Normal::new(0.0, 1.0)?).map(|_| ()))
    };
    let msg = first_step_error(model, guide);
    assert!(msg.contains("site `z`") && msg.contains("plate `extra`"), "{msg}");
}

#[test]
fn checks_can_be_switched_off() -> Result<()> {
    let model = |_: &Tensor| -> Result<()> { ppl::sample("z", Normal::new(0.0, 1.0)?).map(|_| ()) };
    let guide = |_: &Tensor| -> Result<()> {
        ppl::param("unused", 0.0)?;
        Ok(())
    };
    let mut svi = Svi::new(model, guide, Adam::new(0.01), TraceElbo::default()).seed(0).checks(false);
    svi.step(&x())?;
    Ok(())
}

#[model]
fn shifted_log(y: &Tensor) -> Result<()> {
    let z = sample!("z", Normal::new(0.0, 1.0)?);
    // log(z - 10) is NaN for every z < 10: the likelihood of `y` goes non-finite.
    let w = z.affine(1.0, -10.0)?.log()?;
    sample!("y", Normal::new(&w, 1.0)?, obs = y);
    Ok(())
}

fn source_line(needle: &str) -> usize {
    include_str!("checks.rs").lines().position(|l| l.contains(needle)).expect("needle in this file") + 1
}

#[test]
fn a_non_finite_loss_names_the_guilty_site_with_its_location_and_updates_nothing() -> Result<()> {
    let _no_validation = ppl::defaults::set_validation(false);
    let guide = |_: &Tensor| -> Result<()> {
        let loc = ppl::param("loc", 0.0)?;
        let scale = ppl::param_with("scale", 1.0, positive())?;
        ppl::sample("z", Normal::new(&loc, &scale)?).map(|_| ())
    };
    let y = Tensor::new(0.0f32, &Device::Cpu)?;
    let mut svi = Svi::new(shifted_log, guide, Adam::new(0.1), TraceElbo::default()).seed(0);
    let err = svi.step(&y).expect_err("the loss is NaN");
    let msg = err.to_string();
    let line = source_line("sample!(\"y\"");
    assert!(msg.starts_with("site `y` ("), "{msg}");
    assert!(msg.contains(&format!("checks.rs:{line}:")), "quotes the site's source line {line}: {msg}");
    assert!(msg.contains("svi step 1") && msg.contains("log-density of `y`") && msg.contains("NaN"), "{msg}");
    assert!(matches!(err.root(), Error::NonFiniteStep { step: 1, .. }));
    // Nothing was updated: the parameters keep their initial values.
    assert_eq!(svi.params().get("loc")?.unwrap().to_scalar::<f32>()?, 0.0);
    assert!((svi.params().get("scale")?.unwrap().to_scalar::<f32>()? - 1.0).abs() < 1e-6);
    Ok(())
}
