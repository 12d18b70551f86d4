//! Distribution arguments: scalars or tensors, broadcast together, validated against constraints.

use crate::defaults;
use crate::dist::constraints::Constraint;
use crate::error::{Error, Result};
use candle_core::{CpuStorage, DType, Device, Storage, Tensor, Var};

/// A distribution parameter: a plain number or a tensor.
///
/// Numbers take the dtype and device of the tensor arguments of the same call, or the
/// thread's [`defaults`] when there are none.
#[derive(Clone, Debug)]
pub enum Arg {
    /// A scalar.
    Scalar(f64),
    /// A tensor (cheap to clone: Candle tensors share storage).
    Tensor(Tensor),
}

impl From<f64> for Arg {
    fn from(x: f64) -> Self {
        Arg::Scalar(x)
    }
}
impl From<f32> for Arg {
    fn from(x: f32) -> Self {
        Arg::Scalar(x as f64)
    }
}
impl From<i32> for Arg {
    fn from(x: i32) -> Self {
        Arg::Scalar(x as f64)
    }
}
impl From<u32> for Arg {
    fn from(x: u32) -> Self {
        Arg::Scalar(x as f64)
    }
}
impl From<usize> for Arg {
    fn from(x: usize) -> Self {
        Arg::Scalar(x as f64)
    }
}
impl From<Tensor> for Arg {
    fn from(t: Tensor) -> Self {
        Arg::Tensor(t)
    }
}
impl From<&Tensor> for Arg {
    fn from(t: &Tensor) -> Self {
        Arg::Tensor(t.clone())
    }
}
impl From<&Var> for Arg {
    fn from(t: &Var) -> Self {
        Arg::Tensor(t.as_tensor().clone())
    }
}

/// A count argument (such as `total_count`) that may be an integer tensor: converted to the float
/// dtype of `like` when that is a float tensor, else to the thread's default dtype. Floats and
/// numbers pass unchanged; the constraint check comes later, in [`validate_param`].
pub fn count_arg(count: Arg, like: &Arg) -> Result<Arg> {
    match count {
        Arg::Tensor(t) if !t.dtype().is_float() => {
            let dtype = match like {
                Arg::Tensor(l) if l.dtype().is_float() => l.dtype(),
                _ => defaults::current().dtype,
            };
            Ok(Arg::Tensor(t.to_dtype(dtype)?))
        }
        c => Ok(c),
    }
}

/// Parameters resolved to one dtype, one device and one broadcast batch shape.
#[derive(Debug)]
pub struct Resolved {
    /// The tensors, in the order given, each broadcast to `shape`.
    pub tensors: Vec<Tensor>,
    /// The common broadcast shape.
    pub shape: Vec<usize>,
    /// The common dtype.
    pub dtype: DType,
    /// The common device.
    pub device: Device,
}

/// Resolves named arguments of distribution `dist` to tensors of one dtype and device,
/// broadcast to their common shape. Mixed dtypes or devices, or shapes that do not broadcast,
/// are errors naming both arguments.
pub fn resolve(dist: &'static str, args: Vec<(&'static str, Arg)>) -> Result<Resolved> {
    let mut first: Option<(&'static str, DType, Device)> = None;
    for (name, arg) in &args {
        if let Arg::Tensor(t) = arg {
            match &first {
                None => first = Some((name, t.dtype(), t.device().clone())),
                Some((fname, dtype, device)) => {
                    if t.dtype() != *dtype {
                        return Err(Error::DTypeMismatch {
                            context: format!("`{dist}`"),
                            a: fname.to_string(),
                            a_dtype: *dtype,
                            b: name.to_string(),
                            b_dtype: t.dtype(),
                        });
                    }
                    if !t.device().same_device(device) {
                        return Err(Error::DeviceMismatch {
                            context: format!("`{dist}`"),
                            a: format!("`{fname}` is on {device:?}"),
                            b: format!("`{name}` is on {:?}", t.device()),
                        });
                    }
                }
            }
        }
    }
    let (dtype, device) = match first {
        Some((_, d, dev)) => (d, dev),
        None => {
            let d = defaults::current();
            (d.dtype, d.device)
        }
    };
    if !dtype.is_float() {
        return Err(Error::invalid_arg(
            format!("`{dist}`"),
            args.iter().find(|(_, a)| matches!(a, Arg::Tensor(_))).map(|(n, _)| *n).unwrap_or("?"),
            format!("parameters must be floating point tensors, got {dtype:?}"),
        ));
    }
    let mut tensors = Vec::with_capacity(args.len());
    let mut shape: Vec<usize> = vec![];
    let mut shape_from: &'static str = "";
    for (name, arg) in &args {
        let t = match arg {
            Arg::Scalar(x) => Tensor::new(*x, &device)?.to_dtype(dtype)?,
            Arg::Tensor(t) => t.clone(),
        };
        shape = broadcast_shapes(&shape, t.dims()).ok_or_else(|| Error::ShapeMismatch {
            context: format!("`{dist}`: arguments `{shape_from}` and `{name}` do not broadcast"),
            expected: format!("{shape:?}"),
            got: format!("{:?}", t.dims()),
            hint: None,
        })?;
        if t.rank() > 0 {
            shape_from = name;
        }
        tensors.push(t);
    }
    let tensors = tensors
        .into_iter()
        .map(|t| if t.dims() == shape.as_slice() { Ok(t) } else { t.broadcast_as(shape.as_slice()) })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Resolved { tensors, shape, dtype, device })
}

/// The broadcast of two shapes (numpy rules), or `None` if they do not broadcast.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i < n - a.len() { 1 } else { a[i - (n - a.len())] };
        let db = if i < n - b.len() { 1 } else { b[i - (n - b.len())] };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Checks parameter `arg` of `dist` against `constraint` when validation is on. Parameters
/// must also be finite: an infinite scale, rate or concentration is an error, not a degenerate
/// distribution.
pub fn validate_param(dist: &'static str, arg: &'static str, value: &Tensor, constraint: &Constraint) -> Result<()> {
    if !defaults::validation_enabled() || quick_ok(value, constraint)? {
        return Ok(());
    }
    if let Some(detail) = constraint.first_violation(value)? {
        return Err(Error::InvalidParameter { dist, arg, constraint: constraint.to_string(), detail });
    }
    if value.dtype().is_float()
        && !all_finite(value)?
        && let Some(detail) = Constraint::Real.first_violation(value)?
    {
        let constraint = format!("{constraint}, and finite");
        return Err(Error::InvalidParameter { dist, arg, constraint, detail });
    }
    Ok(())
}

/// Checks that `value` lies in the support of `dist` when validation is on.
pub fn validate_value(dist: &'static str, value: &Tensor, support: &Constraint) -> Result<()> {
    if !defaults::validation_enabled() || quick_ok(value, support)? {
        return Ok(());
    }
    if let Some(detail) = support.first_violation(value)? {
        return Err(Error::OutOfSupport { dist, support: support.to_string(), detail });
    }
    Ok(())
}

/// Checks that a value's rightmost dims equal `batch_shape ++ event_shape` up to broadcasting,
/// and that its dtype matches; names both shapes otherwise.
pub fn check_value_shape(dist: &'static str, value: &Tensor, batch: &[usize], event: &[usize], dtype: DType) -> Result<()> {
    if value.dtype() != dtype && value.dtype().is_float() {
        return Err(Error::DTypeMismatch {
            context: format!("`{dist}`.log_prob"),
            a: "parameters".into(),
            a_dtype: dtype,
            b: "value".into(),
            b_dtype: value.dtype(),
        });
    }
    let full: Vec<usize> = batch.iter().chain(event).copied().collect();
    let vd = value.dims();
    let ev_ok = vd.len() >= event.len() && &vd[vd.len() - event.len()..] == event;
    if !ev_ok || broadcast_shapes(vd, &full).is_none() {
        return Err(Error::ShapeMismatch {
            context: format!("`{dist}`.log_prob: value shape does not fit batch_shape {batch:?} ++ event_shape {event:?}"),
            expected: format!("{full:?}"),
            got: format!("{vd:?}"),
            hint: None,
        });
    }
    Ok(())
}

/// `value` broadcast (as a view, no copy) to the shape its `log_prob` must have, the broadcast of
/// its batch dims with `batch`, followed by `event`: for kernels that map over the value alone
/// (constant parameters), so that an expanded batch shape is not lost. Call after
/// [`check_value_shape`].
pub fn broadcast_value(value: &Tensor, batch: &[usize], event: &[usize]) -> Result<Tensor> {
    let full = concat_shapes(batch, event);
    let shape = broadcast_shapes(value.dims(), &full)
        .ok_or_else(|| Error::shape_mismatch("value does not broadcast with batch_shape ++ event_shape", &full, value.dims()))?;
    if shape.as_slice() == value.dims() { Ok(value.clone()) } else { Ok(value.broadcast_as(shape)?) }
}

/// `shape_a ++ shape_b`.
pub fn concat_shapes(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter().chain(b).copied().collect()
}

/// Broadcasts a parameter tensor of shape `old_batch ++ rest` to `new_batch ++ rest`, for
/// [`Distribution::expand`](crate::dist::Distribution::expand); names both shapes on failure.
pub fn expand_param(dist: &'static str, t: &Tensor, old_batch: &[usize], new_batch: &[usize]) -> Result<Tensor> {
    let rest = &t.dims()[old_batch.len().min(t.rank())..];
    let target = concat_shapes(new_batch, rest);
    let ok = new_batch.len() >= old_batch.len()
        && old_batch
            .iter()
            .rev()
            .zip(new_batch.iter().rev())
            .all(|(&o, &n)| o == n || o == 1);
    if !ok {
        return Err(Error::ShapeMismatch {
            context: format!("`{dist}`.expand: batch shape {old_batch:?} cannot be expanded"),
            expected: format!("a shape that {old_batch:?} broadcasts to"),
            got: format!("{new_batch:?}"),
            hint: None,
        });
    }
    Ok(t.broadcast_as(target)?)
}

// Fast path of validation: when a value is valid (the common case), prove it with one pass
// over the data instead of copying every element to the host for the full, descriptive check.

/// Whether one-pass device reductions prove `value` satisfies `c` (sum finite, so no NaN or
/// infinity; then min/max against the bounds). `false` means "unknown": run the full check.
fn quick_ok(value: &Tensor, c: &Constraint) -> Result<bool> {
    let (lo, strict, hi) = match c {
        Constraint::Real => (None, false, None),
        Constraint::Positive => (Some(0.0), true, None),
        Constraint::Nonnegative => (Some(0.0), false, None),
        Constraint::UnitInterval => (Some(0.0), false, Some(1.0)),
        _ => return Ok(false),
    };
    if !value.dtype().is_float() || value.elem_count() == 0 {
        return Ok(false);
    }
    let mut v = value.detach();
    if crate::dist::kernels::cpu_kernels(v.device()) {
        // A broadcast view holds each distinct element once along its zero-stride dims (e.g. a
        // scalar parameter broadcast to the batch shape): check those only.
        for d in 0..v.rank() {
            if v.stride()[d] == 0 && v.dim(d)? > 1 {
                v = v.narrow(d, 0, 1)?;
            }
        }
        // One tight pass over the storage in place, no copies.
        if let Some(ok) = support_ok(&v, lo.unwrap_or(f64::NEG_INFINITY), strict, hi.unwrap_or(f64::INFINITY)) {
            return Ok(ok);
        }
    }
    let v = reducible(v)?;
    let scalar = |t: Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    if !all_finite(&v)? {
        return Ok(false);
    }
    if let Some(lo) = lo {
        let m = scalar(v.min_all()?)?;
        if m < lo || (strict && m == lo) {
            return Ok(false);
        }
    }
    if let Some(hi) = hi
        && scalar(v.max_all()?)? > hi
    {
        return Ok(false);
    }
    Ok(true)
}

/// `v`, or a fresh copy of it when it is a broadcast view: Candle's min/max divide by a zero
/// stride (e.g. a scalar parameter broadcast to `[1]`, which counts as contiguous).
fn reducible(v: Tensor) -> Result<Tensor> {
    Ok(if v.stride().contains(&0) { v.affine(1.0, 0.0)? } else { v })
}

/// Whether the sum of the elements is finite: then no element is NaN or infinite. (`false` can
/// also mean an overflowing sum of large finite numbers: callers then check element by element.)
fn all_finite(value: &Tensor) -> Result<bool> {
    let s = reducible(value.detach())?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(s.is_finite())
}

/// Whether every element of `v` is finite and within `[lo, hi]` (`(lo, hi]` when `strict`), read
/// in place; `None` unless `v` is contiguous f32 or f64 CPU storage.
fn support_ok(v: &Tensor, lo: f64, strict: bool, hi: f64) -> Option<bool> {
    let (storage, layout) = v.storage_and_layout();
    let (Storage::Cpu(s), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else { return None };
    macro_rules! all {
        ($v:expr, $t:ty) => {{
            let (lo, hi) = (lo as $t, hi as $t);
            crate::nn::cpu::all_vec(&$v[a..b], |x: $t| x.is_finite() & (x >= lo) & (!strict | (x > lo)) & (x <= hi))
        }};
    }
    match s {
        CpuStorage::F32(v) => Some(all!(v, f32)),
        CpuStorage::F64(v) => Some(all!(v, f64)),
        _ => None,
    }
}

/// Checks that `mask` is a `u8` tensor of 0s and 1s (values read, with one device-to-host copy of
/// the maximum, only when `check_values`). `context` names what is masked in the error.
pub fn check_mask(context: &str, mask: &Tensor, check_values: bool) -> Result<()> {
    if mask.dtype() != DType::U8 {
        return Err(Error::invalid_arg(
            context,
            "mask",
            format!(
                "a mask must be a boolean (u8) tensor of 0s and 1s, e.g. from a comparison such as `x.ge(0.0)?`, \
                 got dtype {:?}; masks select elements, they are not weights (use `scale` for weights)",
                mask.dtype()
            ),
        ));
    }
    if check_values && mask.elem_count() > 0 {
        let max = mask.flatten_all()?.max(0)?.to_scalar::<u8>()?;
        if max > 1 {
            return Err(Error::invalid_arg(
                context,
                "mask",
                format!("a mask holds only 0 and 1, found the value {max}; compare to get one, e.g. `m.ne(0u8)?`"),
            ));
        }
    }
    Ok(())
}
