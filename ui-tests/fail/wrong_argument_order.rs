//! Malformed input: the distribution before the name; the error points at the name literal.
use ppl::prelude::*;

#[model]
fn model() -> Result<()> {
    sample!(Normal::new(0.0, 1.0)?, "z");
    Ok(())
}

fn main() {}
