//! The linear layer: `x @ weight + bias` with `weight` stored `[in, out]`, as one custom op on
//! the CPU (bias fused into the product; a backward that computes the input's gradient only
//! when the input needs one) and as composed Candle ops on other devices.

use crate::dist::kernels::cpu_kernels;
use crate::error::{Error, Result};
use crate::nn::cpu::{self, Elem};
use crate::nn::init;
use crate::primitives::{ParamOptions, param_with};
use crate::site::ParamInit;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor};

/// `x @ weight + bias` over the last dim of `x` (any leading dims), with `weight` of shape
/// `[in, out]` and `bias` of shape `[out]`.
///
/// On the CPU (f32/f64) this is one custom op: the bias is added to the product's rows, and the
/// backward pass computes `weight`'s gradient (`xᵀ g`), `bias`'s (column sums of `g`, a row loop)
/// and `x`'s (`g weightᵀ`) only for the operands that carry a gradient — never for data. On other
/// devices (or with `PPL_GENERIC_KERNELS=1`) it is `x.matmul(weight) + bias` in Candle ops.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
/// let w = Tensor::new(&[[1f32, 0.0, 1.0], [0.0, 1.0, 1.0]], &Device::Cpu)?;
/// let b = Tensor::new(&[0.5f32, 0.5, 0.5], &Device::Cpu)?;
/// let y = ppl_runtime::nn::linear(&x, &w, Some(&b))?;
/// assert_eq!(y.to_vec2::<f32>()?, vec![vec![1.5, 2.5, 3.5]]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (x2, lead, n) = check(x, weight, bias)?;
    let y = if cpu_kernels(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64) {
        let (x2, w) = (x2.contiguous()?, weight.contiguous()?);
        match bias {
            Some(b) => x2.apply_op3(&w, &b.contiguous()?, LinearOp)?,
            None => x2.apply_op2(&w, LinearOp)?,
        }
    } else {
        linear_generic_2d(&x2, weight, bias)?
    };
    let mut shape = lead;
    shape.push(n);
    Ok(y.reshape(shape)?)
}

/// [`linear`] as composed Candle ops (the path CUDA and Metal take), for any device.
pub fn linear_generic(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (x2, mut lead, n) = check(x, weight, bias)?;
    lead.push(n);
    Ok(linear_generic_2d(&x2, weight, bias)?.reshape(lead)?)
}

fn linear_generic_2d(x2: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x2.matmul(weight)?;
    Ok(match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// Checks the operands; returns `x` as a matrix `[m, in]`, its leading dims and `out`.
fn check(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Vec<usize>, usize)> {
    let (k, n) = match weight.dims() {
        &[k, n] => (k, n),
        d => return Err(Error::invalid_arg("linear", "weight", format!("must be a matrix `[in, out]`, got shape {d:?}"))),
    };
    let Some((&last, lead)) = x.dims().split_last() else {
        return Err(Error::invalid_arg("linear", "x", "must have at least one dim (the features), got a scalar"));
    };
    if last != k {
        return Err(Error::ShapeMismatch {
            context: "linear: the last dim of `x` must equal the first dim of `weight` ([in, out])".into(),
            expected: format!("[.., {k}]"),
            got: format!("{:?}", x.dims()),
            hint: None,
        });
    }
    let mut others = vec![("weight", weight)];
    if let Some(b) = bias {
        if b.dims() != [n] {
            return Err(Error::shape_mismatch("linear: `bias`", &[n], b.dims()));
        }
        others.push(("bias", b));
    }
    for (name, t) in others {
        if t.dtype() != x.dtype() {
            return Err(Error::DTypeMismatch {
                context: "linear".into(),
                a: "x".into(),
                a_dtype: x.dtype(),
                b: name.into(),
                b_dtype: t.dtype(),
            });
        }
        if !t.device().same_device(x.device()) {
            return Err(Error::DeviceMismatch {
                context: "linear".into(),
                a: format!("`x` is on {:?}", x.device()),
                b: format!("`{name}` is on {:?}", t.device()),
            });
        }
    }
    let m: usize = lead.iter().product();
    Ok((x.reshape((m, k))?, lead.to_vec(), n))
}

/// The CPU op: arguments `x [m, k]`, `w [k, n]` and optionally `b [n]`, all contiguous.
struct LinearOp;

impl LinearOp {
    fn fwd(&self, sx: &CpuStorage, lx: &Layout, sw: &CpuStorage, lw: &Layout, bias: Option<(&CpuStorage, &Layout)>) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = lx.shape().dims2()?;
        let (_, n) = lw.shape().dims2()?;
        let mut y = product(sx, lx, sw, lw, (m, k, n))?;
        if let Some((sb, lb)) = bias {
            match (&mut y, sb) {
                (CpuStorage::F32(y), CpuStorage::F32(_)) => add_rows(y, cpu::slice(sb, lb)?),
                (CpuStorage::F64(y), CpuStorage::F64(_)) => add_rows(y, cpu::slice(sb, lb)?),
                _ => candle_core::bail!("ppl linear: unsupported dtype"),
            }
        }
        Ok((y, Shape::from((m, n))))
    }
}

/// `x @ w` on CPU storage (Candle's gemm, or OpenBLAS with the `openblas` feature).
fn product(sx: &CpuStorage, lx: &Layout, sw: &CpuStorage, lw: &Layout, (m, k, n): (usize, usize, usize)) -> candle_core::Result<CpuStorage> {
    #[cfg(feature = "openblas")]
    {
        crate::nn::blas::matmul_storage(sx, lx, sw, lw, (m, k, n))
    }
    #[cfg(not(feature = "openblas"))]
    {
        Ok(match (sx, sw) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(cpu::matmul((cpu::slice(sx, lx)?, k, 1), (cpu::slice(sw, lw)?, n, 1), (m, k, n))),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(cpu::matmul((cpu::slice(sx, lx)?, k, 1), (cpu::slice(sw, lw)?, n, 1), (m, k, n))),
            _ => candle_core::bail!("ppl linear: unsupported dtype"),
        })
    }
}

/// `(g wᵀ, xᵀ g)`, each only when wanted, for contiguous CPU `x [m, k]`, `w [k, n]`, `g [m, n]`.
#[cfg(not(feature = "openblas"))]
fn products_bwd<T: Elem>(x: &Tensor, w: &Tensor, g: &Tensor, want_x: bool, want_w: bool) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
    let (m, k) = x.dims2()?;
    let n = w.dim(1)?;
    let gx = if want_x {
        let v = cpu::with_slice::<T, _>(g, |gs| cpu::with_slice::<T, _>(w, |ws| cpu::matmul((gs, n, 1), (ws, 1, n), (m, n, k))))??;
        Some(cpu::tensor(v, &[m, k])?)
    } else {
        None
    };
    let gw = if want_w {
        let v = cpu::with_slice::<T, _>(x, |xs| cpu::with_slice::<T, _>(g, |gs| cpu::matmul((xs, 1, k), (gs, n, 1), (k, m, n))))??;
        Some(cpu::tensor(v, &[k, n])?)
    } else {
        None
    };
    Ok((gx, gw))
}

fn add_rows<T: Elem>(y: &mut [T], b: &[T]) {
    for row in y.chunks_exact_mut(b.len()) {
        for (o, &v) in row.iter_mut().zip(b) {
            *o += v;
        }
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "ppl-linear"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd(s1, l1, s2, l2, Some((s3, l3)))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, gb] = linear_grads(x, w, Some(b), g)?;
        Ok((gx, gw, gb))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "ppl-linear"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd(s1, l1, s2, l2, None)
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, _] = linear_grads(x, w, None, g)?;
        Ok((gx, gw))
    }
}

/// Gradients of `x`, `w`, `b` given the output gradient `g [m, n]`, each only for an operand
/// that carries a gradient (`track_op`: a `Var` or something computed from one).
fn linear_grads(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Tensor) -> candle_core::Result<[Option<Tensor>; 3]> {
    let g = g.contiguous()?;
    let want_b = b.is_some_and(|b| b.track_op());
    let (want_x, want_w) = (x.track_op(), w.track_op());
    // Detached copies: the gradient computations must not record a graph of their own.
    let (x, w) = (x.detach(), w.detach());
    #[cfg(feature = "openblas")]
    let (gx, gw) = crate::nn::blas::linear_grads(&x, &w, &g, want_x, want_w)?;
    #[cfg(not(feature = "openblas"))]
    let (gx, gw) = match g.dtype() {
        DType::F32 => products_bwd::<f32>(&x, &w, &g, want_x, want_w)?,
        _ => products_bwd::<f64>(&x, &w, &g, want_x, want_w)?,
    };
    let gb = if want_b {
        let n = g.dim(1)?;
        Some(match g.dtype() {
            DType::F32 => cpu::tensor(cpu::with_slice::<f32, _>(&g, |v| cpu::col_sum(v, n))?, &[n])?,
            _ => cpu::tensor(cpu::with_slice::<f64, _>(&g, |v| cpu::col_sum(v, n))?, &[n])?,
        })
    } else {
        None
    };
    Ok([gx, gw, gb])
}

/// A fully connected layer `y = x @ weight + bias` whose parameters live in the current
/// [`ParamStore`](crate::params::ParamStore) as `{name}.weight` (`[in, out]`) and `{name}.bias`
/// (`[out]`), created on the first [`forward`](Linear::forward) with PyTorch's default
/// initialisation drawn from ppl's generator (so [`seed`](crate::handlers::seed) makes it
/// reproducible): `weight, bias ~ Uniform(-1/√in, 1/√in)` (Kaiming-uniform with `a = √5`).
///
/// Note the weight layout: `[in, out]`, the transpose of PyTorch's and candle-nn's `[out, in]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{ParamStore, handlers::seed, nn::Linear};
/// let store = ParamStore::new();
/// let fc = Linear::new("fc", 3, 2);
/// let x = Tensor::ones((4, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let y = store.scope(|| seed(0, || fc.forward(&x)))?;
/// assert_eq!(y.dims(), &[4, 2]);
/// assert_eq!(store.names(), vec!["fc.weight".to_string(), "fc.bias".to_string()]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    name: String,
    weight_name: String,
    bias_name: Option<String>,
    in_dim: usize,
    out_dim: usize,
}

impl Linear {
    /// A layer named `name` mapping `in_dim` features to `out_dim`, with a bias.
    pub fn new(name: impl Into<String>, in_dim: usize, out_dim: usize) -> Linear {
        let name = name.into();
        Linear { weight_name: format!("{name}.weight"), bias_name: Some(format!("{name}.bias")), name, in_dim, out_dim }
    }

    /// The same layer without a bias.
    pub fn without_bias(mut self) -> Linear {
        self.bias_name = None;
        self
    }

    /// The layer's name (the prefix of its parameters' names).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of input features.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Number of output features.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// The weight `[in, out]` and bias `[out]` from the current parameter store, created there
    /// (seeded) in `dtype` on `device` if missing.
    pub fn params(&self, dtype: DType, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
        let (i, o) = (self.in_dim, self.out_dim);
        let w = param_with(
            self.weight_name.as_str(),
            ParamInit::lazy(|| crate::runtime::with_rng(|rng| init::linear_weight(rng, i, o, dtype, device))),
            ParamOptions::default(),
        )?;
        if w.dims() != [i, o] {
            return Err(Error::shape_mismatch(format!("Linear `{}`: parameter `{}`", self.name, self.weight_name), &[i, o], w.dims()));
        }
        let b = match &self.bias_name {
            None => None,
            Some(bn) => {
                let b = param_with(
                    bn.as_str(),
                    ParamInit::lazy(|| crate::runtime::with_rng(|rng| init::linear_bias(rng, i, o, dtype, device))),
                    ParamOptions::default(),
                )?;
                if b.dims() != [o] {
                    return Err(Error::shape_mismatch(format!("Linear `{}`: parameter `{bn}`", self.name), &[o], b.dims()));
                }
                Some(b)
            }
        };
        Ok((w, b))
    }

    /// `x @ weight + bias` over the last dim of `x` (see [`linear`]); parameters are created in
    /// `x`'s dtype and on its device.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (w, b) = self.params(x.dtype(), x.device())?;
        linear(x, &w, b.as_ref()).map_err(|e| e.at_site(&self.name, None))
    }
}
