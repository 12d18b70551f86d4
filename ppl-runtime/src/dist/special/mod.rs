//! Special functions on tensors, differentiable through Candle's autodiff.
//!
//! On the CPU each function maps a scalar routine (see [`scalar`]) over the storage in a Candle
//! `CustomOp1`/`CustomOp2` (5–10× faster than composing Candle ops) and builds its backward
//! from other differentiable ops; f32 tensors are computed in f64 and rounded. On other devices
//! (and on the CPU when [`kernels::force_generic`] is set) the same functions run as
//! compositions of Candle ops in the input's dtype (see [`generic`] for the algorithms and their
//! accuracy), with the CPU kernel's backward formula attached for first-order gradients.
//!
//! The regularized incomplete gamma and beta functions ([`gammainc`], [`gammaincc`],
//! [`betainc`]) are values only, for cdfs: they copy their arguments to the host, compute there
//! and copy the result back to the arguments' device (so they work on every device), returning
//! tensors detached from the graph.

mod generic;
pub mod scalar;

use crate::dist::args::broadcast_shapes;
use crate::dist::kernels;
use crate::error::{Error, Result};
use candle_core::backend::BackendStorage;
use candle_core::shape::Dim;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor};
use scalar::LN_SQRT_2PI;

/// A derivative `d/dx f(x)` built from `x` and `f(x)`.
type Grad1 = fn(&Tensor, &Tensor) -> Result<Tensor>;

/// A scalar function mapped elementwise, with a backward built from tensor ops.
struct Elementwise {
    name: &'static str,
    f: fn(f64) -> f64,
    /// `d/dx f(x)` given `x` and `f(x)`; `None` for functions without a gradient here (their
    /// backward is an error rather than a silent zero).
    grad: Option<Grad1>,
}

fn to_candle(e: Error) -> candle_core::Error {
    match e {
        Error::Candle(e) => *e,
        e => candle_core::Error::Msg(e.to_string()),
    }
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
            None => Err(candle_core::Error::BackwardNotSupported { op: self.name }),
            Some(g) => {
                let d = g(arg, res).map_err(to_candle)?;
                Ok(Some(grad_res.mul(&d)?))
            }
        }
    }
}

/// `f` elementwise: the CPU kernel where [`kernels::cpu_kernels`] says so, else `generic` (a
/// composition of Candle ops) with the same gradient formula `grad`.
fn apply(
    x: &Tensor,
    name: &'static str,
    f: fn(f64) -> f64,
    grad: Option<Grad1>,
    generic: fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if kernels::cpu_kernels(x.device()) {
        Ok(x.apply_op1(Elementwise { name, f, grad })?)
    } else {
        generic::unary(name, x, generic, grad)
    }
}

/// Partial derivatives `(∂f/∂a, ∂f/∂b)` built from `a`, `b` and `f(a, b)`.
type Grad2 = fn(&Tensor, &Tensor, &Tensor) -> Result<(Tensor, Tensor)>;

/// A scalar function of two arguments mapped elementwise over same-shape tensors.
struct Elementwise2 {
    name: &'static str,
    f: fn(f64, f64) -> f64,
    grad: Grad2,
}

impl CustomOp2 for Elementwise2 {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::cpu_backend::binary_map;
        let f = self.f;
        let out = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                CpuStorage::F32(binary_map(l1, l2, a, b, |x, y| f(x as f64, y as f64) as f32))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(binary_map(l1, l2, a, b, f)),
            (a, b) => candle_core::bail!("`{}` needs two f32 or two f64 tensors, got {:?} and {:?}", self.name, a.dtype(), b.dtype()),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (da, db) = (self.grad)(a, b, res).map_err(to_candle)?;
        Ok((Some(grad_res.mul(&da)?), Some(grad_res.mul(&db)?)))
    }
}

/// Broadcasts `a` and `b` to their common shape, checking that dtypes agree; errors name `what`.
fn broadcast_pair(what: &str, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch {
            context: format!("`special::{what}`"),
            a: "first argument".into(),
            a_dtype: a.dtype(),
            b: "second argument".into(),
            b_dtype: b.dtype(),
        });
    }
    let shape = broadcast_shapes(a.dims(), b.dims())
        .ok_or_else(|| Error::shape_mismatch(format!("`special::{what}`: arguments do not broadcast"), a.dims(), b.dims()))?;
    let a = if a.dims() == shape.as_slice() { a.clone() } else { a.broadcast_as(shape.as_slice())? };
    let b = if b.dims() == shape.as_slice() { b.clone() } else { b.broadcast_as(shape.as_slice())? };
    Ok((a, b))
}

/// `log |Γ(x)|`.
pub fn lgamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "lgamma", scalar::lgamma, Some(|x, _| digamma(x)), generic::lgamma)
}

/// The digamma function `ψ(x) = d/dx log Γ(x)`.
pub fn digamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "digamma", scalar::digamma, Some(|x, _| trigamma(x)), generic::digamma)
}

/// The trigamma function `ψ₁(x) = d/dx ψ(x)`.
pub fn trigamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "trigamma", scalar::trigamma, Some(|x, _| tetragamma(x)), generic::trigamma)
}

/// The tetragamma function `ψ₂(x) = d/dx ψ₁(x)` (no gradient: differentiating it is an error,
/// raised by the backward pass on the CPU kernel and by this call on the generic path).
pub fn tetragamma(x: &Tensor) -> Result<Tensor> {
    apply(x, "tetragamma", scalar::tetragamma, None, generic::tetragamma)
}

/// Scalar trigamma (kept for callers of the earlier API; see [`scalar::trigamma`]).
pub fn trigamma_f64(x: f64) -> f64 {
    scalar::trigamma(x)
}

/// Scalar tetragamma (kept for callers of the earlier API; see [`scalar::tetragamma`]).
pub fn tetragamma_f64(x: f64) -> f64 {
    scalar::tetragamma(x)
}

/// `log |B(a, b)| = lgamma(a) + lgamma(b) - lgamma(a + b)`, broadcast, accurate for large
/// arguments; gradients `ψ(a) - ψ(a + b)` and `ψ(b) - ψ(a + b)`.
pub fn log_beta(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a, b) = broadcast_pair("log_beta", a, b)?;
    let grad: Grad2 = |a, b, _| {
        let dab = digamma(&(a + b)?)?;
        Ok(((digamma(a)? - &dab)?, (digamma(b)? - dab)?))
    };
    if kernels::cpu_kernels(a.device()) {
        Ok(a.apply_op2(&b, Elementwise2 { name: "log_beta", f: scalar::log_beta, grad })?)
    } else {
        generic::binary("log_beta", &a, &b, generic::log_beta, grad)
    }
}

/// The multivariate log-gamma `log Γ_p(x) = p(p-1)/4 · ln π + Σ_{j<p} lgamma(x - j/2)`
/// (torch's `mvlgamma`).
pub fn mvlgamma(x: &Tensor, p: usize) -> Result<Tensor> {
    let mut acc = x.affine(0.0, (p * p.saturating_sub(1)) as f64 / 4.0 * std::f64::consts::PI.ln())?;
    for j in 0..p {
        acc = (acc + lgamma(&x.affine(1.0, -(j as f64) / 2.0)?)?)?;
    }
    Ok(acc)
}

/// `log(1 + x)`, accurate for small `x`.
pub fn log1p(x: &Tensor) -> Result<Tensor> {
    apply(x, "log1p", libm::log1p, Some(|x, _| Ok(x.affine(1.0, 1.0)?.recip()?)), generic::log1p)
}

/// `exp(x) - 1`, accurate for small `x`.
pub fn expm1(x: &Tensor) -> Result<Tensor> {
    apply(x, "expm1", libm::expm1, Some(|_, y| Ok(y.affine(1.0, 1.0)?)), generic::expm1)
}

/// `log(1 + exp(x))`, without overflow; its gradient is `sigmoid(x)`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    apply(x, "softplus", scalar::softplus, Some(|x, _| Ok(candle_nn::ops::sigmoid(x)?)), generic::softplus)
}

/// `log sigmoid(x) = -softplus(-x)`.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(softplus(&x.neg()?)?.neg()?)
}

/// `logit(p) = log(p) - log(1 - p)`.
pub fn logit(p: &Tensor) -> Result<Tensor> {
    Ok((p.log()? - log1p(&p.neg()?)?)?)
}

/// `2/√π · exp(-x²)`, the derivative of `erf`.
fn erf_grad(x: &Tensor) -> Result<Tensor> {
    Ok(x.sqr()?.neg()?.exp()?.affine(std::f64::consts::FRAC_2_SQRT_PI, 0.0)?)
}

/// The error function (libm, accurate to a few ulp in f64; Candle's own `erf` off the CPU).
pub fn erf(x: &Tensor) -> Result<Tensor> {
    apply(x, "erf", scalar::erf, Some(|x, _| erf_grad(x)), |x| Ok(x.erf()?))
}

/// The complementary error function `1 - erf(x)`, accurate in the right tail (not `1 - erf`).
pub fn erfc(x: &Tensor) -> Result<Tensor> {
    apply(x, "erfc", scalar::erfc, Some(|x, _| Ok(erf_grad(x)?.neg()?)), generic::erfc)
}

/// The inverse error function on `(-1, 1)`; gradient `√π/2 · exp(erfinv(y)²)`.
pub fn erfinv(y: &Tensor) -> Result<Tensor> {
    let grad: Grad1 = |_, x| Ok(x.sqr()?.exp()?.affine(std::f64::consts::PI.sqrt() / 2.0, 0.0)?);
    apply(y, "erfinv", scalar::erfinv, Some(grad), generic::erfinv)
}

/// The standard normal density `exp(-x²/2) / √(2π)`.
fn normal_pdf(x: &Tensor) -> Result<Tensor> {
    Ok(x.sqr()?.affine(-0.5, -LN_SQRT_2PI)?.exp()?)
}

/// The standard normal cdf `Φ(x)`, accurate in the left tail.
pub fn ndtr(x: &Tensor) -> Result<Tensor> {
    apply(x, "ndtr", scalar::ndtr, Some(|x, _| normal_pdf(x)), generic::ndtr)
}

/// `log Φ(x)`, the standard normal log-cdf, finite down to `x ≈ -1e154`; gradient
/// `φ(x) / Φ(x)` computed as `exp(log φ(x) - log Φ(x))`.
pub fn log_ndtr(x: &Tensor) -> Result<Tensor> {
    let grad: Grad1 = |x, y| Ok((x.sqr()?.affine(-0.5, -LN_SQRT_2PI)? - y)?.exp()?);
    apply(x, "log_ndtr", scalar::log_ndtr, Some(grad), generic::log_ndtr)
}

/// The standard normal quantile `Φ⁻¹(p)` (scipy's `ndtri`); gradient `1 / φ(Φ⁻¹(p))`.
pub fn ndtri(p: &Tensor) -> Result<Tensor> {
    apply(p, "ndtri", scalar::ndtri, Some(|_, x| Ok(x.sqr()?.affine(0.5, LN_SQRT_2PI)?.exp()?)), generic::ndtri)
}

/// `e^{-|x|} I₀(x)`, the exponentially scaled modified Bessel function of order 0; gradient
/// `i1e(x) - sign(x) i0e(x)`.
pub fn i0e(x: &Tensor) -> Result<Tensor> {
    let grad: Grad1 = |x, y| Ok((i1e(x)? - sign(&x.detach())?.mul(y)?)?);
    apply(x, "i0e", scalar::i0e, Some(grad), generic::i0e)
}

/// `e^{-|x|} I₁(x)`, the exponentially scaled modified Bessel function of order 1.
pub fn i1e(x: &Tensor) -> Result<Tensor> {
    let grad: Grad1 = |x, _| apply(x, "i1e_grad", scalar::i1e_grad, None, generic::i1e_grad);
    apply(x, "i1e", scalar::i1e, Some(grad), generic::i1e)
}

/// The modified Bessel function `I₀(x)` (overflows past `|x| ≈ 713`; prefer [`log_i0`]).
pub fn i0(x: &Tensor) -> Result<Tensor> {
    Ok((i0e(x)? * x.abs()?.exp()?)?)
}

/// The modified Bessel function `I₁(x)` (overflows past `|x| ≈ 713`).
pub fn i1(x: &Tensor) -> Result<Tensor> {
    Ok((i1e(x)? * x.abs()?.exp()?)?)
}

/// `log I₀(x) = log i0e(x) + |x|`, finite for all finite `x` (for the von Mises normalizer).
pub fn log_i0(x: &Tensor) -> Result<Tensor> {
    Ok((i0e(x)?.log()? + x.abs()?)?)
}

/// `sign(x)` as -1, 0 or 1 (no gradient; pass detached tensors).
fn sign(x: &Tensor) -> Result<Tensor> {
    let f = |x| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { x };
    apply(x, "sign", f, None, |x| Ok(x.sign()?))
}

/// `x · log(y)`, and exactly 0 where `x == 0` (even for `y == 0`), broadcast.
///
/// Gradients: `∂/∂x = log y` everywhere it is finite — also at `x == 0`, where torch returns 0,
/// which is wrong for a parameter such as a concentration of exactly 1 in `(α - 1) · log y` — and
/// 0 where `x == 0` and `log y` is infinite; `∂/∂y = x / y`. No NaN leaks from the masked case.
pub fn xlogy(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    x_times(x, y, "xlogy", |y| Ok(y.log()?))
}

/// `x · log(1 + y)`, and exactly 0 where `x == 0`, broadcast (gradients as [`xlogy`]).
pub fn xlog1py(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    x_times(x, y, "xlog1py", log1p)
}

fn x_times(x: &Tensor, y: &Tensor, what: &str, f: fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let (x, y) = broadcast_pair(what, x, y)?;
    // Replace y by 1 only where x == 0 and f(y) is infinite: there the value must be 0 and
    // 0 · ∞ would be NaN (in the value and in the gradient). Elsewhere x · f(y) is exact.
    let infinite = f(&y.detach())?.abs()?.eq(f64::INFINITY)?;
    let masked = (x.detach().eq(0.0)? * infinite)?;
    let y_safe = masked.where_cond(&y.ones_like()?, &y)?;
    Ok((&x * f(&y_safe)?)?)
}

/// `atan(x)`, differentiable (Candle has no `atan`).
pub fn atan(x: &Tensor) -> Result<Tensor> {
    apply(x, "atan", f64::atan, Some(|x, _| Ok(x.sqr()?.affine(1.0, 1.0)?.recip()?)), generic::atan)
}

/// `tan(x)`, differentiable (Candle has no `tan`).
pub fn tan(x: &Tensor) -> Result<Tensor> {
    apply(x, "tan", f64::tan, Some(|_, y| Ok(y.sqr()?.affine(1.0, 1.0)?)), generic::tan)
}

/// `log Σ exp(x)` along `dim` (removed), safe for rows that are all `-inf`: those give `-inf`
/// with zero (not NaN) gradient, and do not poison other rows.
pub fn log_sum_exp<D: Dim>(x: &Tensor, dim: D) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "log_sum_exp")?;
    Ok(log_sum_exp_keepdim(x, dim)?.squeeze(dim)?)
}

/// [`log_sum_exp`] keeping `dim` with size 1.
pub fn log_sum_exp_keepdim<D: Dim>(x: &Tensor, dim: D) -> Result<Tensor> {
    let dim = dim.to_index(x.shape(), "log_sum_exp")?;
    // The shift is detached (the value does not depend on it) and zero where non-finite.
    let m = x.detach().max_keepdim(dim)?;
    let m = m.abs()?.lt(f64::INFINITY)?.where_cond(&m, &m.zeros_like()?)?;
    let s = x.broadcast_sub(&m)?.exp()?.sum_keepdim(dim)?;
    let empty = s.eq(0.0)?;
    let s_safe = empty.where_cond(&s.ones_like()?, &s)?;
    let neg_inf = s.ones_like()?.affine(0.0, f64::NEG_INFINITY)?;
    Ok(empty.where_cond(&neg_inf, &s_safe.log()?)?.broadcast_add(&m)?)
}

/// `log(exp(a) + exp(b))`, broadcast; `-inf` (with zero gradient) when both are `-inf`.
pub fn logaddexp(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (a, b) = broadcast_pair("logaddexp", a, b)?;
    log_sum_exp(&Tensor::stack(&[a, b], 0)?, 0)
}

/// Maps a scalar function of `N` broadcast arguments on the host, returning a detached tensor
/// on the first argument's device (a round trip to the host off the CPU: device-generic).
fn host_map<const N: usize>(what: &str, args: [&Tensor; N], f: impl Fn([f64; N]) -> f64) -> Result<Tensor> {
    let dtype = args[0].dtype();
    let mut shape: Vec<usize> = vec![];
    for (i, a) in args.iter().enumerate() {
        if a.dtype() != dtype {
            return Err(Error::DTypeMismatch {
                context: format!("`special::{what}`"),
                a: "argument 0".into(),
                a_dtype: dtype,
                b: format!("argument {i}"),
                b_dtype: a.dtype(),
            });
        }
        shape = broadcast_shapes(&shape, a.dims())
            .ok_or_else(|| Error::shape_mismatch(format!("`special::{what}`: arguments do not broadcast"), &shape, a.dims()))?;
    }
    let cols = args
        .iter()
        .map(|a| {
            // To the host before the cast to f64 (Metal has no f64).
            let a = a.detach().broadcast_as(shape.as_slice())?.flatten_all()?.to_device(&Device::Cpu)?;
            Ok(a.to_dtype(DType::F64)?.to_vec1::<f64>()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let n: usize = shape.iter().product();
    let out: Vec<f64> = (0..n).map(|i| f(std::array::from_fn(|j| cols[j][i]))).collect();
    Ok(Tensor::from_vec(out, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(args[0].device())?)
}

/// The regularized lower incomplete gamma function `P(a, x)` (values only, no gradient).
pub fn gammainc(a: &Tensor, x: &Tensor) -> Result<Tensor> {
    host_map("gammainc", [a, x], |[a, x]| scalar::gammainc(a, x))
}

/// The regularized upper incomplete gamma function `Q(a, x) = 1 - P(a, x)` (values only).
pub fn gammaincc(a: &Tensor, x: &Tensor) -> Result<Tensor> {
    host_map("gammaincc", [a, x], |[a, x]| scalar::gammaincc(a, x))
}

/// The regularized incomplete beta function `I_x(a, b)` (values only, no gradient).
pub fn betainc(a: &Tensor, b: &Tensor, x: &Tensor) -> Result<Tensor> {
    host_map("betainc", [a, b, x], |[a, b, x]| scalar::betainc(a, b, x))
}
