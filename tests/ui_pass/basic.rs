//! A model, a guide checked against it, and a call of each as plain functions.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    plate!("data", x.dim(0)?, |_| {
        sample!("x", Normal::new(&mu, 1.0)?, obs = x);
        Ok(())
    })
}

#[guide(model = model)]
fn guide(_x: &Tensor) -> Result<()> {
    let loc = param!("mu_loc", 0.0);
    let scale = param!("mu_scale", 1.0, constraint = positive);
    sample!("mu", Normal::new(&loc, &scale)?);
    Ok(())
}

pub fn main() {
    let _: fn(&Tensor) -> Result<()> = model;
    let _: fn(&Tensor) -> Result<()> = guide;
}
