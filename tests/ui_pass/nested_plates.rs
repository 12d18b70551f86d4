//! Nested plates with every plate option, a sequential plate, masks, an enumerated model site
//! (needs no guide site), an auxiliary guide site (`infer =`, needs no model site) and the
//! other site kinds; the guide is checked against the model through all of them.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor, mask: &Tensor) -> Result<()> {
    let mu = sample!("mu", Normal::new(0.0, 10.0)?);
    let c = sample!("c", Bernoulli::new(0.3)?, enumerate = parallel);
    let _ = deterministic!("shifted", (&mu + 1.0)?);
    factor!("penalty", mu.sqr()?.neg()?);
    plate!("rows", x.dim(0)?, dim = -2, |_| {
        plate!("cols", x.dim(1)?, subsample_size = 2, |idx| {
            let xs = x.index_select(idx, 1)?;
            let z = sample!("z", Normal::new(&mu, 1.0)?);
            sample!("x", Normal::new(&z, 1.0)?, obs = &xs, mask = mask);
            Ok(())
        })
    })?;
    let steps = plate!("steps", 3, sequential, |i| {
        let s = sample!(format!("s_{i}"), Normal::new(0.0, 1.0)?);
        Ok(s)
    })?;
    let _ = (c, steps);
    Ok(())
}

#[guide(model = model)]
fn guide(x: &Tensor, _mask: &Tensor) -> Result<()> {
    let loc = param!("loc", 0.0);
    sample!("mu", Normal::new(&loc, 1.0)?);
    sample!("aux", Normal::new(0.0, 1.0)?, infer = ppl::InferConfig::new().auxiliary());
    plate!("cols", x.dim(1)?, |_| {
        plate!("rows", x.dim(0)?, |_| {
            sample!("z", Normal::new(0.0, 1.0)?);
            Ok(())
        })
    })
}

pub fn main() {
    let _: fn(&Tensor, &Tensor) -> Result<()> = model;
    let _: fn(&Tensor, &Tensor) -> Result<()> = guide;
}
