//! Where ppl's hand-written CPU kernels (custom ops) apply, and the switch that turns them off.
//!
//! Every custom op has a device-generic path, a composition of Candle ops, used for tensors on
//! CUDA or Metal. Setting the environment variable `PPL_GENERIC_KERNELS=1` forces that generic
//! path on the CPU too, so that CI tests the code that GPUs run; [`with_generic`] does the same
//! for one closure on the current thread (for tests that compare both paths in one run).

use candle_core::{Device, Tensor};
use std::cell::Cell;
use std::sync::OnceLock;

/// The environment variable that forces the device-generic path on the CPU (`1` or `true`).
pub const GENERIC_KERNELS_ENV: &str = "PPL_GENERIC_KERNELS";

thread_local! {
    /// Set by [`with_generic`] for the duration of its closure.
    static SCOPED_GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// Whether the device-generic path is forced on the CPU: by `PPL_GENERIC_KERNELS` (read once)
/// or, on this thread, inside [`with_generic`].
pub fn force_generic() -> bool {
    static FORCE: OnceLock<bool> = OnceLock::new();
    *FORCE.get_or_init(|| {
        std::env::var(GENERIC_KERNELS_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes"))
    }) || SCOPED_GENERIC.with(Cell::get)
}

/// Whether ppl's CPU kernels serve tensors on `device`: on the CPU, unless the generic path is forced.
pub fn cpu_kernels(device: &Device) -> bool {
    device.is_cpu() && !force_generic()
}

/// Runs `f` with the device-generic path forced on the CPU for this thread only, restoring the
/// previous setting afterwards (also when `f` panics). Nested calls are fine.
///
/// Build and differentiate a graph under the same setting: the CPU kernels' backward formulas
/// call other special functions, which would take the generic path inside `f` (and trigamma's
/// backward calls tetragamma, whose generic path refuses tracked inputs).
pub fn with_generic<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED_GENERIC.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SCOPED_GENERIC.with(|c| c.replace(true)));
    f()
}

/// Whether every element of `value` is exactly 0 or 1, decided in one pass over contiguous CPU
/// storage (f32, f64 or u8); `false` when it cannot tell that cheaply (other devices, dtypes or
/// layouts): callers then run the full check, which also words the error.
pub(crate) fn quick_binary(value: &Tensor) -> bool {
    use candle_core::{CpuStorage, Storage};
    if !value.device().is_cpu() {
        return false;
    }
    let (storage, layout) = value.storage_and_layout();
    let (Storage::Cpu(s), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else { return false };
    match s {
        CpuStorage::F32(v) => crate::nn::cpu::all_vec(&v[a..b], |x| (x == 0.0) | (x == 1.0)),
        CpuStorage::F64(v) => crate::nn::cpu::all_vec(&v[a..b], |x| (x == 0.0) | (x == 1.0)),
        CpuStorage::U8(v) => crate::nn::cpu::all_vec(&v[a..b], |x| x <= 1),
        _ => false,
    }
}

/// The running sum along the last dim (`t.cumsum(D::Minus1)`): on the CPU one pass over each row
/// (Candle's `cumsum` is a matmul with a triangular matrix, whose thread-count lookup parses
/// /proc/cpuinfo on every call — ~100 µs per stick-breaking transform on a small simplex); its
/// gradient is the reverse running sum of the incoming gradient, the same kernel run backwards.
/// Other devices, dtypes, and the forced generic path use Candle's `cumsum`.
pub(crate) fn cumsum_last(t: &Tensor) -> candle_core::Result<Tensor> {
    if t.rank() == 0 || !cpu_kernels(t.device()) || !matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64) {
        return t.cumsum(candle_core::D::Minus1);
    }
    t.contiguous()?.apply_op1(CumSum { reverse: false })
}

/// `reverse = false`: `y_i = Σ_{j ≤ i} x_j` per row; `reverse = true`: `y_i = Σ_{j ≥ i} x_j`.
struct CumSum {
    reverse: bool,
}

fn cumsum_rows<T: crate::nn::cpu::Elem>(x: &[T], n: usize, reverse: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for (row, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let mut acc = T::ZERO;
        if reverse {
            for (v, r) in row.iter().zip(o.iter_mut()).rev() {
                acc += *v;
                *r = acc;
            }
        } else {
            for (v, r) in row.iter().zip(o.iter_mut()) {
                acc += *v;
                *r = acc;
            }
        }
    }
    out
}

impl candle_core::CustomOp1 for CumSum {
    fn name(&self) -> &'static str {
        if self.reverse { "ppl-reverse-cumsum" } else { "ppl-cumsum" }
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use crate::nn::cpu::slice;
        use candle_core::CpuStorage;
        let n = l.dims().last().copied().unwrap_or(1);
        let out = match s {
            _ if n == 0 => s.clone(),
            CpuStorage::F32(_) => CpuStorage::F32(cumsum_rows(slice::<f32>(s, l)?, n, self.reverse)),
            CpuStorage::F64(_) => CpuStorage::F64(cumsum_rows(slice::<f64>(s, l)?, n, self.reverse)),
            _ => candle_core::bail!("ppl cumsum: expected f32 or f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1(CumSum { reverse: !self.reverse })?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, DType, Var};

    /// Values against Candle's `cumsum` (f32 and f64, a strided input, a length-1 row), and
    /// gradients of a weighted sum against Candle's, including a second application (the
    /// backward of the backward).
    #[test]
    fn cumsum_last_matches_candle_values_and_gradients() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(&Tensor::arange(0f32, 60., &dev)?.reshape((4, 3, 5))?.sin()?.to_dtype(dtype)?)?;
            let w = (Tensor::arange(0f32, 60., &dev)?.reshape((4, 3, 5))? * 0.7)?.cos()?.to_dtype(dtype)?;
            let strided = x.as_tensor().transpose(1, 2)?; // [4, 5, 3], not contiguous
            for t in [x.as_tensor().clone(), strided.clone(), x.as_tensor().narrow(D::Minus1, 0, 1)?] {
                let (ours, theirs) = (cumsum_last(&t)?, t.cumsum(D::Minus1)?);
                let d = (ours - theirs)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                assert!(d < 1e-5, "{dtype:?} {:?}: {d}", t.dims());
            }
            let wt = w.transpose(1, 2)?;
            let ours = (cumsum_last(&cumsum_last(&strided)?)? * &wt)?.sum_all()?.backward()?;
            let theirs = (strided.cumsum(D::Minus1)?.cumsum(D::Minus1)? * &wt)?.sum_all()?.backward()?;
            let (a, b) = (ours.get(x.as_tensor()).unwrap(), theirs.get(x.as_tensor()).unwrap());
            let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            assert!(d < 1e-4, "{dtype:?} gradient: {d}");
            let scale = a.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            assert!(scale > 0.1, "gradients are not trivially zero: {scale}");
        }
        Ok(())
    }
}
