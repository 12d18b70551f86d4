//! Malformed input: no site name.
use ppl::prelude::*;

#[model]
fn model() -> Result<()> {
    sample!(Normal::new(0.0, 1.0)?);
    Ok(())
}

fn main() {}
