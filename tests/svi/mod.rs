//! SVI: conjugate posteriors reached, ELBO estimators against exact values and finite
//! differences, model/guide checks, optimizers, predictive and importance sampling, checkpoints
//! and memory.

mod checks;
mod conjugate;
mod elbo;
mod optim;
mod predictive;
mod state;
mod trace_graph;

use ppl::prelude::*;

/// A scalar tensor as `f64`.
pub fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
}

/// The constrained value of parameter `name` as `f64`.
pub fn param_value<A: ?Sized>(svi: &Svi<A>, name: &str) -> f64 {
    scalar(&svi.params().get(name).unwrap().unwrap_or_else(|| panic!("no parameter `{name}`")))
}

/// Positive-constrained parameter options.
pub fn positive() -> ParamOptions {
    ParamOptions { constraint: Constraint::Positive, ..Default::default() }
}

/// Mean and standard error of a sample.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (v / n).sqrt())
}
