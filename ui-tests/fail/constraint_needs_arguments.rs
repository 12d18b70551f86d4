//! `constraint = interval` without its bounds.
use ppl::prelude::*;

#[model]
fn model() -> Result<()> {
    param!("p", 0.5, constraint = interval);
    Ok(())
}

fn main() {}
