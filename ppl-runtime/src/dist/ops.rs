//! Elementwise ops the continuous distributions share: scalar functions mapped on the host as Candle `CustomOp`s (CPU kernels; other devices get Candle's "no implementation" error), value-only host maps for the cdfs built on incomplete gamma/beta functions, and small parameter helpers.

use crate::dist::args::Arg;
use crate::error::Result;
use candle_core::{DType, Layout, Tensor};
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
    let threads = crate::nn::cpu::threads_for(src.len(), 1 << 17);
    if threads == 1 {
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
    let threads = crate::nn::cpu::threads_for(a.len(), 1 << 15);
    let run = |o: &mut [U], start: usize| {
        for (k, o) in o.iter_mut().enumerate() {
            let i = start + k;
            *o = f(a[i], b[i], c[i]);
        }
    };
    let mut out = vec![U::default(); a.len()];
    if threads == 1 {
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

/// Uniform draws in the open interval (0, 1) *in the target dtype* (f32 rounding of a
/// draw near 1 would give exactly 1, and `log(1 - u)` would be infinite).
pub(crate) fn uniform(rng: &mut crate::rng::Rng, shape: &[usize], dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    let (lo, hi) = if dtype == DType::F64 { (f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0) } else { (f32::MIN_POSITIVE as f64, 1.0 - (f32::EPSILON / 2.0) as f64) };
    Ok(rng.uniform_tensor(shape, dtype, device)?.clamp(lo, hi)?)
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

/// `logit(p)` with `p` clamped inside the logs so that `p = 0` or `1` give large finite logits.
pub(crate) fn probs_to_logits(p: &Tensor) -> Result<Tensor> {
    let eps = if p.dtype() == DType::F64 { 1e-15 } else { 1e-7 };
    let pc = p.clamp(eps, 1.0 - eps)?;
    Ok((pc.log()? - pc.affine(-1.0, 1.0)?.log()?)?)
}

/// `Σ_k f(k, log p(k))` over the support `0, 1, 2, ...` of a unimodal pmf, exact up to rounding
/// (no series): from the mode `mode` (where `log p = lp_mode`) outwards, with the log pmf carried
/// by `log_ratio(k) = log p(k+1) - log p(k)` (`-inf` past the end of a finite support). The
/// right side stops once the geometric bound on the rest of the mass, `p(k) ρ/(1 - ρ)` with
/// `ρ = max(p(k+1)/p(k), ratio_sup)`, is `e^-60` below the mode's mass (`ratio_sup` bounds the
/// later ratios: 0 for log-concave pmfs, whose ratios only fall); the left side once terms are.
/// Sums are compensated (Neumaier). `None` if that needs over 2·10⁸ terms.
pub(crate) fn sum_unimodal(
    mode: f64,
    lp_mode: f64,
    ratio_sup: f64,
    log_ratio: impl Fn(f64) -> f64,
    f: impl Fn(f64, f64) -> f64,
) -> Option<f64> {
    let floor = lp_mode - 60.0;
    let mut acc = Neumaier::default();
    acc.add(f(mode, lp_mode));
    // Right of the mode.
    let (mut k, mut lp) = (mode, lp_mode);
    for _ in 0..200_000_000u64 {
        let lr = log_ratio(k).max(ratio_sup.ln());
        if lr < 0.0 && lp + lr - (-lr.exp_m1()).ln() < floor {
            break;
        }
        lp += log_ratio(k);
        k += 1.0;
        if lp.is_nan() || lp == f64::NEG_INFINITY {
            break;
        }
        acc.add(f(k, lp));
        if k - mode >= 200_000_000.0 {
            return None;
        }
    }
    // Left of the mode.
    let (mut k, mut lp) = (mode, lp_mode);
    while k >= 1.0 {
        k -= 1.0;
        lp -= log_ratio(k);
        if lp.is_nan() || lp < floor {
            break;
        }
        acc.add(f(k, lp));
    }
    Some(acc.sum())
}

/// Compensated (Neumaier) summation.
#[derive(Default)]
struct Neumaier {
    sum: f64,
    c: f64,
}

impl Neumaier {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.c += if self.sum.abs() >= x.abs() { (self.sum - t) + x } else { (x - t) + self.sum };
        self.sum = t;
    }
    fn sum(&self) -> f64 {
        self.sum + self.c
    }
}

/// `(log p, log(1 - p))` on the host from a probability and its logit: exact at `p = 0` and
/// `p = 1`, otherwise from the logit (no cancellation near 0 or 1).
pub(crate) fn log_p_q(p: f64, logit: f64) -> (f64, f64) {
    let softplus = |x: f64| if x > 30.0 { x + (-x).exp() } else { x.exp().ln_1p() };
    if p == 0.0 {
        (f64::NEG_INFINITY, 0.0)
    } else if p == 1.0 {
        (0.0, f64::NEG_INFINITY)
    } else {
        (-softplus(-logit), -softplus(logit))
    }
}

/// For the cdfs of count distributions: `⌊value⌋` (in the dtype of `count`), `count` and
/// `1 - p = sigmoid(-logits)` (detached: the cdfs carry no gradient), broadcast to one shape.
pub(crate) fn floor_count_q(value: &Tensor, count: &Tensor, logits: &Tensor) -> Result<[Tensor; 3]> {
    let k = value.to_dtype(count.dtype())?.floor()?;
    let q = candle_nn::ops::sigmoid(&logits.neg()?)?.detach();
    broadcast_contiguous([&k, count, &q])
}

/// Host values `value` (shape `shape`) as a tensor like `params[0].0`, differentiable with the
/// given host gradients: `value + Σ (θ - stop(θ)) g_θ`, so that backward passes give `g_θ` to
/// each parameter `θ` (each of shape `shape`) and the value is unchanged.
pub(crate) fn with_host_grads(value: Vec<f64>, shape: &[usize], params: &[(&Tensor, Vec<f64>)]) -> Result<Tensor> {
    let like = params[0].0;
    let host = |v: Vec<f64>| -> Result<Tensor> { Ok(Tensor::from_vec(v, shape, like.device())?.to_dtype(like.dtype())?) };
    let mut out = host(value)?;
    for (theta, g) in params {
        if theta.track_op() {
            out = (out + ((*theta - theta.detach())? * host(g.clone())?)?)?;
        }
    }
    Ok(out)
}

/// `-x log x`, 0 at `x = 0`.
pub(crate) fn entr(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { -x * x.ln() }
}
