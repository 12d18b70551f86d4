//! The linear layer's matrix products through the system OpenBLAS (cargo feature `openblas`;
//! Debian: `apt-get install libopenblas-dev`).

use crate::nn::cpu::{self, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Tensor};
use cblas_sys::{CBLAS_TRANSPOSE, CblasNoTrans, CblasRowMajor, CblasTrans, cblas_dgemm, cblas_sgemm};

#[link(name = "openblas")]
unsafe extern "C" {}

/// Row-major `c = op(a) @ op(b) (+ c if accumulate)` with `op(a)` of shape `[m, k]` and
/// `op(b)` `[k, n]`; `a`, `b` hold the untransposed row-major matrices.
trait Gemm: Elem {
    #[allow(clippy::too_many_arguments)]
    fn gemm(ta: bool, tb: bool, m: usize, n: usize, k: usize, a: &[Self], b: &[Self], c: &mut [Self]);
}

fn tr(t: bool) -> CBLAS_TRANSPOSE {
    if t { CblasTrans } else { CblasNoTrans }
}

macro_rules! impl_gemm {
    ($t:ty, $f:ident) => {
        impl Gemm for $t {
            fn gemm(ta: bool, tb: bool, m: usize, n: usize, k: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
                assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm operand sizes");
                let lda = if ta { m } else { k };
                let ldb = if tb { k } else { n };
                // SAFETY: the slices are at least as long as the row-major matrices cblas reads
                // and writes (checked above); cblas does not retain the pointers.
                unsafe {
                    $f(CblasRowMajor, tr(ta), tr(tb), m as i32, n as i32, k as i32, 1.0, a.as_ptr(), lda.max(1) as i32, b.as_ptr(), ldb.max(1) as i32, 0.0, c.as_mut_ptr(), n.max(1) as i32)
                }
            }
        }
    };
}
impl_gemm!(f32, cblas_sgemm);
impl_gemm!(f64, cblas_dgemm);

fn product<T: Gemm>(x: &[T], w: &[T], (m, k, n): (usize, usize, usize)) -> Vec<T> {
    let mut y = vec![T::ZERO; m * n];
    T::gemm(false, false, m, n, k, x, w, &mut y);
    y
}

/// `x @ w` for contiguous `x [m, k]` and `w [k, n]`.
pub(crate) fn matmul_storage(sx: &CpuStorage, lx: &Layout, sw: &CpuStorage, lw: &Layout, mkn: (usize, usize, usize)) -> candle_core::Result<CpuStorage> {
    Ok(match sx {
        CpuStorage::F32(_) => CpuStorage::F32(product(cpu::slice::<f32>(sx, lx)?, cpu::slice(sw, lw)?, mkn)),
        CpuStorage::F64(_) => CpuStorage::F64(product(cpu::slice::<f64>(sx, lx)?, cpu::slice(sw, lw)?, mkn)),
        s => candle_core::bail!("ppl linear: unsupported dtype {:?}", s.dtype()),
    })
}

fn grads_t<T: Gemm>(x: &Tensor, w: &Tensor, g: &Tensor, want_x: bool, want_w: bool) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
    let (m, k) = x.dims2()?;
    let n = w.dim(1)?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    cpu::with_slice::<T, _>(g, |g| {
        let gx = if want_x {
            cpu::with_slice::<T, _>(&w, |w| {
                let mut out = vec![T::ZERO; m * k];
                T::gemm(false, true, m, k, n, g, w, &mut out);
                cpu::tensor(out, &[m, k])
            })??
            .into()
        } else {
            None
        };
        let gw = if want_w {
            cpu::with_slice::<T, _>(&x, |x| {
                let mut out = vec![T::ZERO; k * n];
                T::gemm(true, false, k, n, m, x, g, &mut out);
                cpu::tensor(out, &[k, n])
            })??
            .into()
        } else {
            None
        };
        Ok((gx, gw))
    })?
}

/// `(g @ wᵀ, xᵀ @ g)`, each only if wanted.
pub(crate) fn linear_grads(x: &Tensor, w: &Tensor, g: &Tensor, want_x: bool, want_w: bool) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
    match g.dtype() {
        DType::F32 => grads_t::<f32>(x, w, g, want_x, want_w),
        _ => grads_t::<f64>(x, w, g, want_x, want_w),
    }
}
