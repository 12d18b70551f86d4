//! Rule 1: the model has a latent site (`sigma`) that the guide lacks; the error is on the
//! guide's `model = ..` and names the site, the model and the guide.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    let sigma = sample!("sigma", HalfNormal::new(1.0)?);
    plate!("data", x.dim(0)?, |_| {
        sample!("x", Normal::new(&mu, &sigma)?, obs = x);
        Ok(())
    })
}

#[guide(model = model)]
fn guide(_x: &Tensor) -> Result<()> {
    let loc = param!("mu_loc", 0.0);
    sample!("mu", Normal::new(&loc, 1.0)?);
    Ok(())
}

fn main() {}
