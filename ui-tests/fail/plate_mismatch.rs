//! Rule 5: the local latent `z` lies in plate `data` in the model but in `batch` in the guide.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    plate!("data", x.dim(0)?, |_| {
        let z = sample!("z", Normal::new(0.0, 1.0)?);
        sample!("x", Normal::new(&z, 1.0)?, obs = x);
        Ok(())
    })
}

#[guide(model = model)]
fn guide(x: &Tensor) -> Result<()> {
    plate!("batch", x.dim(0)?, |_| {
        sample!("z", Normal::new(0.0, 1.0)?);
        Ok(())
    })
}

fn main() {}
