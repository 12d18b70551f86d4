//! Malformed input: an unknown keyword argument; the message lists the allowed ones and
//! suggests a near spelling, in a `#[model]` and outside one.
use ppl::prelude::*;

#[model]
fn model(x: &Tensor) -> Result<()> {
    sample!("x", Normal::new(0.0, 1.0)?, observed = x);
    param!("s", 1.0, constrain = positive);
    Ok(())
}

fn helper(x: &Tensor) -> Result<()> {
    sample!("x", Normal::new(0.0, 1.0)?, ob = x);
    Ok(())
}

fn main() {}
