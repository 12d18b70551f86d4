//! Host-side helpers of the nn kernels: the float element trait, borrowed access to contiguous
//! CPU storage, row-split threading and the matrix products of the linear layer.

use candle_core::{CpuStorage, Layout, Storage, Tensor, WithDType};
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Inputs smaller than this many elements run on the calling thread: below it, spawning a
/// scoped thread (~15 µs) costs more than it saves.
pub(crate) const PAR_MIN_WORK: usize = 1 << 15;

/// Candle's thread count when `work` (elements) reaches `min`, else 1 (see [`num_threads`]).
pub(crate) fn threads_for(work: usize, min: usize) -> usize {
    if work < min { 1 } else { num_threads() }
}

/// Candle's thread count: `RAYON_NUM_THREADS` when set to a positive number, else the number of
/// physical cores, which is read once per process. Candle's own `utils::get_num_threads` parses
/// /proc/cpuinfo on every call when the variable is unset (~20 µs; its matmul asks on every
/// product, which was ~5% of a VAE step's CPU time on 2 cores).
pub(crate) fn num_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let from_env = std::env::var_os("RAYON_NUM_THREADS").and_then(|v| v.to_str()?.parse::<usize>().ok());
    match from_env {
        Some(n) if n > 0 => n,
        _ => *CORES.get_or_init(|| candle_core::utils::get_num_threads().max(1)),
    }
}

/// `a @ b` for `a` `[m, k]` and `b` `[k, n]`, each given as `(elements, row stride, column
/// stride)` (a transposed operand is a swap of its strides), into a new row-major `[m, n]`
/// vector: the gemm call Candle's CPU matmul makes, with the thread count of [`num_threads`] and
/// no zero-fill of the output (gemm writes every element when it does not read the destination).
#[cfg_attr(feature = "openblas", allow(dead_code))] // `Linear` goes through cblas then
pub(crate) fn matmul<T: Elem>(a: (&[T], usize, usize), b: (&[T], usize, usize), (m, k, n): (usize, usize, usize)) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(m * n);
    if k == 0 {
        out.resize(m * n, T::ZERO);
        return out;
    }
    let reach = |(v, rs, cs): (&[T], usize, usize), rows: usize, cols: usize| {
        assert!(rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < v.len(), "ppl matmul: operand out of bounds");
    };
    reach(a, m, k);
    reach(b, k, n);
    // SAFETY: `out` has room for m·n elements and gemm writes each of them exactly once without
    // reading them (`read_dst = false`; the k = 0 case, where it would write nothing, is handled
    // above); the operands' extents were checked against their slices just above.
    unsafe {
        gemm_into(out.as_mut_ptr(), a, b, (m, k, n));
        out.set_len(m * n);
    }
    out
}

/// The gemm call of [`matmul`] into `dst` (row-major `[m, n]`, not read).
///
/// # Safety
/// `dst` must be valid for writes of m·n elements and the operands' strides must stay inside
/// their slices.
#[cfg_attr(feature = "openblas", allow(dead_code))] // `Linear` goes through cblas then
unsafe fn gemm_into<T: Elem>(dst: *mut T, (a, a_rs, a_cs): (&[T], usize, usize), (b, b_rs, b_cs): (&[T], usize, usize), (m, k, n): (usize, usize, usize)) {
    let threads = num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The float types the CPU kernels serve (f32 and f64).
pub(crate) trait Elem:
    WithDType
    + 'static
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
    fn exp_m1(self) -> Self;
    fn tanh(self) -> Self;
    fn abs(self) -> Self;
    fn maxv(self, other: Self) -> Self;
    fn c(x: f64) -> Self;
    /// `exp(self)` for `self <= 0` (or NaN): in f32 a branch-free polynomial that vectorizes
    /// (relative error below 3e-7; results under 1.7e-38 flush to 0), in f64 `exp` itself.
    fn exp_neg(self) -> Self;
    /// `ln(1 + self)` for `self` in `[0, 1]`: in f32 a branch-free series that vectorizes
    /// (relative error below 3e-7), in f64 `ln_1p` itself.
    fn ln_1p_unit(self) -> Self;
    fn is_finite(self) -> bool;
}

/// `softplus(x) = max(x, 0) + ln(1 + exp(-|x|))`, stable for every `x`.
#[inline(always)]
pub(crate) fn softplus<T: Elem>(x: T) -> T {
    x.maxv(T::ZERO) + (-x.abs()).exp_neg().ln_1p_unit()
}

/// `sigmoid(x) = 1 / (1 + exp(-x))`, stable for every `x` (from `exp(-|x|)`).
#[inline(always)]
pub(crate) fn sigmoid<T: Elem>(x: T) -> T {
    let e = (-x.abs()).exp_neg();
    let s = T::ONE / (T::ONE + e);
    if x >= T::ZERO { s } else { e * s }
}

/// See [`Elem::exp_neg`]: `x = k·ln 2 + r` with `|r| <= ln(2)/2`, `exp(r)` by its Taylor
/// polynomial of degree 7 (remainder below 6e-9), times `2^k` built from the exponent bits.
#[inline(always)]
fn exp_neg_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding and subtracting it rounds to an integer
    let xc = if x < -87.0 { -87.0 } else { x };
    let k = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((k as i32 + 127) << 23) as u32);
    if x < -87.0 { 0.0 } else { p * scale }
}

/// See [`Elem::ln_1p_unit`]: `ln(1 + e) = 2·atanh(s)`, `s = e / (2 + e)` in `[0, 1/3]`, by the
/// series `2s·Σ s^(2j)/(2j+1)` to `j = 7` (remainder below 4e-9).
#[inline(always)]
fn ln_1p_unit_f32(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * series
}

macro_rules! impl_elem {
    ($t:ty, $exp_neg:expr, $ln_1p_unit:expr) => {
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
            #[inline(always)]
            fn exp_neg(self) -> Self {
                $exp_neg(self)
            }
            #[inline(always)]
            fn ln_1p_unit(self) -> Self {
                $ln_1p_unit(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
        }
    };
}
impl_elem!(f32, exp_neg_f32, ln_1p_unit_f32);
impl_elem!(f64, f64::exp, f64::ln_1p);

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
    let threads = threads_for(work, PAR_MIN_WORK).min(rows.max(1));
    if threads <= 1 {
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

/// `out[i] = f(a[i])`, compiled for AVX2 when the CPU has it (so that the loop vectorizes
/// 8 lanes wide; same operations, same results).
#[inline(always)]
pub(crate) fn map_vec<T: Copy, U>(out: &mut [U], a: &[T], f: impl Fn(T) -> U) {
    #[inline(always)]
    fn body<T: Copy, U>(out: &mut [U], a: &[T], f: impl Fn(T) -> U) {
        out.iter_mut().zip(a).for_each(|(o, &x)| *o = f(x));
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: Copy, U>(out: &mut [U], a: &[T], f: impl Fn(T) -> U) {
            body(out, a, f)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(out, a, f) };
        }
    }
    body(out, a, f)
}

/// Whether every element of `v` satisfies `ok`: a branch-free fold (it vectorizes, where `all`
/// would stop early but test one element at a time), compiled for AVX2 when the CPU has it
/// (twice SSE2's speed on a gradient check of 640k floats).
#[inline(always)]
pub(crate) fn all_vec<T: Copy>(v: &[T], ok: impl Fn(T) -> bool) -> bool {
    #[inline(always)]
    fn body<T: Copy>(v: &[T], ok: impl Fn(T) -> bool) -> bool {
        v.iter().fold(true, |acc, &x| acc & ok(x))
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: Copy>(v: &[T], ok: impl Fn(T) -> bool) -> bool {
            body(v, ok)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(v, ok) };
        }
    }
    body(v, ok)
}

/// Whether every element of `v` is finite (see [`all_vec`]).
pub(crate) fn all_finite<T: Elem>(v: &[T]) -> bool {
    all_vec(v, T::is_finite)
}

/// `out[i] = f(a[i], b[i])`, as [`map_vec`].
#[inline(always)]
pub(crate) fn map2_vec<T: Copy, U>(out: &mut [U], a: &[T], b: &[T], f: impl Fn(T, T) -> U) {
    #[inline(always)]
    fn body<T: Copy, U>(out: &mut [U], a: &[T], b: &[T], f: impl Fn(T, T) -> U) {
        out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&x, &y))| *o = f(x, y));
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: Copy, U>(out: &mut [U], a: &[T], b: &[T], f: impl Fn(T, T) -> U) {
            body(out, a, b, f)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(out, a, b, f) };
        }
    }
    body(out, a, b, f)
}

/// `Σ_i f(i)` over `0..n` with eight independent accumulators, one per vector lane: the
/// compiler turns the unrolled lanes into vector operations.
#[inline(always)]
pub(crate) fn sum8<T: Elem>(n: usize, f: impl Fn(usize) -> T) -> T {
    let mut acc = [T::ZERO; 8];
    let full = n / 8 * 8;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += 8;
    }
    let mut tail = T::ZERO;
    while i < n {
        tail += f(i);
        i += 1;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `matmul` never reads its (uninitialised) output: gemm into a NaN-filled buffer gives the
    /// triple-loop product, for every shape class gemm special-cases (vector × matrix, matrix ×
    /// vector, tiny, large, k = 1, transposed operands); `k = 0` gives zeros.
    #[test]
    fn matmul_writes_every_element_and_ignores_the_destination() {
        let shapes = [(1, 7, 5), (6, 9, 1), (3, 4, 2), (17, 1, 19), (130, 70, 33), (40, 300, 90)];
        for &(m, k, n) in &shapes {
            for transposed in [false, true] {
                let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
                let b: Vec<f64> = (0..k * n).map(|i| ((i * 5 + 1) % 13) as f64 * 0.5 - 3.0).collect();
                // `a` stored row-major, or its transpose stored row-major (then read with swapped strides).
                let (a_store, a_strides) = if transposed {
                    let mut at = vec![0.0; m * k];
                    for i in 0..m {
                        for j in 0..k {
                            at[j * m + i] = a[i * k + j];
                        }
                    }
                    (at, (1, m))
                } else {
                    (a.clone(), (k, 1))
                };
                let mut want = vec![0.0; m * n];
                for i in 0..m {
                    for j in 0..n {
                        want[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
                    }
                }
                let mut dst = vec![f64::NAN; m * n];
                // SAFETY: `dst` holds m·n elements; the strides describe the two buffers.
                unsafe { gemm_into(dst.as_mut_ptr(), (&a_store, a_strides.0, a_strides.1), (&b, n, 1), (m, k, n)) };
                assert_eq!(dst, want, "m={m} k={k} n={n} transposed={transposed}");
                let got = matmul((&a_store, a_strides.0, a_strides.1), (&b, n, 1), (m, k, n));
                assert_eq!(got, want, "matmul m={m} k={k} n={n}");
                let f: Vec<f32> = matmul((&a.iter().map(|&x| x as f32).collect::<Vec<_>>(), k, 1), (&b.iter().map(|&x| x as f32).collect::<Vec<_>>(), n, 1), (m, k, n));
                assert!(f.iter().zip(&want).all(|(x, y)| (*x as f64 - y).abs() <= 1e-4 * y.abs().max(1.0)), "f32 m={m} k={k} n={n}");
            }
        }
        assert_eq!(matmul::<f32>((&[], 0, 1), (&[], 3, 1), (2, 0, 3)), vec![0.0; 6]);
    }

    /// The f32 polynomials against f64 `exp` / `ln_1p` over their whole domains (a fine grid
    /// plus the edges), relative error below 3e-7 (about 2.5 ulp).
    #[test]
    fn fast_f32_exp_and_ln_1p_are_accurate() {
        let mut worst = (0f64, 0f64);
        for i in 0..=200_000 {
            let x = -87.0 * (i as f64 / 200_000.0).powi(2);
            let got = exp_neg_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            let rel = (got - want).abs() / want;
            if rel > worst.0 {
                worst = (rel, x);
            }
        }
        assert!(worst.0 < 3e-7, "exp_neg: relative error {} at {}", worst.0, worst.1);
        assert_eq!(exp_neg_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_neg_f32(-100.0), 0.0);
        assert_eq!(exp_neg_f32(0.0), 1.0);
        assert!(exp_neg_f32(f32::NAN).is_nan());
        let mut worst = (0f64, 0f64);
        for i in 1..=200_000 {
            let e = (i as f64 / 200_000.0).powi(3);
            let e32 = e as f32 as f64;
            let rel = (ln_1p_unit_f32(e32 as f32) as f64 - e32.ln_1p()).abs() / e32.ln_1p();
            if rel > worst.0 {
                worst = (rel, e);
            }
        }
        assert!(worst.0 < 3e-7, "ln_1p_unit: relative error {} at {}", worst.0, worst.1);
        assert_eq!(ln_1p_unit_f32(0.0), 0.0);
        assert!(ln_1p_unit_f32(f32::NAN).is_nan());
        assert_eq!(ln_1p_unit_f32(1e-30), 1e-30);
        // softplus and sigmoid across the range, against f64 (below exp(-87) ≈ 1.65e-38, at
        // the edge of f32's normal range, results flush to 0).
        for i in -400..=400 {
            let x = i as f32 * 0.25;
            let (sp, sg) = (softplus(x) as f64, sigmoid(x) as f64);
            let xf = x as f64;
            let (sp_want, sg_want) = (xf.max(0.0) + (-xf.abs()).exp().ln_1p(), 1.0 / (1.0 + (-xf).exp()));
            assert!((sp - sp_want).abs() <= 4e-7 * sp_want + 1.7e-38, "softplus({x}) = {sp}, want {sp_want}");
            assert!((sg - sg_want).abs() <= 4e-7 * sg_want + 1.7e-38, "sigmoid({x}) = {sg}, want {sg_want}");
        }
    }
}
