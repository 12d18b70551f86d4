//! Not duplicates: one literal name in different arms of an `if`/`match` (at most one runs), and
//! literal names in loops and closures (not straight-line code; the runtime checks them).
use ppl::prelude::*;

#[model]
fn model(k: usize, flag: bool) -> Result<Tensor> {
    let z = if flag {
        sample!("z", Normal::new(0.0, 1.0)?)
    } else {
        sample!("z", Normal::new(1.0, 1.0)?)
    };
    let w = match k {
        0 => sample!("w", Normal::new(0.0, 1.0)?),
        1 => sample!("w", HalfNormal::new(1.0)?),
        _ => sample!("w", Normal::new(2.0, 1.0)?),
    };
    for _ in 0..1 {
        sample!("once", Normal::new(0.0, 1.0)?);
    }
    let f = || -> Result<Tensor> { Ok(sample!("once", Normal::new(0.0, 1.0)?)) };
    let _ = f;
    Ok((z + w)?)
}

#[guide(model = model)]
fn guide(_k: usize, flag: bool) -> Result<()> {
    if flag {
        sample!("z", Normal::new(0.0, 1.0)?);
    } else {
        sample!("z", Normal::new(0.5, 1.0)?);
    }
    sample!("w", Normal::new(0.0, 1.0)?);
    sample!("once", Normal::new(0.0, 1.0)?);
    Ok(())
}

pub fn main() {
    let _ = (model, guide);
}
