//! `#[guide(model = m)]` where `m` is not a `#[model]`: the error points at the path.
use ppl::prelude::*;

fn model() -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    Ok(())
}

#[guide(model = model)]
fn guide() -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    Ok(())
}

fn main() {}
