//! Scoped, per-thread defaults: the dtype and device of scalar-parameter distributions
//! (`Normal::new(0.0, 1.0)`) and whether distributions validate their arguments.
//!
//! Like `torch.set_default_dtype`, but scoped: a [`DefaultsGuard`] restores the previous
//! defaults when dropped, so nothing leaks between runs or threads.

use candle_core::{DType, Device};
use std::cell::RefCell;

/// The defaults in force on this thread.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Dtype of tensors made from scalars when no tensor argument decides it. Default: `F32`.
    pub dtype: DType,
    /// Device of tensors made from scalars when no tensor argument decides it. Default: the CPU.
    pub device: Device,
    /// Whether distributions check parameters against their constraints and values against
    /// their support. Default: `true`. Turning it off saves a device-to-host copy per check.
    pub validate: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { dtype: DType::F32, device: Device::Cpu, validate: true }
    }
}

thread_local! {
    static DEFAULTS: RefCell<Defaults> = RefCell::new(Defaults::default());
}

/// The defaults in force on this thread.
pub fn current() -> Defaults {
    DEFAULTS.with(|d| d.borrow().clone())
}

/// Whether distribution validation is on for this thread.
pub fn validation_enabled() -> bool {
    DEFAULTS.with(|d| d.borrow().validate)
}

/// Restores the previous defaults when dropped.
#[must_use = "the defaults are restored when the guard is dropped"]
pub struct DefaultsGuard {
    previous: Option<Defaults>,
}

impl Drop for DefaultsGuard {
    fn drop(&mut self) {
        if let Some(prev) = self.previous.take() {
            DEFAULTS.with(|d| *d.borrow_mut() = prev);
        }
    }
}

/// Installs `defaults` on this thread until the guard is dropped.
pub fn set_defaults(defaults: Defaults) -> DefaultsGuard {
    let previous = DEFAULTS.with(|d| std::mem::replace(&mut *d.borrow_mut(), defaults));
    DefaultsGuard { previous: Some(previous) }
}

/// Sets the default dtype until the guard is dropped.
///
/// ```
/// use candle_core::DType;
/// let _g = ppl_runtime::defaults::set_default_dtype(DType::F64);
/// let n = ppl_runtime::dist::Normal::new(0.0, 1.0).unwrap();
/// assert_eq!(ppl_runtime::dist::Distribution::dtype(&n), DType::F64);
/// ```
pub fn set_default_dtype(dtype: DType) -> DefaultsGuard {
    set_defaults(Defaults { dtype, ..current() })
}

/// Sets the default device until the guard is dropped.
pub fn set_default_device(device: Device) -> DefaultsGuard {
    set_defaults(Defaults { device, ..current() })
}

/// Turns distribution validation on or off until the guard is dropped.
pub fn set_validation(validate: bool) -> DefaultsGuard {
    set_defaults(Defaults { validate, ..current() })
}
