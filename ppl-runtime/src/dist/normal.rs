//! The normal (Gaussian) distribution, and elementwise helper ops shared by the continuous
//! distributions.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::special;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::{Arc, OnceLock};

/// `0.5 * ln(2π)`.
pub(crate) const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Normal distribution with mean `loc` and standard deviation `scale`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Normal};
/// let n = Normal::new(0.0, 1.0)?;
/// let lp = n.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? + 0.918_938_5).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Normal {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
    /// `(loc, scale)` as host numbers when both are constants (no gradient to keep): `log_prob`
    /// then needs no broadcast ops.
    consts: Option<(f64, f64)>,
    /// `log(scale)`, computed on first use.
    log_scale: OnceLock<Tensor>,
}

impl Normal {
    /// A normal with mean `loc` and standard deviation `scale > 0` (scalars or tensors, broadcast).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let (loc, scale) = (loc.into(), scale.into());
        let consts = ops::host_const(&loc).zip(ops::host_const(&scale));
        let r = args::resolve("Normal", vec![("loc", loc), ("scale", scale)])?;
        ops::check_param("Normal", "loc", &r.tensors[0], &Constraint::Real)?;
        ops::check_param("Normal", "scale", &r.tensors[1], &Constraint::Positive)?;
        let [loc, scale]: [Tensor; 2] = ops::take(r.tensors);
        Ok(Normal { loc, scale, batch_shape: r.shape, consts, log_scale: OnceLock::new() })
    }

    /// The mean parameter.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The standard-deviation parameter.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    fn log_scale(&self) -> Result<&Tensor> {
        ops::cached(&self.log_scale, || Ok(self.scale.log()?))
    }

    fn standardize(&self, value: &Tensor) -> Result<Tensor> {
        Ok(match self.consts {
            Some((l, s)) => value.affine(1.0 / s, -l / s)?,
            None => value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?,
        })
    }
}

impl Distribution for Normal {
    fn name(&self) -> &'static str {
        "Normal"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.loc.dtype()
    }
    fn device(&self) -> &Device {
        self.loc.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        Ok(self.rsample(rng, sample_shape)?.detach())
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let eps = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        Ok(eps.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        ops::check_support("Normal", value, &Constraint::Real)?;
        if let (Some((loc, scale)), true) = (self.consts, value.device().is_cpu()) {
            return Ok(value.apply_op1(NormalLogPdf { loc, scale })?);
        }
        if value.device().is_cpu() {
            // One fused pass over (x, loc, scale) instead of five elementwise ops.
            let [x, loc, scale] = ops::broadcast_contiguous([value, &self.loc, &self.scale])?;
            return Ok(x.apply_op3(&loc, &scale, NormalLogPdf3)?);
        }
        let z2 = self.standardize(value)?.sqr()?;
        Ok(z2.affine(-0.5, -HALF_LN_2PI)?.broadcast_sub(self.log_scale()?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.sqr()?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.log_scale()?.affine(1.0, 0.5 + HALF_LN_2PI)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        special::ndtr(&self.standardize(value)?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        ops::check_support("Normal", value, &Constraint::UnitInterval)?;
        Ok(special::ndtri(value)?.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Normal {
            loc: args::expand_param("Normal", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("Normal", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            consts: self.consts,
            log_scale: OnceLock::new(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// `-½((x - loc)/scale)² - log(scale) - ½log(2π)` in one pass, for constant `loc`, `scale`
/// (gradient to `x` only); f32 values are computed in f32.
struct NormalLogPdf {
    loc: f64,
    scale: f64,
}

impl candle_core::CustomOp1 for NormalLogPdf {
    fn name(&self) -> &'static str {
        "normal_log_pdf"
    }
    fn cpu_fwd(&self, s: &candle_core::CpuStorage, l: &candle_core::Layout) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        use candle_core::backend::BackendStorage;
        let (m, c) = (1.0 / self.scale, -HALF_LN_2PI - self.scale.ln());
        let out = match s {
            S::F32(v) => {
                let (loc, m, c) = (self.loc as f32, m as f32, c as f32);
                S::F32(candle_core::cpu_backend::unary_map(v, l, |x| {
                    let z = (x - loc) * m;
                    -0.5 * z * z + c
                }))
            }
            S::F64(v) => S::F64(candle_core::cpu_backend::unary_map(v, l, |x| {
                let z = (x - self.loc) * m;
                -0.5 * z * z + c
            })),
            s => candle_core::bail!("`Normal.log_prob` needs an f32 or f64 value, got {:?}", s.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let v = self.scale * self.scale;
        Ok(Some(g.mul(&x.affine(-1.0 / v, self.loc / v)?)?))
    }
}

/// `-½((x - loc)/scale)² - log(scale) - ½log(2π)` in one pass over three contiguous
/// same-shape tensors, differentiable in all three.
struct NormalLogPdf3;

impl candle_core::CustomOp3 for NormalLogPdf3 {
    fn name(&self) -> &'static str {
        "normal_log_pdf"
    }
    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
        s3: &candle_core::CpuStorage,
        l3: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        let (Some((a0, a1)), Some((b0, b1)), Some((c0, c1))) = (l1.contiguous_offsets(), l2.contiguous_offsets(), l3.contiguous_offsets())
        else {
            candle_core::bail!("`normal_log_pdf` needs contiguous inputs")
        };
        macro_rules! run {
            ($x:expr, $m:expr, $s:expr, $t:ty) => {
                $x[a0..a1]
                    .iter()
                    .zip(&$m[b0..b1])
                    .zip(&$s[c0..c1])
                    .map(|((&x, &m), &s)| {
                        let z = (x - m) / s;
                        -0.5 * z * z - s.ln() - HALF_LN_2PI as $t
                    })
                    .collect()
            };
        }
        let out = match (s1, s2, s3) {
            (S::F32(x), S::F32(m), S::F32(s)) => S::F32(run!(x, m, s, f32)),
            (S::F64(x), S::F64(m), S::F64(s)) => S::F64(run!(x, m, s, f64)),
            _ => candle_core::bail!("`Normal.log_prob` needs value and parameters of one float dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, loc: &Tensor, scale: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // z = (x - loc)/scale: d/dx = -z/scale, d/dloc = z/scale, d/dscale = (z² - 1)/scale.
        let z = ((x - loc)? / scale)?;
        let gs = (g / scale)?;
        let dloc = (&z * &gs)?;
        let dscale = (z.sqr()?.affine(1.0, -1.0)? * &gs)?;
        Ok((Some(dloc.neg()?), Some(dloc), Some(dscale)))
    }
}

/// Elementwise ops the continuous distributions share: scalar functions mapped on the host as
/// Candle `CustomOp`s (CPU kernels; other devices get Candle's "no implementation" error),
/// value-only host maps for the cdfs built on incomplete gamma/beta functions, and small
/// parameter helpers.
pub(crate) mod ops {
    use crate::defaults;
    use crate::dist::args::Arg;
    use crate::dist::constraints::Constraint;
    use crate::error::Result;
    use candle_core::backend::BackendStorage;
    use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
    use std::sync::OnceLock;

    /// The value of a constant scalar argument (a number, or a one-element tensor that carries
    /// no gradient), so that `log_prob` can use `affine` instead of broadcast ops.
    pub(crate) fn host_const(a: &Arg) -> Option<f64> {
        match a {
            Arg::Scalar(x) => Some(*x),
            Arg::Tensor(t) if t.elem_count() == 1 && !t.track_op() && t.device().is_cpu() => {
                t.flatten_all().ok()?.to_dtype(DType::F64).ok()?.to_vec1::<f64>().ok()?.first().copied()
            }
            Arg::Tensor(_) => None,
        }
    }

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
        let v = value.detach();
        if v.device().is_cpu() && v.is_contiguous() {
            // One tight pass over the storage, no copies.
            let check = SupportCheck { lo: lo.unwrap_or(f64::NEG_INFINITY), strict, hi: hi.unwrap_or(f64::INFINITY) };
            let ok = v.apply_op1_no_bwd(&check)?;
            return Ok(ok.to_dtype(DType::F64)?.to_vec1::<f64>()?[0] == 1.0);
        }
        let scalar = |t: Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        if !scalar(v.sum_all()?)?.is_finite() {
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

    /// Whether every element is finite and within `[lo, hi]` (`(lo, hi]` when `strict`): a
    /// one-element tensor holding 1 or 0. Contiguous CPU storage only.
    struct SupportCheck {
        lo: f64,
        strict: bool,
        hi: f64,
    }

    impl CustomOp1 for SupportCheck {
        fn name(&self) -> &'static str {
            "support_check"
        }
        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            let Some((a, b)) = l.contiguous_offsets() else { candle_core::bail!("`support_check` needs a contiguous tensor") };
            macro_rules! all {
                ($v:expr, $t:ty) => {{
                    let (lo, hi, strict) = (self.lo as $t, self.hi as $t, self.strict);
                    $v[a..b].iter().fold(true, |ok, &x| ok & x.is_finite() & (x >= lo) & (!strict | (x > lo)) & (x <= hi))
                }};
            }
            let ok = match s {
                CpuStorage::F32(v) => all!(v, f32),
                CpuStorage::F64(v) => all!(v, f64),
                s => candle_core::bail!("`support_check` needs f32 or f64, got {:?}", s.dtype()),
            };
            Ok((CpuStorage::F64(vec![if ok { 1.0 } else { 0.0 }]), Shape::from(1)))
        }
    }

    /// [`args::validate_value`](crate::dist::args::validate_value) with a fast path: device
    /// reductions instead of a host copy of every element when the value is valid.
    pub(crate) fn check_support(dist: &'static str, value: &Tensor, support: &Constraint) -> Result<()> {
        if !defaults::validation_enabled() || quick_ok(value, support)? {
            return Ok(());
        }
        crate::dist::args::validate_value(dist, value, support)
    }

    /// [`args::validate_param`](crate::dist::args::validate_param) with the same fast path.
    pub(crate) fn check_param(dist: &'static str, arg: &'static str, value: &Tensor, c: &Constraint) -> Result<()> {
        if !defaults::validation_enabled() || quick_ok(value, c)? {
            return Ok(());
        }
        crate::dist::args::validate_param(dist, arg, value, c)
    }

    /// The tensors broadcast to their common shape and made contiguous (copies only where
    /// needed), for fused multi-input kernels.
    pub(crate) fn broadcast_contiguous<const N: usize>(ts: [&Tensor; N]) -> Result<[Tensor; N]> {
        let mut shape: Vec<usize> = vec![];
        for t in ts {
            shape = crate::dist::args::broadcast_shapes(&shape, t.dims())
                .ok_or_else(|| crate::Error::shape_mismatch("fused kernel: inputs do not broadcast", &shape, t.dims()))?;
        }
        let mut out = Vec::with_capacity(N);
        for t in ts {
            let b = if t.dims() == shape.as_slice() { t.clone() } else { t.broadcast_as(shape.as_slice())? };
            out.push(if b.is_contiguous() { b } else { b.contiguous()? });
        }
        Ok(take(out))
    }

    /// `f` mapped over `src`, split across Candle's thread count (`RAYON_NUM_THREADS`) when
    /// the slice is large enough to repay spawning scoped threads.
    pub(crate) fn par_map<T: Copy + Sync, U: Copy + Send + Default>(src: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
        let threads = candle_core::utils::get_num_threads().max(1);
        if src.len() < (1 << 17) || threads == 1 {
            return src.iter().map(|&x| f(x)).collect();
        }
        let mut out = vec![U::default(); src.len()];
        let chunk = src.len().div_ceil(threads);
        std::thread::scope(|s| {
            for (o, i) in out.chunks_mut(chunk).zip(src.chunks(chunk)) {
                let f = &f;
                s.spawn(move || o.iter_mut().zip(i).for_each(|(o, &x)| *o = f(x)));
            }
        });
        out
    }

    /// `f` over three equal-length slices, split across threads like [`par_map`].
    pub(crate) fn par_zip3<T: Copy + Sync, U: Copy + Send + Default>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> U + Sync) -> Vec<U> {
        let threads = candle_core::utils::get_num_threads().max(1);
        let run = |o: &mut [U], start: usize| {
            for (k, o) in o.iter_mut().enumerate() {
                let i = start + k;
                *o = f(a[i], b[i], c[i]);
            }
        };
        let mut out = vec![U::default(); a.len()];
        if a.len() < (1 << 15) || threads == 1 {
            run(&mut out, 0);
            return out;
        }
        let chunk = a.len().div_ceil(threads);
        std::thread::scope(|s| {
            for (j, o) in out.chunks_mut(chunk).enumerate() {
                let run = &run;
                s.spawn(move || run(o, j * chunk));
            }
        });
        out
    }

    /// [`par_map`] over a tensor's storage when it is contiguous, else Candle's strided map.
    pub(crate) fn map_storage<T: Copy + Sync + Send + Default>(v: &[T], l: &Layout, f: impl Fn(T) -> T + Sync) -> Vec<T> {
        match l.contiguous_offsets() {
            Some((a, b)) => par_map(&v[a..b], f),
            None => candle_core::cpu_backend::unary_map(v, l, f),
        }
    }

    /// The `N` resolved tensors as an array (`resolve` returns exactly one per argument).
    pub(crate) fn take<const N: usize>(v: Vec<Tensor>) -> [Tensor; N] {
        v.try_into().unwrap_or_else(|v: Vec<Tensor>| unreachable!("resolve returned {} tensors", v.len()))
    }

    /// The tensor in `cell`, computing it with `f` on first use.
    pub(crate) fn cached(cell: &OnceLock<Tensor>, f: impl FnOnce() -> Result<Tensor>) -> Result<&Tensor> {
        if let Some(t) = cell.get() {
            return Ok(t);
        }
        let t = f()?;
        Ok(cell.get_or_init(|| t))
    }

    type Grad = fn(&Tensor, &Tensor) -> Result<Tensor>;

    struct Unary {
        name: &'static str,
        f: fn(f64) -> f64,
        grad: Option<Grad>,
    }

    impl CustomOp1 for Unary {
        fn name(&self) -> &'static str {
            self.name
        }
        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            use candle_core::cpu_backend::unary_map;
            let f = self.f;
            let out = match s {
                CpuStorage::F32(v) => CpuStorage::F32(unary_map(v, l, |x| f(x as f64) as f32)),
                CpuStorage::F64(v) => CpuStorage::F64(unary_map(v, l, f)),
                s => candle_core::bail!("`{}` needs an f32 or f64 tensor, got {:?}", self.name, s.dtype()),
            };
            Ok((out, l.shape().clone()))
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

    /// Maps `f` elementwise; the backward multiplies by `grad(x, f(x))` (no gradient if `None`).
    pub(crate) fn unary(x: &Tensor, name: &'static str, f: fn(f64) -> f64, grad: Option<Grad>) -> Result<Tensor> {
        Ok(x.apply_op1(Unary { name, f, grad })?)
    }

    /// Uniform draws in the open interval (0, 1) *in the target dtype* (f32 rounding of a
    /// draw near 1 would give exactly 1, and `log(1 - u)` would be infinite).
    pub(crate) fn uniform(rng: &mut crate::rng::Rng, shape: &[usize], dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
        let (lo, hi) = if dtype == DType::F64 { (f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0) } else { (f32::MIN_POSITIVE as f64, 1.0 - (f32::EPSILON / 2.0) as f64) };
        Ok(rng.uniform_tensor(shape, dtype, device)?.clamp(lo, hi)?)
    }

    /// `atan(x)`, differentiable.
    pub(crate) fn atan(x: &Tensor) -> Result<Tensor> {
        unary(x, "atan", f64::atan, Some(|x, _| Ok(x.sqr()?.affine(1.0, 1.0)?.recip()?)))
    }

    /// `tan(x)`, differentiable.
    pub(crate) fn tan(x: &Tensor) -> Result<Tensor> {
        unary(x, "tan", f64::tan, Some(|_, y| Ok(y.sqr()?.affine(1.0, 1.0)?)))
    }

    /// Maps `f` over the broadcast of `inputs` on the host; the result carries no gradient
    /// (used for cdfs built on incomplete gamma/beta functions).
    pub(crate) fn host_map(inputs: &[&Tensor], f: impl Fn(&[f64]) -> f64) -> Result<Tensor> {
        let mut shape: Vec<usize> = vec![];
        for t in inputs {
            shape = crate::dist::args::broadcast_shapes(&shape, t.dims()).ok_or_else(|| {
                crate::Error::shape_mismatch("host_map: inputs do not broadcast", &shape, t.dims())
            })?;
        }
        let host = inputs
            .iter()
            .map(|t| Ok(t.broadcast_as(shape.as_slice())?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?))
            .collect::<Result<Vec<_>>>()?;
        let n: usize = shape.iter().product();
        let mut buf = vec![0.0; inputs.len()];
        let out: Vec<f64> = (0..n)
            .map(|i| {
                for (b, h) in buf.iter_mut().zip(&host) {
                    *b = h[i];
                }
                f(&buf)
            })
            .collect();
        Ok(Tensor::from_vec(out, shape, inputs[0].device())?.to_dtype(inputs[0].dtype())?)
    }

    struct Xlogy;

    impl CustomOp2 for Xlogy {
        fn name(&self) -> &'static str {
            "xlogy"
        }
        fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            use candle_core::cpu_backend::binary_map;
            let out = match (s1, s2) {
                (CpuStorage::F32(x), CpuStorage::F32(y)) => {
                    CpuStorage::F32(binary_map(l1, l2, x, y, |x, y| if x == 0.0 && !y.is_nan() { 0.0 } else { x * y.ln() }))
                }
                (CpuStorage::F64(x), CpuStorage::F64(y)) => {
                    CpuStorage::F64(binary_map(l1, l2, x, y, |x, y| if x == 0.0 && !y.is_nan() { 0.0 } else { x * y.ln() }))
                }
                _ => candle_core::bail!("`xlogy` needs two f32 or two f64 tensors, got {:?} and {:?}", s1.dtype(), s2.dtype()),
            };
            Ok((out, l1.shape().clone()))
        }
        fn bwd(&self, x: &Tensor, y: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            // d/dx = log(y), also at x == 0 (torch returns 0 there, which is wrong for a
            // parameter such as a concentration at exactly 1); 0 only where x == y == 0.
            // d/dy = x / y.
            let both_zero = (x.eq(0.0)?.to_dtype(x.dtype())? * y.eq(0.0)?.to_dtype(x.dtype())?)?;
            let gx = g.mul(&both_zero.affine(-1.0, 1.0)?.apply_op2(y, Xlogy)?)?;
            let gy = g.mul(&x.div(y)?)?;
            Ok((Some(gx), Some(gy)))
        }
    }

    /// `x * log(y)`, with `0` where `x == 0` (torch's `xlogy`); broadcasts; differentiable in both.
    pub(crate) fn xlogy(x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let shape = crate::dist::args::broadcast_shapes(x.dims(), y.dims())
            .ok_or_else(|| crate::Error::shape_mismatch("xlogy: arguments do not broadcast", x.dims(), y.dims()))?;
        let x = if x.dims() == shape.as_slice() { x.clone() } else { x.broadcast_as(shape.as_slice())? };
        let y = if y.dims() == shape.as_slice() { y.clone() } else { y.broadcast_as(shape.as_slice())? };
        Ok(x.apply_op2(&y, Xlogy)?)
    }
}
