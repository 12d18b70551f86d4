//! Fused likelihood kernels for the hot path of deep models: one pass forward (the log-density
//! summed over the rightmost `event_dims` dims, with four independent accumulators per row) and
//! one pass backward (gradients only for the inputs that carry one), split across Candle's
//! thread count for large inputs. Every function has a `_generic` twin built from Candle ops —
//! the path CUDA and Metal take (and the CPU under `PPL_GENERIC_KERNELS=1`).
//!
//! Inputs broadcast against each other (numpy rules). The result has the broadcast shape with
//! the rightmost `event_dims` dims summed away: `event_dims = 0` gives the elementwise
//! log-density, `event_dims = 1` what `Independent(.., 1)` returns.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use ppl_runtime::nn::fused;
//! let logits = Tensor::new(&[[0f32, 2.0], [-1.0, 0.5]], &Device::Cpu)?;
//! let x = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &Device::Cpu)?;
//! let lp = fused::bernoulli_logits_log_prob(&logits, &x, 1)?; // shape [2]
//! assert_eq!(lp.dims(), &[2]);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

use crate::dist::args::broadcast_shapes;
use crate::dist::kernels::cpu_kernels;
use crate::error::{Error, Result};
use crate::nn::cpu::{self, Elem};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Shape, Storage, Tensor};

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// `Σ_event [x·l - softplus(l)]`: the log-probability of `value` (0/1) under
/// `Bernoulli(logits = logits)`, summed over the rightmost `event_dims` dims.
/// Gradient: `value - sigmoid(logits)` for the logits, `logits` for the value.
pub fn bernoulli_logits_log_prob(logits: &Tensor, value: &Tensor, event_dims: usize) -> Result<Tensor> {
    const CTX: &str = "bernoulli_logits_log_prob";
    let (ins, shape) = prepare(CTX, [("logits", logits), ("value", value)], event_dims)?;
    if !fast(logits) {
        return bernoulli_logits_log_prob_generic(logits, value, event_dims);
    }
    let [l, x] = ins;
    Ok(l.apply_op2(&x, Fused { kernel: BernoulliLogits, shape })?)
}

/// [`bernoulli_logits_log_prob`] in Candle ops.
pub fn bernoulli_logits_log_prob_generic(logits: &Tensor, value: &Tensor, event_dims: usize) -> Result<Tensor> {
    let ([l, x], _) = prepare("bernoulli_logits_log_prob", [("logits", logits), ("value", value)], event_dims)?;
    let lp = ((&x * &l)? - crate::nn::Activation::Softplus.apply_generic(&l)?)?;
    sum_event(&lp, event_dims)
}

/// `Σ_event log N(value | loc, scale)`, summed over the rightmost `event_dims` dims.
/// (`scale` is not validated here: the distributions check their parameters.)
pub fn normal_log_prob(value: &Tensor, loc: &Tensor, scale: &Tensor, event_dims: usize) -> Result<Tensor> {
    const CTX: &str = "normal_log_prob";
    let (ins, shape) = prepare(CTX, [("value", value), ("loc", loc), ("scale", scale)], event_dims)?;
    if !fast(value) {
        return normal_log_prob_generic(value, loc, scale, event_dims);
    }
    let [v, m, s] = ins;
    Ok(v.apply_op3(&m, &s, Fused { kernel: NormalLogProb, shape })?)
}

/// [`normal_log_prob`] in Candle ops.
pub fn normal_log_prob_generic(value: &Tensor, loc: &Tensor, scale: &Tensor, event_dims: usize) -> Result<Tensor> {
    let ([v, m, s], _) = prepare("normal_log_prob", [("value", value), ("loc", loc), ("scale", scale)], event_dims)?;
    let z = ((v - m)? / &s)?;
    let lp = ((z.sqr()? * -0.5)? - s.log()?)?.affine(1.0, -LN_SQRT_2PI)?;
    sum_event(&lp, event_dims)
}

/// `Σ_event KL(N(loc_p, scale_p) ‖ N(loc_q, scale_q))`
/// `= log(scale_q/scale_p) + (scale_p² + (loc_p - loc_q)²) / (2 scale_q²) - 1/2`,
/// summed over the rightmost `event_dims` dims.
pub fn normal_kl(loc_p: &Tensor, scale_p: &Tensor, loc_q: &Tensor, scale_q: &Tensor, event_dims: usize) -> Result<Tensor> {
    const CTX: &str = "normal_kl";
    // The location difference is one broadcast subtraction (its gradient reaches both locations
    // through Candle); the kernel takes (loc_p - loc_q, scale_p, scale_q).
    let names = [("loc_p", loc_p), ("scale_p", scale_p), ("loc_q", loc_q), ("scale_q", scale_q)];
    let (_, shape) = prepare(CTX, names, event_dims)?;
    if !fast(loc_p) {
        return normal_kl_generic(loc_p, scale_p, loc_q, scale_q, event_dims);
    }
    let d = loc_p.broadcast_sub(loc_q)?;
    let ([d, sp, sq], _) = prepare(CTX, [("loc_p - loc_q", &d), ("scale_p", scale_p), ("scale_q", scale_q)], event_dims)?;
    Ok(d.apply_op3(&sp, &sq, Fused { kernel: NormalKl, shape })?)
}

/// [`normal_kl`] in Candle ops.
pub fn normal_kl_generic(loc_p: &Tensor, scale_p: &Tensor, loc_q: &Tensor, scale_q: &Tensor, event_dims: usize) -> Result<Tensor> {
    let names = [("loc_p", loc_p), ("scale_p", scale_p), ("loc_q", loc_q), ("scale_q", scale_q)];
    let ([mp, sp, mq, sq], _) = prepare("normal_kl", names, event_dims)?;
    let var_ratio = (&sp / &sq)?.sqr()?;
    let t = ((mp - mq)? / &sq)?.sqr()?;
    let kl = ((var_ratio.clone() + t)? - var_ratio.log()?)?.affine(0.5, -0.5)?;
    sum_event(&kl, event_dims)
}

/// `Σ_event [logits[.., value] - logsumexp(logits)]`: the log-probability of the category
/// indices `value` under `Categorical(logits = logits)` (categories in the last dim of
/// `logits`), summed over the rightmost `event_dims` dims of the broadcast batch shape.
/// Indices may be integers or integral floats; each must lie in `0..K`. Gradient (logits only):
/// `onehot(value) - softmax(logits)`.
pub fn categorical_logits_log_prob(logits: &Tensor, value: &Tensor, event_dims: usize) -> Result<Tensor> {
    const CTX: &str = "categorical_logits_log_prob";
    let (l, idx, shape) = prepare_categorical(CTX, logits, value, event_dims)?;
    if !fast(logits) {
        return categorical_logits_log_prob_generic(logits, value, event_dims);
    }
    let k = l.dim(D::Minus1)?;
    let idx = host_indices(CTX, &idx, k)?;
    Ok(l.apply_op1(CategoricalOp { idx, k, shape })?)
}

/// [`categorical_logits_log_prob`] in Candle ops.
pub fn categorical_logits_log_prob_generic(logits: &Tensor, value: &Tensor, event_dims: usize) -> Result<Tensor> {
    const CTX: &str = "categorical_logits_log_prob";
    let (l, idx, _) = prepare_categorical(CTX, logits, value, event_dims)?;
    let k = l.dim(D::Minus1)?;
    if idx.device().is_cpu() {
        host_indices(CTX, &idx, k)?;
    }
    let lp = candle_nn::ops::log_softmax(&l, D::Minus1)?;
    let lp = lp.gather(&idx.to_dtype(DType::U32)?.unsqueeze(D::Minus1)?.contiguous()?, D::Minus1)?.squeeze(D::Minus1)?;
    sum_event(&lp, event_dims)
}

// ---------------------------------------------------------------------------------------------
// Shapes and dispatch.

fn fast(t: &Tensor) -> bool {
    cpu_kernels(t.device()) && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// Checks dtypes/devices, broadcasts the inputs to one contiguous shape, and returns the
/// output shape (the broadcast shape without its rightmost `event_dims` dims).
fn prepare<const N: usize>(ctx: &str, ins: [(&str, &Tensor); N], event_dims: usize) -> Result<([Tensor; N], Vec<usize>)> {
    let (name0, t0) = ins[0];
    let mut shape: Vec<usize> = vec![];
    for (name, t) in ins {
        if t.dtype() != t0.dtype() {
            return Err(Error::DTypeMismatch { context: ctx.into(), a: name0.into(), a_dtype: t0.dtype(), b: name.into(), b_dtype: t.dtype() });
        }
        if !t.device().same_device(t0.device()) {
            return Err(Error::DeviceMismatch {
                context: ctx.into(),
                a: format!("`{name0}` is on {:?}", t0.device()),
                b: format!("`{name}` is on {:?}", t.device()),
            });
        }
        shape = broadcast_shapes(&shape, t.dims()).ok_or_else(|| Error::ShapeMismatch {
            context: format!("{ctx}: `{name}` does not broadcast with the other arguments"),
            expected: format!("a shape broadcastable with {shape:?}"),
            got: format!("{:?}", t.dims()),
            hint: None,
        })?;
    }
    let out = out_shape(ctx, &shape, event_dims)?;
    let mut v = Vec::with_capacity(N);
    for (_, t) in ins {
        let b = if t.dims() == shape.as_slice() { t.clone() } else { t.broadcast_as(shape.as_slice())? };
        v.push(b.contiguous()?);
    }
    let arr: [Tensor; N] = v.try_into().unwrap_or_else(|_| unreachable!("one tensor per input"));
    Ok((arr, out))
}

fn out_shape(ctx: &str, shape: &[usize], event_dims: usize) -> Result<Vec<usize>> {
    if event_dims > shape.len() {
        return Err(Error::invalid_arg(ctx, "event_dims", format!("is {event_dims}, but the inputs have only {} dims (shape {shape:?})", shape.len())));
    }
    Ok(shape[..shape.len() - event_dims].to_vec())
}

fn prepare_categorical(ctx: &str, logits: &Tensor, value: &Tensor, event_dims: usize) -> Result<(Tensor, Tensor, Vec<usize>)> {
    let Some((&k, lead)) = logits.dims().split_last() else {
        return Err(Error::invalid_arg(ctx, "logits", "must have a last dim of categories, got a scalar"));
    };
    if k == 0 {
        return Err(Error::invalid_arg(ctx, "logits", "has no categories (last dim 0)"));
    }
    if !logits.device().same_device(value.device()) {
        return Err(Error::DeviceMismatch {
            context: ctx.into(),
            a: format!("`logits` is on {:?}", logits.device()),
            b: format!("`value` is on {:?}", value.device()),
        });
    }
    let batch = broadcast_shapes(lead, value.dims()).ok_or_else(|| Error::ShapeMismatch {
        context: format!("{ctx}: `value` must broadcast with the batch shape of `logits`"),
        expected: format!("a shape broadcastable with {lead:?}"),
        got: format!("{:?}", value.dims()),
        hint: None,
    })?;
    let out = out_shape(ctx, &batch, event_dims)?;
    let mut lshape = batch.clone();
    lshape.push(k);
    let l = if logits.dims() == lshape.as_slice() { logits.clone() } else { logits.broadcast_as(lshape)? };
    let v = if value.dims() == batch.as_slice() { value.clone() } else { value.broadcast_as(batch)? };
    Ok((l.contiguous()?, v.contiguous()?, out))
}

/// The category indices on the host, checked to be integers in `0..k`.
fn host_indices(ctx: &str, value: &Tensor, k: usize) -> Result<Vec<u32>> {
    let v = value.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mut out = Vec::with_capacity(v.len());
    for (i, &x) in v.iter().enumerate() {
        if !(x >= 0.0 && x < k as f64 && x.fract() == 0.0) {
            return Err(Error::invalid_arg(ctx, "value", format!("must hold category indices in 0..{k}, but element {i} is {x}")));
        }
        out.push(x as u32);
    }
    Ok(out)
}

/// `t` with its rightmost `event_dims` dims summed away.
fn sum_event(t: &Tensor, event_dims: usize) -> Result<Tensor> {
    if event_dims == 0 {
        return Ok(t.clone());
    }
    let r = t.rank();
    Ok(t.flatten_from(r - event_dims)?.sum(D::Minus1)?)
}

// ---------------------------------------------------------------------------------------------
// Row-reduce kernels: out[row] = Σ_c f(in_1[i], .., in_N[i]) with i = row·cols + c.

/// One fused log-density: the value and its partial derivatives in each input.
trait RowKernel<const N: usize>: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    fn f<T: Elem>(a: [T; N]) -> T;
    fn df<T: Elem>(a: [T; N]) -> [T; N];
}

#[derive(Clone, Copy)]
struct BernoulliLogits;

impl RowKernel<2> for BernoulliLogits {
    const NAME: &'static str = "ppl-bernoulli-logits-log-prob";
    #[inline(always)]
    fn f<T: Elem>([l, x]: [T; 2]) -> T {
        x * l - cpu::softplus(l)
    }
    #[inline(always)]
    fn df<T: Elem>([l, x]: [T; 2]) -> [T; 2] {
        [x - cpu::sigmoid(l), l]
    }
}

#[derive(Clone, Copy)]
struct NormalLogProb;

impl RowKernel<3> for NormalLogProb {
    const NAME: &'static str = "ppl-normal-log-prob";
    #[inline(always)]
    fn f<T: Elem>([v, m, s]: [T; 3]) -> T {
        let z = (v - m) / s;
        T::c(-0.5) * z * z - s.ln() - T::c(LN_SQRT_2PI)
    }
    #[inline(always)]
    fn df<T: Elem>([v, m, s]: [T; 3]) -> [T; 3] {
        let r = T::ONE / s;
        let z = (v - m) * r;
        [-z * r, z * r, (z * z - T::ONE) * r]
    }
}

#[derive(Clone, Copy)]
struct NormalKl;

impl RowKernel<3> for NormalKl {
    const NAME: &'static str = "ppl-normal-kl";
    #[inline(always)]
    fn f<T: Elem>([d, sp, sq]: [T; 3]) -> T {
        let r = T::ONE / sq;
        let (a, b) = (sp * r, d * r);
        T::c(0.5) * (a * a + b * b) - a.ln() - T::c(0.5)
    }
    #[inline(always)]
    fn df<T: Elem>([d, sp, sq]: [T; 3]) -> [T; 3] {
        let r = T::ONE / sq;
        let r2 = r * r;
        [d * r2, sp * r2 - T::ONE / sp, r - (sp * sp + d * d) * r2 * r]
    }
}

/// A [`RowKernel`] as a Candle custom op whose output has `shape` (rows).
struct Fused<K> {
    #[allow(dead_code)]
    kernel: K,
    shape: Vec<usize>,
}

fn reduce_rows<T: Elem, K: RowKernel<N>, const N: usize>(ins: [&[T]; N], rows: usize) -> Vec<T> {
    let n = ins[0].len();
    let cols = n.checked_div(rows).unwrap_or(0);
    let mut out = vec![T::ZERO; rows];
    cpu::par_rows(&mut out, 1, n, |r0, o| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { row_sums_avx2::<T, K, N>(ins, cols, r0, o) };
        }
        row_sums::<T, K, N>(ins, cols, r0, o)
    });
    out
}

/// `o[j] = Σ_c f(row r0 + j)`.
#[inline(always)]
fn row_sums<T: Elem, K: RowKernel<N>, const N: usize>(ins: [&[T]; N], cols: usize, r0: usize, o: &mut [T]) {
    // The terms of a row first (a plain map, which vectorizes), then their sum.
    let mut terms = vec![T::ZERO; cols];
    for (j, o) in o.iter_mut().enumerate() {
        let base = (r0 + j) * cols;
        let row: [&[T]; N] = ins.map(|s| &s[base..base + cols]);
        for (c, t) in terms.iter_mut().enumerate() {
            // SAFETY: every row slice has exactly `cols` elements, as `terms`, and `c < cols`.
            *t = K::f(row.map(|s| unsafe { *s.get_unchecked(c) }));
        }
        *o = cpu::sum8(cols, |c| terms[c]);
    }
}

/// [`row_sums`] compiled for AVX2 (same operations, same order: identical results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_sums_avx2<T: Elem, K: RowKernel<N>, const N: usize>(ins: [&[T]; N], cols: usize, r0: usize, o: &mut [T]) {
    row_sums::<T, K, N>(ins, cols, r0, o)
}

/// Gradients of the inputs flagged in `want` given the output gradient `g` (one per row).
fn grad_rows<T: Elem, K: RowKernel<N>, const N: usize>(ins: [&[T]; N], g: &[T], want: [bool; N]) -> Vec<Option<Vec<T>>> {
    let n = ins[0].len();
    let rows = g.len();
    let cols = n.checked_div(rows).unwrap_or(0);
    let slots: Vec<usize> = (0..N).filter(|&k| want[k]).collect();
    let mut outs: Vec<Vec<T>> = slots.iter().map(|_| vec![T::ZERO; n]).collect();
    par_blocks(&mut outs, rows, cols, n, |r0, block| {
        for (out, &k) in block.iter_mut().zip(&slots) {
            match k {
                0 => grad_block_dispatch::<T, K, N, 0>(ins, g, cols, r0, out),
                1 => grad_block_dispatch::<T, K, N, 1>(ins, g, cols, r0, out),
                _ => grad_block_dispatch::<T, K, N, 2>(ins, g, cols, r0, out),
            }
        }
    });
    let mut it = outs.into_iter();
    (0..N).map(|k| if want[k] { it.next() } else { None }).collect()
}

/// [`grad_block`] for input `I`, compiled for AVX2 when the CPU has it.
fn grad_block_dispatch<T: Elem, K: RowKernel<N>, const N: usize, const I: usize>(ins: [&[T]; N], g: &[T], cols: usize, r0: usize, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { grad_block_avx2::<T, K, N, I>(ins, g, cols, r0, out) };
    }
    grad_block::<T, K, N, I>(ins, g, cols, r0, out)
}

/// `out[j·cols + c] = g[r0 + j] · ∂f/∂input_I` over a block of rows starting at `r0`: a plain
/// map per row, which vectorizes (one pass per wanted input).
#[inline(always)]
fn grad_block<T: Elem, K: RowKernel<N>, const N: usize, const I: usize>(ins: [&[T]; N], g: &[T], cols: usize, r0: usize, out: &mut [T]) {
    for (j, orow) in out.chunks_exact_mut(cols.max(1)).enumerate() {
        let (gr, base) = (g[r0 + j], (r0 + j) * cols);
        let row: [&[T]; N] = ins.map(|s| &s[base..base + cols]);
        for (c, o) in orow.iter_mut().enumerate() {
            // SAFETY: every row slice has exactly `cols` elements, as `orow`, and `c < cols`.
            let d = K::df(row.map(|s| unsafe { *s.get_unchecked(c) }));
            *o = gr * d.get(I).copied().unwrap_or(T::ZERO);
        }
    }
}

/// [`grad_block`] compiled for AVX2 (same operations, same order: identical results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn grad_block_avx2<T: Elem, K: RowKernel<N>, const N: usize, const I: usize>(ins: [&[T]; N], g: &[T], cols: usize, r0: usize, out: &mut [T]) {
    grad_block::<T, K, N, I>(ins, g, cols, r0, out)
}

/// Splits each of `outs` (`rows × cols`) into the same blocks of rows and runs
/// `f(first_row, blocks)` per block, across threads when `work` is large.
fn par_blocks<T: Send>(outs: &mut [Vec<T>], rows: usize, cols: usize, work: usize, f: impl Fn(usize, &mut [&mut [T]]) + Sync) {
    if outs.is_empty() || rows == 0 || cols == 0 {
        return;
    }
    let threads = cpu::threads_for(work, cpu::PAR_MIN_WORK).min(rows);
    let rows_per = if threads <= 1 { rows } else { rows.div_ceil(threads) };
    let nblocks = rows.div_ceil(rows_per);
    let mut blocks: Vec<Vec<&mut [T]>> = (0..nblocks).map(|_| Vec::with_capacity(outs.len())).collect();
    for o in outs.iter_mut() {
        for (b, chunk) in o.chunks_mut(rows_per * cols).enumerate() {
            blocks[b].push(chunk);
        }
    }
    if nblocks == 1 {
        f(0, &mut blocks[0]);
        return;
    }
    std::thread::scope(|s| {
        let f = &f;
        let mut it = blocks.into_iter().enumerate();
        let first = it.next();
        for (b, mut block) in it {
            s.spawn(move || f(b * rows_per, &mut block));
        }
        if let Some((_, mut block)) = first {
            f(0, &mut block);
        }
    });
}

fn rows_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The CPU slices of `ts` (all contiguous), held while `f` runs.
fn with_slices<T: Elem, R, const N: usize>(ts: [&Tensor; N], f: impl FnOnce([&[T]; N]) -> R) -> candle_core::Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(N);
    for (st, l) in &guards {
        match &**st {
            Storage::Cpu(s) => slices.push(cpu::slice::<T>(s, l)?),
            _ => candle_core::bail!("ppl fused kernel: expected CPU tensors"),
        }
    }
    let arr: [&[T]; N] = slices.try_into().unwrap_or_else(|_| unreachable!("one slice per tensor"));
    Ok(f(arr))
}

impl<K> Fused<K> {
    fn fwd<const N: usize>(&self, ins: [(&CpuStorage, &Layout); N]) -> candle_core::Result<(CpuStorage, Shape)>
    where
        K: RowKernel<N>,
    {
        let rows = rows_of(&self.shape);
        let out = match ins[0].0 {
            CpuStorage::F32(_) => {
                let mut s: Vec<&[f32]> = Vec::with_capacity(N);
                for (st, l) in ins {
                    s.push(cpu::slice(st, l)?);
                }
                CpuStorage::F32(reduce_rows::<f32, K, N>(s.try_into().unwrap_or_else(|_| unreachable!()), rows))
            }
            CpuStorage::F64(_) => {
                let mut s: Vec<&[f64]> = Vec::with_capacity(N);
                for (st, l) in ins {
                    s.push(cpu::slice(st, l)?);
                }
                CpuStorage::F64(reduce_rows::<f64, K, N>(s.try_into().unwrap_or_else(|_| unreachable!()), rows))
            }
            s => candle_core::bail!("{}: unsupported dtype {:?}", K::NAME, s.dtype()),
        };
        Ok((out, Shape::from(self.shape.clone())))
    }

    fn bwd<const N: usize>(&self, args: [&Tensor; N], g: &Tensor) -> candle_core::Result<Vec<Option<Tensor>>>
    where
        K: RowKernel<N>,
    {
        let want = args.map(|a| a.track_op());
        let g = g.contiguous()?;
        let shape = args[0].dims().to_vec();
        match g.dtype() {
            DType::F32 => with_slices::<f32, _, 1>([&g], |[gs]| with_slices::<f32, _, N>(args, |ins| to_tensors(grad_rows::<f32, K, N>(ins, gs, want), &shape)))??,
            _ => with_slices::<f64, _, 1>([&g], |[gs]| with_slices::<f64, _, N>(args, |ins| to_tensors(grad_rows::<f64, K, N>(ins, gs, want), &shape)))??,
        }
    }
}

fn to_tensors<T: Elem>(v: Vec<Option<Vec<T>>>, shape: &[usize]) -> candle_core::Result<Vec<Option<Tensor>>> {
    v.into_iter().map(|g| g.map(|g| cpu::tensor(g, shape)).transpose()).collect()
}

impl<K: RowKernel<2>> CustomOp2 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd([(s1, l1), (s2, l2)])
    }
    fn bwd(&self, a1: &Tensor, a2: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let mut v = self.bwd([a1, a2], g)?.into_iter();
        Ok((v.next().flatten(), v.next().flatten()))
    }
}

impl<K: RowKernel<3>> CustomOp3 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.fwd([(s1, l1), (s2, l2), (s3, l3)])
    }
    fn bwd(&self, a1: &Tensor, a2: &Tensor, a3: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut v = self.bwd([a1, a2, a3], g)?.into_iter();
        Ok((v.next().flatten(), v.next().flatten(), v.next().flatten()))
    }
}

// ---------------------------------------------------------------------------------------------
// Categorical: out[row] = Σ_c (l[r, idx[r]] - logsumexp(l[r, :])) with r = row·cols + c.

struct CategoricalOp {
    idx: Vec<u32>,
    k: usize,
    shape: Vec<usize>,
}

/// `(max, log Σ exp(l - max))` of one row of logits.
#[inline(always)]
fn lse_parts<T: Elem>(l: &[T]) -> (T, T) {
    let mut m = l[0];
    for &x in l {
        if x > m {
            m = x;
        }
    }
    (m, cpu::sum4(l.len(), |i| (l[i] - m).exp()).ln())
}

fn categorical_fwd<T: Elem>(l: &[T], idx: &[u32], k: usize, rows: usize) -> Vec<T> {
    let n = idx.len();
    let cols = n.checked_div(rows).unwrap_or(0);
    let mut out = vec![T::ZERO; rows];
    cpu::par_rows(&mut out, 1, n * k, |r0, o| {
        for (j, o) in o.iter_mut().enumerate() {
            let mut acc = T::ZERO;
            for c in 0..cols {
                let r = (r0 + j) * cols + c;
                let lr = &l[r * k..(r + 1) * k];
                let (m, lse) = lse_parts(lr);
                acc += lr[idx[r] as usize] - m - lse;
            }
            *o = acc;
        }
    });
    out
}

fn categorical_bwd<T: Elem>(l: &[T], idx: &[u32], k: usize, g: &[T]) -> Vec<T> {
    let n = idx.len();
    let rows = g.len();
    let cols = n.checked_div(rows).unwrap_or(0);
    let mut out = vec![T::ZERO; n * k];
    cpu::par_rows(&mut out, cols * k, n * k, |r0, o| {
        for (j, orow) in o.chunks_mut((cols * k).max(1)).enumerate() {
            let gr = g[r0 + j];
            for c in 0..cols {
                let r = (r0 + j) * cols + c;
                let lr = &l[r * k..(r + 1) * k];
                let (m, lse) = lse_parts(lr);
                let dst = &mut orow[c * k..(c + 1) * k];
                for (d, &x) in dst.iter_mut().zip(lr) {
                    *d = -gr * (x - m - lse).exp();
                }
                dst[idx[r] as usize] += gr;
            }
        }
    });
    out
}

impl CustomOp1 for CategoricalOp {
    fn name(&self) -> &'static str {
        "ppl-categorical-logits-log-prob"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let rows = rows_of(&self.shape);
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(categorical_fwd(cpu::slice::<f32>(s, l)?, &self.idx, self.k, rows)),
            CpuStorage::F64(_) => CpuStorage::F64(categorical_fwd(cpu::slice::<f64>(s, l)?, &self.idx, self.k, rows)),
            s => candle_core::bail!("categorical_logits_log_prob: unsupported dtype {:?}", s.dtype()),
        };
        Ok((out, Shape::from(self.shape.clone())))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if !arg.track_op() {
            return Ok(None);
        }
        let g = g.contiguous()?;
        let shape = arg.dims().to_vec();
        let grad = match g.dtype() {
            DType::F32 => with_slices::<f32, _, 2>([arg, &g], |[l, gs]| cpu::tensor(categorical_bwd(l, &self.idx, self.k, gs), &shape))??,
            _ => with_slices::<f64, _, 2>([arg, &g], |[l, gs]| cpu::tensor(categorical_bwd(l, &self.idx, self.k, gs), &shape))??,
        };
        Ok(Some(grad))
    }
}
