//! Malformed input: a positional argument after a keyword argument.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    sample!("x", obs = x, Normal::new(0.0, 1.0)?);
    Ok(())
}

fn main() {}
