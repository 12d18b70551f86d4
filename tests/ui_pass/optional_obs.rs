//! `obs =` takes an `Option` (Pyro's `obs=None`): one model for fitting and prediction. The
//! guide need not have the site: the compile-time check counts it as observed.
use ppl::prelude::*;

#[model]
fn regression(x: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    let w = sample!("w", Normal::new(0.0, 1.0)?);
    plate!("data", x.dim(0)?, |_| Ok(sample!("y", Normal::new(&x.broadcast_mul(&w)?, 0.1)?, obs = y)))
}

#[guide(model = regression)]
fn regression_guide(_x: &Tensor, _y: Option<&Tensor>) -> Result<()> {
    let loc = param!("w_loc", 0.0);
    sample!("w", Normal::new(&loc, 0.1)?);
    Ok(())
}

#[model]
fn owned(y: Option<Tensor>, z: &Option<Tensor>) -> Result<()> {
    sample!("a", Normal::new(0.0, 1.0)?, obs = y);
    sample!("b", Normal::new(0.0, 1.0)?, obs = z);
    sample!("c", Normal::new(0.0, 1.0)?, obs = z.as_ref());
    Ok(())
}

#[guide(model = owned)]
fn owned_guide(_y: Option<Tensor>, _z: &Option<Tensor>) -> Result<()> {
    Ok(())
}

pub fn main() {
    let _: fn(&Tensor, Option<&Tensor>) -> Result<Tensor> = regression;
    let _: fn(&Tensor, Option<&Tensor>) -> Result<()> = regression_guide;
    let _ = (owned, owned_guide);
}
