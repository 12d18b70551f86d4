//! Malformed attribute: a misspelt argument of `#[guide]`, and `model =` on a `#[model]`.
use ppl::prelude::*;

#[model(model = other)]
fn model() -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    Ok(())
}

#[guide(modle = model)]
fn guide() -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    Ok(())
}

fn main() {}
