//! Fused activations: one pass forward and one pass backward (a hand-written derivative that
//! reuses the forward's output where it can) on the CPU; composed Candle ops elsewhere.
//!
//! Gradients through the CPU kernels are first order (the backward pass is itself a kernel
//! without a backward), which is all SVI and NUTS need.

use crate::dist::kernels::cpu_kernels;
use crate::error::Result;
use crate::nn::cpu::{self, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Tensor};

/// An activation function, applied elementwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `max(x, 0)` (gradient 1 at 0, as Candle's `relu`).
    Relu,
    /// `log(1 + exp(x))`, computed without overflow.
    Softplus,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `x` for `x > 0`, `alpha · (exp(x) - 1)` otherwise.
    Elu(f64),
}

impl Activation {
    /// Applies the activation (the fused CPU kernel where it applies, composed Candle ops elsewhere).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            a => {
                if cpu_kernels(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64) {
                    Ok(x.apply_op1(ActOp(a))?)
                } else {
                    self.apply_generic(x)
                }
            }
        }
    }

    /// The activation as composed Candle ops (the path CUDA and Metal take), for any device.
    pub fn apply_generic(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Identity => x.clone(),
            Activation::Relu => x.relu()?,
            // max(x, 0) + log(1 + exp(-|x|)); Candle's relu' and abs' are 1 at 0, so the
            // gradient there is 1 - 1/2 = sigmoid(0).
            Activation::Softplus => (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?,
            Activation::Sigmoid => candle_nn::ops::sigmoid(x)?,
            Activation::Tanh => x.tanh()?,
            Activation::Elu(alpha) => x.elu(alpha)?,
        })
    }
}

/// `log(1 + exp(x))` (fused kernel on the CPU).
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Activation::Softplus.apply(x)
}

/// `max(x, 0)` (fused kernel on the CPU).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    Activation::Relu.apply(x)
}

/// `1 / (1 + exp(-x))` (fused kernel on the CPU).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Activation::Sigmoid.apply(x)
}

/// `tanh(x)` (fused kernel on the CPU).
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    Activation::Tanh.apply(x)
}

/// `x` for `x > 0`, `alpha · (exp(x) - 1)` otherwise (fused kernel on the CPU).
pub fn elu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    Activation::Elu(alpha).apply(x)
}

/// `f(x)` for one element.
#[inline(always)]
fn value<T: Elem>(a: Activation, x: T) -> T {
    match a {
        Activation::Identity => x,
        Activation::Relu => x.maxv(T::ZERO),
        Activation::Softplus => cpu::softplus(x),
        Activation::Sigmoid => cpu::sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Elu(alpha) => {
            if x > T::ZERO {
                x
            } else {
                T::c(alpha) * x.exp_m1()
            }
        }
    }
}

/// `f'(x)` for one element, given `x` and `y = f(x)`.
#[inline(always)]
fn derivative<T: Elem>(a: Activation, x: T, y: T) -> T {
    match a {
        Activation::Identity => T::ONE,
        Activation::Relu => {
            if x >= T::ZERO {
                T::ONE
            } else {
                T::ZERO
            }
        }
        Activation::Softplus => cpu::sigmoid(x),
        Activation::Sigmoid => y * (T::ONE - y),
        Activation::Tanh => T::ONE - y * y,
        Activation::Elu(alpha) => {
            if x > T::ZERO {
                T::ONE
            } else {
                y + T::c(alpha)
            }
        }
    }
}

fn map_fwd<T: Elem>(a: Activation, v: &[T], l: &Layout) -> Vec<T> {
    match l.contiguous_offsets() {
        Some((s, e)) => {
            let src = &v[s..e];
            let mut out = vec![T::ZERO; src.len()];
            cpu::par_rows(&mut out, 1, src.len(), |start, o| match a {
                // The hot activation of deep models gets its own loop, which vectorizes.
                Activation::Softplus => cpu::map_vec(o, &src[start..], cpu::softplus::<T>),
                _ => o.iter_mut().zip(&src[start..]).for_each(|(o, &x)| *o = value(a, x)),
            });
            out
        }
        None => candle_core::cpu_backend::unary_map(v, l, |x| value(a, x)),
    }
}

/// The forward kernel.
struct ActOp(Activation);

impl CustomOp1 for ActOp {
    fn name(&self) -> &'static str {
        "ppl-activation"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(map_fwd(self.0, v, l)),
            CpuStorage::F64(v) => CpuStorage::F64(map_fwd(self.0, v, l)),
            _ => candle_core::bail!("ppl activation: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (g, x, y) = (g.contiguous()?, x.contiguous()?, y.contiguous()?);
        Ok(Some(g.apply_op3_no_bwd(&x, &y, &ActGradOp(self.0))?))
    }
}

/// The backward kernel: `g · f'(x)` from `(g, x, y)`, all contiguous.
struct ActGradOp(Activation);

fn grad_map<T: Elem>(a: Activation, g: &[T], x: &[T], y: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; g.len()];
    cpu::par_rows(&mut out, 1, g.len(), |start, o| {
        let n = o.len();
        let (g, x, y) = (&g[start..start + n], &x[start..start + n], &y[start..start + n]);
        match a {
            Activation::Softplus => cpu::map2_vec(o, g, x, |g, x| g * cpu::sigmoid(x)),
            _ => (0..n).for_each(|i| o[i] = g[i] * derivative(a, x[i], y[i])),
        }
    });
    out
}

impl CustomOp3 for ActGradOp {
    fn name(&self) -> &'static str {
        "ppl-activation-grad"
    }
    fn cpu_fwd(&self, sg: &CpuStorage, lg: &Layout, sx: &CpuStorage, lx: &Layout, sy: &CpuStorage, ly: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match sg {
            CpuStorage::F32(_) => CpuStorage::F32(grad_map(self.0, cpu::slice(sg, lg)?, cpu::slice(sx, lx)?, cpu::slice(sy, ly)?)),
            CpuStorage::F64(_) => CpuStorage::F64(grad_map(self.0, cpu::slice(sg, lg)?, cpu::slice(sx, lx)?, cpu::slice(sy, ly)?)),
            _ => candle_core::bail!("ppl activation: unsupported dtype {:?}", sg.dtype()),
        };
        Ok((out, lg.shape().clone()))
    }
}
