//! Rule 6: the same literal name twice in straight-line code; the error is at the second name,
//! with "first defined here" at the first. The function is still emitted, so its caller in
//! `main` gets no secondary error.
use ppl::prelude::*;

#[model]
fn model() -> Result<Tensor> {
    let a = sample!("z", Normal::new(0.0, 1.0)?);
    let b = sample!("z", Normal::new(&a, 1.0)?);
    Ok(b)
}

fn main() {
    let _ = model();
}
