//! `log Σ exp` over one axis, the reduction every log-sum-exp elimination of the contraction
//! performs: on the CPU one fused pass forward (a shifted sum of exponentials per output) and one
//! backward (`grad · exp(x − out)`), instead of the ~10 Candle ops of the composed version
//! (max, abs, lt, where, zeros, sub, exp, sum, log, add, squeeze, each with its backward);
//! elsewhere the composed version. Both are safe where every entry along the axis is `-inf`: the
//! result is `-inf` and every gradient stays finite.

use crate::dist::kernels::cpu_kernels;
use crate::error::Result;
use crate::nn::cpu::{Elem, map2_vec, par_rows, slice};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Shape, Tensor};

/// `log Σ_axis exp(t)` with `axis` removed: the fused kernel for f32/f64 CPU tensors (made
/// contiguous first), else [`composed`].
pub(crate) fn log_sum_exp(t: &Tensor, axis: usize) -> Result<Tensor> {
    if cpu_kernels(t.device()) && matches!(t.dtype(), DType::F32 | DType::F64) && axis < t.rank() {
        return Ok(t.contiguous()?.apply_op1(LogSumExp { axis })?);
    }
    composed(t, axis)
}

/// The composed version: the shift is the detached max with non-finite values replaced by 0, so
/// an all `-inf` row gives `log 0 = -inf` (not NaN).
pub(crate) fn composed(t: &Tensor, axis: usize) -> Result<Tensor> {
    let m = t.max_keepdim(axis)?.detach();
    let finite = m.abs()?.lt(f64::INFINITY)?;
    let m = finite.where_cond(&m, &m.zeros_like()?)?;
    let s = t.broadcast_sub(&m)?.exp()?.sum_keepdim(axis)?.log()?;
    Ok((s + m)?.squeeze(axis)?)
}

/// `(outer, n, inner)`: the sizes before, at and after `axis`.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

fn out_shape(dims: &[usize], axis: usize) -> Shape {
    let mut d = dims.to_vec();
    d.remove(axis);
    Shape::from(d)
}

/// `log Σ exp` of one row (the shift: its max, or 0 when that is not finite).
#[inline]
fn lse_row<T: Elem>(row: &[T]) -> T {
    let inf = T::c(f64::INFINITY);
    let mut m = row[0];
    for &v in &row[1..] {
        if v > m {
            m = v;
        }
    }
    if m == inf {
        return inf;
    }
    let shift = if m.abs() < inf { m } else { T::ZERO };
    let mut s = T::ZERO;
    for &v in row {
        s += (v - shift).exp_neg();
    }
    shift + s.ln()
}

/// Outputs `first .. first + out.len()` of the reduction of `x` (`[outer, n, inner]`
/// row-major) over its middle axis.
fn lse_block<T: Elem>(x: &[T], n: usize, inner: usize, first: usize, out: &mut [T]) {
    if inner == 1 {
        for (k, r) in out.iter_mut().enumerate() {
            let o = first + k;
            *r = lse_row(&x[o * n..(o + 1) * n]);
        }
        return;
    }
    let inf = T::c(f64::INFINITY);
    let (mut shift, mut sum, mut terms) = (Vec::new(), Vec::new(), Vec::new());
    let mut done = 0;
    while done < out.len() {
        let (o, i0) = ((first + done) / inner, (first + done) % inner);
        let len = (inner - i0).min(out.len() - done);
        let seg = &mut out[done..done + len];
        let base = o * n * inner + i0;
        // Max along the axis (NaN never wins a comparison, so it shows up in the sum instead).
        seg.copy_from_slice(&x[base..base + len]);
        for j in 1..n {
            let row = &x[base + j * inner..base + j * inner + len];
            for (m, &v) in seg.iter_mut().zip(row) {
                if v > *m {
                    *m = v;
                }
            }
        }
        shift.clear();
        shift.extend(seg.iter().map(|&m| if m.abs() < inf { m } else { T::ZERO }));
        sum.clear();
        sum.resize(len, T::ZERO);
        terms.resize(len, T::ZERO);
        for j in 0..n {
            let row = &x[base + j * inner..base + j * inner + len];
            map2_vec(&mut terms, row, &shift, |v, m| (v - m).exp_neg());
            for (s, &e) in sum.iter_mut().zip(&terms) {
                *s += e;
            }
        }
        for ((r, &s), &m) in seg.iter_mut().zip(&sum).zip(&shift) {
            // `+inf` somewhere along the axis: the sum is `+inf` (exp_neg is for arguments <= 0).
            *r = if *r == inf { inf } else { m + s.ln() };
        }
        done += len;
    }
}

/// `grad_x[o, j, i] = g[o, i] · exp(x[o, j, i] − out[o, i])`, 0 where `out` is `-inf` (every
/// entry along the axis `-inf`), for elements `first ..` of `gx` (`[outer, n, inner]`), in
/// runs along `i`.
fn lse_grad_block<T: Elem>(x: &[T], out: &[T], g: &[T], n: usize, inner: usize, first: usize, gx: &mut [T]) {
    let ninf = T::c(f64::NEG_INFINITY);
    let mut done = 0;
    while done < gx.len() {
        let e = first + done;
        let (o, i0) = (e / (n * inner), e % inner);
        let len = (inner - i0).min(gx.len() - done);
        let (xs, rs, gs) = (&x[e..e + len], &out[o * inner + i0..o * inner + i0 + len], &g[o * inner + i0..o * inner + i0 + len]);
        let run = &mut gx[done..done + len];
        map2_vec(run, xs, rs, |v, r| if r == ninf { T::ZERO } else { (v - r).exp_neg() });
        // Zero stays zero whatever `g` holds (an all `-inf` row's gradient is 0).
        for (d, &gr) in run.iter_mut().zip(gs) {
            *d = if *d == T::ZERO { T::ZERO } else { *d * gr };
        }
        done += len;
    }
}

/// The op: forward and backward kernels.
struct LogSumExp {
    axis: usize,
}

fn fwd<T: Elem>(x: &[T], dims: &[usize], axis: usize) -> Vec<T> {
    let (outer, n, inner) = split(dims, axis);
    let mut out = vec![T::ZERO; outer * inner];
    if n == 0 {
        return vec![T::c(f64::NEG_INFINITY); outer * inner];
    }
    par_rows(&mut out, 1, x.len(), |first, block| lse_block(x, n, inner, first, block));
    out
}

impl CustomOp1 for LogSumExp {
    fn name(&self) -> &'static str {
        "ppl-log-sum-exp"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(fwd(slice::<f32>(s, l)?, dims, self.axis)),
            CpuStorage::F64(_) => CpuStorage::F64(fwd(slice::<f64>(s, l)?, dims, self.axis)),
            _ => candle_core::bail!("ppl log_sum_exp: expected f32 or f64"),
        };
        Ok((out, out_shape(dims, self.axis)))
    }

    /// The gradient by [`LseGrad`] (itself without a backward: no second derivatives).
    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (x, r, g) = (arg.contiguous()?, res.contiguous()?, grad_res.contiguous()?);
        Ok(Some(x.apply_op3_no_bwd(&r, &g, &LseGrad { axis: self.axis })?))
    }
}

/// The gradient kernel: inputs `x`, the forward's result and its gradient.
struct LseGrad {
    axis: usize,
}

fn grad<T: Elem>(x: &[T], out: &[T], g: &[T], dims: &[usize], axis: usize) -> Vec<T> {
    let (_, n, inner) = split(dims, axis);
    let mut gx = vec![T::ZERO; x.len()];
    par_rows(&mut gx, 1, x.len(), |first, block| lse_grad_block(x, out, g, n, inner, first, block));
    gx
}

impl CustomOp3 for LseGrad {
    fn name(&self) -> &'static str {
        "ppl-log-sum-exp-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        r: &CpuStorage,
        lr: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = lx.dims();
        let out = match x {
            CpuStorage::F32(_) => CpuStorage::F32(grad(slice::<f32>(x, lx)?, slice(r, lr)?, slice(g, lg)?, dims, self.axis)),
            CpuStorage::F64(_) => CpuStorage::F64(grad(slice::<f64>(x, lx)?, slice(r, lr)?, slice(g, lg)?, dims, self.axis)),
            _ => candle_core::bail!("ppl log_sum_exp: expected f32 or f64"),
        };
        Ok((out, lx.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    const NINF: f64 = f64::NEG_INFINITY;

    /// A fixed pseudo-random array in [-3, 3) (a linear congruential generator, no RNG crate).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 6.0 - 3.0
            })
            .collect()
    }

    /// `log Σ exp` of plain numbers, the max shift written out (the independent truth).
    fn lse(xs: &[f64]) -> f64 {
        let m = xs.iter().cloned().fold(NINF, f64::max);
        if m == NINF {
            return NINF;
        }
        m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// The reduction of row-major `x` (`dims`) over `axis`, element by element.
    fn lse_by_hand(x: &[f64], dims: &[usize], axis: usize) -> Vec<f64> {
        let (outer, n, inner) = split(dims, axis);
        let mut out = Vec::new();
        for o in 0..outer {
            for i in 0..inner {
                let row: Vec<f64> = (0..n).map(|j| x[(o * n + j) * inner + i]).collect();
                out.push(lse(&row));
            }
        }
        out
    }

    #[test]
    fn values_match_a_direct_computation_on_every_axis() -> Result<()> {
        let dims = [2usize, 3, 4];
        let x = values(24, 1);
        for dtype in [DType::F64, DType::F32] {
            let t = Tensor::from_vec(x.clone(), &dims, &Device::Cpu)?.to_dtype(dtype)?;
            for axis in 0..3 {
                let got: Vec<f64> = log_sum_exp(&t, axis)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
                let want = lse_by_hand(&x, &dims, axis);
                let tol = if dtype == DType::F64 { 1e-12 } else { 2e-6 };
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < tol * w.abs().max(1.0), "{dtype:?} axis {axis}: {got:?} vs {want:?}");
                }
            }
        }
        // A strided (transposed) input gives the transposed reduction.
        let t = Tensor::from_vec(x.clone(), (4, 6), &Device::Cpu)?;
        let got: Vec<f64> = log_sum_exp(&t.t()?, 1)?.to_vec1()?;
        let want = lse_by_hand(&x, &[4, 6], 0);
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-12), "{got:?} vs {want:?}");
        Ok(())
    }

    /// `L(x) = Σ w ⊙ lse(x, axis)`: the kernel's gradient against central finite differences.
    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let dims = [3usize, 4, 5];
        let x0 = values(60, 7);
        for axis in 0..3 {
            let (outer, _, inner) = split(&dims, axis);
            let w = Tensor::from_vec(values(outer * inner, 11), out_shape(&dims, axis), &Device::Cpu)?;
            let loss = |x: &[f64]| -> Result<f64> {
                let t = Tensor::from_vec(x.to_vec(), &dims, &Device::Cpu)?;
                Ok((log_sum_exp(&t, axis)? * &w)?.sum_all()?.to_scalar()?)
            };
            let v = Var::from_tensor(&Tensor::from_vec(x0.clone(), &dims, &Device::Cpu)?)?;
            let l = (log_sum_exp(v.as_tensor(), axis)? * &w)?.sum_all()?;
            let g: Vec<f64> = l.backward()?.get(v.as_tensor()).expect("gradient").flatten_all()?.to_vec1()?;
            let h = 1e-6;
            for k in 0..x0.len() {
                let (mut xp, mut xm) = (x0.clone(), x0.clone());
                xp[k] += h;
                xm[k] -= h;
                let fd = (loss(&xp)? - loss(&xm)?) / (2.0 * h);
                assert!((g[k] - fd).abs() < 1e-7, "axis {axis}, element {k}: autodiff {} vs finite differences {fd}", g[k]);
            }
        }
        Ok(())
    }

    /// Value and gradient of `Σ w ⊙ lse(x)`, fused or composed.
    fn value_and_grad(x: &Tensor, axis: usize, fused: bool) -> Result<(Vec<f64>, Vec<f64>)> {
        let v = Var::from_tensor(x)?;
        let r = if fused { log_sum_exp(v.as_tensor(), axis)? } else { composed(v.as_tensor(), axis)? };
        let w = Tensor::from_vec(values(r.elem_count(), 3), r.dims(), x.device())?.to_dtype(x.dtype())?;
        let g = (r.clone() * w)?.sum_all()?.backward()?;
        let g = g.get(v.as_tensor()).expect("gradient").to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        Ok((r.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?, g))
    }

    #[test]
    fn fused_and_composed_agree_in_value_and_gradient() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let x = Tensor::from_vec(values(3 * 500, 5), (3, 500), &Device::Cpu)?.to_dtype(dtype)?;
            for axis in 0..2 {
                let (rf, gf) = value_and_grad(&x, axis, true)?;
                let (rc, gc) = value_and_grad(&x, axis, false)?;
                let tol = if dtype == DType::F64 { 1e-12 } else { 3e-6 };
                assert!(rf.iter().zip(&rc).all(|(a, b)| (a - b).abs() < tol * b.abs().max(1.0)), "{dtype:?} {axis}");
                assert!(gf.iter().zip(&gc).all(|(a, b)| (a - b).abs() < tol * b.abs().max(1.0)), "{dtype:?} {axis}");
            }
        }
        Ok(())
    }

    /// A row whose entries are all `-inf` gives `-inf` and zero gradients; `-inf` entries of
    /// other rows get zero gradient and leave the rest as the composed version has them.
    #[test]
    fn all_neg_inf_rows_give_neg_inf_and_finite_gradients() -> Result<()> {
        let x = [[NINF, NINF, NINF], [0.5, NINF, -1.0], [2.0, 0.1, -0.3]];
        for dtype in [DType::F32, DType::F64] {
            let t = Tensor::new(&x, &Device::Cpu)?.to_dtype(dtype)?;
            let (r, g) = value_and_grad(&t, 1, true)?;
            assert_eq!(r[0], NINF);
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
            assert!((r[1] - lse(&[0.5, -1.0])).abs() < tol && (r[2] - lse(&x[2])).abs() < tol, "{r:?}");
            assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
            assert_eq!(&g[..3], &[0.0, 0.0, 0.0]);
            assert_eq!(g[4], 0.0);
            let (_, gc) = value_and_grad(&t, 1, false)?;
            assert!(g[3..].iter().zip(&gc[3..]).all(|(a, b)| (a - b).abs() < tol), "{g:?} vs {gc:?}");
            // The same along axis 0 (the strided reduction of the kernel).
            let (r0, g0) = value_and_grad(&t.t()?.contiguous()?, 0, true)?;
            assert_eq!(r0[0], NINF);
            assert!(g0.iter().all(|v| v.is_finite()), "{g0:?}");
        }
        Ok(())
    }

    #[test]
    fn infinities_and_nan_propagate() -> Result<()> {
        let t = Tensor::new(&[[f64::INFINITY, 0.0], [f64::NAN, 1.0], [NINF, f64::INFINITY]], &Device::Cpu)?;
        let r: Vec<f64> = log_sum_exp(&t, 1)?.to_vec1()?;
        assert_eq!(r[0], f64::INFINITY);
        assert!(r[1].is_nan());
        assert_eq!(r[2], f64::INFINITY);
        Ok(())
    }
}
