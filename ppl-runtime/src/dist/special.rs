//! Special functions on tensors, differentiable through Candle's autodiff.
//!
//! Each function maps a scalar routine over the storage in a Candle `CustomOp1` (5–10× faster
//! than composing Candle ops) and builds its backward from other differentiable ops.
//! Only the CPU has kernels; other devices get a clear error from Candle.

use crate::error::Result;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// A scalar function mapped elementwise, with a backward built from tensor ops.
struct Elementwise {
    name: &'static str,
    f: fn(f64) -> f64,
    /// `d/dx f(x)` given `x` and `f(x)`; `None` when the function is a leaf of the chain.
    grad: Option<fn(&Tensor, &Tensor) -> Result<Tensor>>,
}

impl CustomOp1 for Elementwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::cpu_backend::unary_map;
        let f = self.f;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(unary_map(v, layout, |x| f(x as f64) as f32)),
            CpuStorage::F64(v) => CpuStorage::F64(unary_map(v, layout, f)),
            s => candle_core::bail!("`{}` needs an f32 or f64 tensor, got {:?}", self.name, s.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        match self.grad {
            None => Ok(None),
            Some(g) => {
                let d = g(arg, res).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                Ok(Some(grad_res.mul(&d)?))
            }
        }
    }
}

fn apply(x: &Tensor, name: &'static str, f: fn(f64) -> f64, grad: Option<fn(&Tensor, &Tensor) -> Result<Tensor>>) -> Result<Tensor> {
    Ok(x.apply_op1(Elementwise { name, f, grad })?)
}

/// `log |Γ(x)|`.
pub fn lgamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "lgamma", |x| libm::lgamma_r(x).0, Some(|x, _| digamma(x)))
}

/// The digamma function `ψ(x) = d/dx log Γ(x)`.
pub fn digamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "digamma", statrs::function::gamma::digamma, Some(|x, _| trigamma(x)))
}

/// The trigamma function `ψ₁(x) = d/dx ψ(x)`.
pub fn trigamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "trigamma", trigamma_f64, Some(|x, _| apply(x, "tetragamma", tetragamma_f64, None)))
}

/// `log(1 + x)`, accurate for small `x`.
pub fn log1p(x: &Tensor) -> Result<Tensor> {
    apply(x, "log1p", libm::log1p, Some(|x, _| Ok(x.affine(1.0, 1.0)?.recip()?)))
}

/// `exp(x) - 1`, accurate for small `x`.
pub fn expm1(x: &Tensor) -> Result<Tensor> {
    apply(x, "expm1", libm::expm1, Some(|_, y| Ok(y.affine(1.0, 1.0)?)))
}

/// `log(1 + exp(x))`, computed stably as `max(x, 0) + log1p(exp(-|x|))`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + log1p(&x.abs()?.neg()?.exp()?)?)?)
}

/// Scalar trigamma: recurrence up to x ≥ 6, then the asymptotic series; reflection for x ≤ 0.
pub fn trigamma_f64(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        if x == x.floor() {
            return f64::INFINITY;
        }
        let s = (std::f64::consts::PI * x).sin();
        return -trigamma_f64(1.0 - x) + std::f64::consts::PI.powi(2) / (s * s);
    }
    let mut acc = 0.0;
    let mut x = x;
    while x < 6.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    acc + 1.0 / x + z / 2.0 + z / x * (1.0 / 6.0 - z * (1.0 / 30.0 - z * (1.0 / 42.0 - z / 30.0)))
}

/// Scalar tetragamma `ψ₂(x)` for x > 0 (recurrence, then asymptotic series).
pub fn tetragamma_f64(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut acc = 0.0;
    let mut x = x;
    while x < 6.0 {
        acc -= 2.0 / (x * x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    // ψ₂(x) ~ -1/x² - 1/x³ - 1/(2x⁴) + 1/(6x⁶) - 1/(6x⁸) + 3/(10x¹⁰) - 5/(6x¹²)
    acc - z - z / x - z * z / 2.0 + z.powi(3) / 6.0 - z.powi(4) / 6.0 + 0.3 * z.powi(5) - 5.0 / 6.0 * z.powi(6)
}
