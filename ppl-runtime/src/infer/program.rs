//! [`Program`]: what inference runs as a model or a guide — any `Fn(&A) -> Result<R>`, or an
//! object such as an autoguide that behaves like one.
//!
//! Rust cannot implement `Fn` for a user type, so inference entry points take
//! `impl Program<A, Marker>`: closures and functions match through [`FnMarker`], and autoguides
//! implement `Program<A, AutoGuideMarker>` themselves. The marker is inferred; users never name it.
//!
//! ```
//! use ppl_runtime::infer::Program;
//! fn run_twice<A, M, P: Program<A, M>>(p: &P, a: &A) -> ppl_runtime::Result<()> {
//!     p.run(a)?;
//!     p.run(a).map(|_| ())
//! }
//! let model = |x: &f64| -> ppl_runtime::Result<f64> { Ok(x * 2.0) };
//! run_twice(&model, &1.0)?;
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

use crate::error::Result;
use std::marker::PhantomData;

/// A model or guide over arguments `A`.
pub trait Program<A: ?Sized, Marker> {
    /// What one run returns.
    type Output;
    /// Runs the program once under whatever handlers are installed.
    fn run(&self, args: &A) -> Result<Self::Output>;
}

/// Marker of the blanket implementation for `Fn(&A) -> Result<R>`.
pub struct FnMarker<R>(PhantomData<fn() -> R>);

/// Marker for autoguides and other program objects.
pub struct AutoGuideMarker;

impl<A: ?Sized, R, F> Program<A, FnMarker<R>> for F
where
    F: Fn(&A) -> Result<R>,
{
    type Output = R;
    fn run(&self, args: &A) -> Result<R> {
        self(args)
    }
}
