//! Rule 2: the guide samples a site (`tau`) that the model does not have.
use ppl::prelude::*;

#[model]
fn model() -> Result<()> {
    sample!("mu", Normal::new(0.0, 10.0)?);
    Ok(())
}

#[guide(model = model)]
fn guide() -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    sample!("tau", HalfNormal::new(1.0)?);
    Ok(())
}

fn main() {}
