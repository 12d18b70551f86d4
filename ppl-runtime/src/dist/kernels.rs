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
