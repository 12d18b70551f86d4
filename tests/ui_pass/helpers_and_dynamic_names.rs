//! Sites in called helpers and under dynamic names are outside the compile-time check;
//! `helper_sites` declares the helper-provided names the other side has literally.
use ppl::prelude::*;

/// A plain helper: its sites are not in the caller's table.
fn prior(name: &str) -> Result<Tensor> {
    Ok(sample!(name.to_string(), Normal::new(0.0, 1.0)?))
}

/// Another model, called from the first one.
#[model]
fn sub_model() -> Result<Tensor> {
    Ok(sample!("inner", Normal::new(0.0, 1.0)?))
}

#[model(helper_sites = ["a", "inner"])]
fn model(n: usize) -> Result<()> {
    let a = prior("a")?;
    let _ = sub_model()?;
    for i in 0..n {
        sample!(format!("y_{i}"), Normal::new(&a, 1.0)?);
    }
    Ok(())
}

#[guide(model = model)]
fn guide(n: usize) -> Result<()> {
    sample!("a", Normal::new(0.0, 1.0)?);
    sample!("inner", Normal::new(0.0, 1.0)?);
    for i in 0..n {
        sample!(format!("y_{i}"), Normal::new(0.0, 1.0)?);
    }
    Ok(())
}

/// Here the guide, too, gets `a` from the helper.
#[guide(model = model)]
fn guide_with_helper(n: usize) -> Result<()> {
    let _ = prior("a")?;
    let _ = n;
    sample!("inner", Normal::new(0.0, 1.0)?);
    Ok(())
}

pub fn main() {
    let _ = (model, guide, guide_with_helper);
}
