//! A guide must not sample a site that the model observes.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    sample!("x", Normal::new(&mu, 1.0)?, obs = x);
    Ok(())
}

#[guide(model = model)]
fn guide(_x: &Tensor) -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    sample!("x", Normal::new(0.0, 1.0)?);
    Ok(())
}

fn main() {}
