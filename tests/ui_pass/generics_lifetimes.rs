//! The annotated function keeps its signature: generics, lifetimes, where clauses, doc
//! comments, attributes, visibility, and a user error type that converts from `ppl::Error`.
use ppl::prelude::*;

/// A documented generic model returning a borrowed input.
#[model]
#[inline]
pub fn model<'a, T>(x: &'a T, scale: f64) -> Result<&'a T>
where
    T: AsRef<Tensor> + ?Sized,
{
    let mu = sample!("mu", Normal::new(0.0, scale)?);
    sample!("x", Normal::new(&mu, 1.0)?, obs = x.as_ref());
    Ok(x)
}

/// A user error type: the site macros' `?` converts `ppl::Error` into it.
#[derive(Debug)]
pub enum MyError {
    /// From ppl.
    Ppl(ppl::Error),
}

impl From<ppl::Error> for MyError {
    fn from(e: ppl::Error) -> Self {
        MyError::Ppl(e)
    }
}

#[guide(model = model)]
pub(crate) fn guide<T: AsRef<Tensor> + ?Sized>(_x: &T, _scale: f64) -> std::result::Result<(), MyError> {
    let loc = param!("loc", || Ok(Tensor::new(0f32, &Device::Cpu)?));
    sample!("mu", Normal::new(&loc, 1.0)?);
    Ok(())
}

struct Wrapper(Tensor);
impl AsRef<Tensor> for Wrapper {
    fn as_ref(&self) -> &Tensor {
        &self.0
    }
}

pub fn main() {
    let _ = model::<Wrapper>;
    let _ = guide::<Tensor>;
}
