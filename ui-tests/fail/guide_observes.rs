//! Rule 3: a guide site with `obs =`; the error points at the `obs` keyword.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    sample!("x", Normal::new(&mu, 1.0)?, obs = x);
    Ok(())
}

#[guide(model = model)]
fn guide(x: &Tensor) -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?, obs = x);
    Ok(())
}

fn main() {}
