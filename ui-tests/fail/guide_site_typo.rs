//! Rules 1 and 2 with a typo: the model's `mu_global` is missing from the guide, and the
//! guide's `mu_globl` is not in the model; both errors suggest the other spelling.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    let mu = sample!("mu_global", Normal::new(0.0, 10.0)?);
    plate!("data", x.dim(0)?, |_| {
        sample!("x", Normal::new(&mu, 1.0)?, obs = x);
        Ok(())
    })
}

#[guide(model = model)]
fn guide(_x: &Tensor) -> Result<()> {
    let loc = param!("mu_loc", 0.0);
    let scale = param!("mu_scale", 1.0, constraint = positive);
    sample!("mu_globl", Normal::new(&loc, &scale)?);
    Ok(())
}

fn main() {}
