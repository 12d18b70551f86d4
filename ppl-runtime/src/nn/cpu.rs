//! Host-side helpers of the nn kernels: the float element trait, borrowed access to contiguous
//! CPU storage, row-split threading and the matrix products of the linear layer.

use candle_core::{CpuStorage, Layout, Storage, Tensor, WithDType};
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Inputs smaller than this many elements run on the calling thread: below it, spawning a
/// scoped thread (~15 µs) costs more than it saves.
pub(crate) const PAR_MIN_WORK: usize = 1 << 15;

/// The float types the CPU kernels serve (f32 and f64).
pub(crate) trait Elem:
    WithDType
    + Copy
    + Default
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    const ZERO: Self;
    const ONE: Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn exp_m1(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn maxv(self, other: Self) -> Self;
    fn c(x: f64) -> Self;
}

macro_rules! impl_elem {
    ($t:ty) => {
        impl Elem for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                <$t>::exp_m1(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn maxv(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn c(x: f64) -> Self {
                x as $t
            }
        }
    };
}
impl_elem!(f32);
impl_elem!(f64);

/// The contiguous elements of CPU storage `s` under layout `l`.
pub(crate) fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let v = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("ppl nn kernel: expected a contiguous input"),
    }
}

/// Runs `f` on the contiguous elements of CPU tensor `t`.
pub(crate) fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> candle_core::Result<R> {
    let (st, l) = t.storage_and_layout();
    match &*st {
        Storage::Cpu(s) => Ok(f(slice(s, l)?)),
        _ => candle_core::bail!("ppl nn kernel: expected a CPU tensor"),
    }
}

/// A CPU tensor of `shape` owning `v`.
pub(crate) fn tensor<T: WithDType>(v: Vec<T>, shape: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}

/// Splits `out` (rows of `per_row` elements) into contiguous blocks of rows and runs
/// `f(first_row, block)` on each, across Candle's thread count when `work` (elements touched)
/// is large enough; the calling thread takes the first block.
pub(crate) fn par_rows<U: Send>(out: &mut [U], per_row: usize, work: usize, f: impl Fn(usize, &mut [U]) + Sync) {
    let rows = out.len().checked_div(per_row).unwrap_or(0);
    let threads = candle_core::utils::get_num_threads().max(1).min(rows.max(1));
    if work < PAR_MIN_WORK || threads <= 1 {
        f(0, out);
        return;
    }
    let rows_per = rows.div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let mut blocks = out.chunks_mut(rows_per * per_row).enumerate();
        let first = blocks.next();
        for (j, block) in blocks {
            s.spawn(move || f(j * rows_per, block));
        }
        if let Some((_, block)) = first {
            f(0, block);
        }
    });
}

/// Column sums of the row-major `[rows, n]` matrix `g` (a row loop: vectorizes, unlike a
/// strided reduction over dim 0).
pub(crate) fn col_sum<T: Elem>(g: &[T], n: usize) -> Vec<T> {
    let mut acc = vec![T::ZERO; n];
    for row in g.chunks_exact(n) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    acc
}

/// `Σ_i f(i)` over `0..n` with four independent accumulators (breaks the add dependency chain).
#[inline(always)]
pub(crate) fn sum4<T: Elem>(n: usize, f: impl Fn(usize) -> T) -> T {
    let (mut a0, mut a1, mut a2, mut a3) = (T::ZERO, T::ZERO, T::ZERO, T::ZERO);
    let mut i = 0;
    while i + 4 <= n {
        a0 += f(i);
        a1 += f(i + 1);
        a2 += f(i + 2);
        a3 += f(i + 3);
        i += 4;
    }
    while i < n {
        a0 += f(i);
        i += 1;
    }
    (a0 + a1) + (a2 + a3)
}
