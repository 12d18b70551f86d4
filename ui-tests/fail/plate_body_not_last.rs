//! Malformed input: the plate's body closure must come last, after the keyword arguments.
use ppl::prelude::*;

#[model]
fn model() -> Result<()> {
    plate!("data", 10, |_| Ok(()), subsample_size = 5)
}

fn main() {}
