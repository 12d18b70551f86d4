//! Rule 4: `w` is a `sample!` site in the model but a `param!` site in the guide.
use ppl::prelude::*;

#[model]
fn model() -> Result<()> {
    sample!("w", Normal::new(0.0, 1.0)?);
    Ok(())
}

#[guide(model = model)]
fn guide() -> Result<()> {
    param!("w", 0.0);
    Ok(())
}

fn main() {}
