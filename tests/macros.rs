//! Run-time behaviour of macro-expanded models: the sites they record, their static metadata,
//! source locations in errors, dynamic names, plates and the keyword arguments.

use ppl::handlers;
use ppl::prelude::*;
use ppl::{SiteKind, model};

fn t(v: f32) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

#[model]
fn simple(x: &Tensor) -> Result<Tensor> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    sample!("x", Normal::new(&mu, 1.0)?, obs = x);
    Ok(mu)
}

#[test]
fn model_records_literal_sites_with_metadata() -> Result<()> {
    let x = t(0.5);
    let (_, tr) = handlers::seed(0, || handlers::trace(|| simple(&x)))?;
    let mu = tr.get("mu").unwrap();
    assert_eq!(mu.kind, SiteKind::Sample);
    assert!(!mu.is_observed);
    let meta = mu.meta.expect("literal site has metadata");
    assert_eq!(meta.name, "mu");
    assert!(!meta.observed);
    assert!(tr.get("x").unwrap().meta.unwrap().observed);
    Ok(())
}
