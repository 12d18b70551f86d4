//! A guide may come before its model in the file.
use ppl::prelude::*;

#[guide(model = model)]
fn guide() -> Result<()> {
    sample!("mu", Normal::new(0.0, 1.0)?);
    Ok(())
}

#[model]
fn model() -> Result<()> {
    sample!("mu", Normal::new(0.0, 10.0)?);
    Ok(())
}

pub fn main() {
    let _ = (guide, model);
}
