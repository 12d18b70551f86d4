//! Batched, differentiable linear algebra that Candle lacks: Cholesky, triangular solves, log-determinants.
//!
//! Matrices are the two rightmost dims of a tensor; all leading dims are batch dims and
//! broadcast. On the CPU, [`cholesky`] and [`solve_triangular`] are Candle custom ops with
//! kernels for f32 and f64 (computed in f64) and backward passes written with differentiable
//! tensor ops, so gradients flow through them. On other devices (and on the CPU when
//! [`kernels::force_generic`] is set) they are loops of Candle ops over the columns (Cholesky)
//! or rows (solves), in the input's dtype, differentiated by Candle's autodiff, with the same
//! gradients as the kernels (symmetric for Cholesky); `n` steps of a batched matmul each, meant
//! for the small matrices of MVN and LKJ. Both paths check positive definiteness and
//! singularity and report them the same way (the generic path reads its pivots back to the
//! host once per call for that).
//!
//! References:
//! - I. Murray (2016), "Differentiation of the Cholesky decomposition", arXiv:1602.07527.
//! - M. Giles (2008), "An extended collection of matrix derivative results for forward and
//!   reverse mode algorithmic differentiation" (triangular solve).

use crate::dist::args::broadcast_shapes;
use crate::dist::kernels;
use crate::error::{Error, Result};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};

/// Marker that starts kernel error messages meant to become [`Error::InvalidArgument`].
const USER_ERR: &str = "ppl-linalg: ";

/// Host copy (f64) of a contiguous CPU storage, with whether it was f32.
fn host(s: &CpuStorage, l: &Layout, op: &str) -> candle_core::Result<(Vec<f64>, bool)> {
    let (a, b) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("`{op}` needs a contiguous input")))?;
    match s {
        CpuStorage::F64(v) => Ok((v[a..b].to_vec(), false)),
        CpuStorage::F32(v) => Ok((v[a..b].iter().map(|&x| x as f64).collect(), true)),
        s => candle_core::bail!("`{op}` needs an f32 or f64 tensor, got {:?}", s.dtype()),
    }
}

fn store(v: Vec<f64>, f32: bool) -> CpuStorage {
    if f32 { CpuStorage::F32(v.into_iter().map(|x| x as f32).collect()) } else { CpuStorage::F64(v) }
}

/// Maps kernel errors carrying [`USER_ERR`] to ppl errors for function `func`, argument `arg`.
fn user_err<'a>(func: &'a str, arg: &'a str) -> impl Fn(candle_core::Error) -> Error + 'a {
    move |e| match e {
        candle_core::Error::Msg(m) if m.starts_with(USER_ERR) => {
            Error::invalid_arg(format!("`{func}`"), arg, m[USER_ERR.len()..].to_string())
        }
        e => e.into(),
    }
}

/// Checks that `a` has rank >= 2 and square matrices; names `func`, `arg` and the shape.
fn check_square(func: &str, arg: &str, a: &Tensor) -> Result<usize> {
    let d = a.dims();
    if d.len() < 2 || d[d.len() - 1] != d[d.len() - 2] {
        return Err(Error::ShapeMismatch {
            context: format!("`{func}`: argument `{arg}` must be a (batch of) square matrices"),
            expected: "[..., n, n]".into(),
            got: format!("{d:?}"),
            hint: None,
        });
    }
    Ok(d[d.len() - 1])
}

/// Lower Cholesky factor kernel.
struct Cholesky;

impl CustomOp1 for Cholesky {
    fn name(&self) -> &'static str {
        "cholesky"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, f32) = host(s, l, "cholesky")?;
        let dims = l.dims();
        let n = dims[dims.len() - 1];
        let mut out = vec![0.0; a.len()];
        if n == 0 {
            return Ok((store(out, f32), l.shape().clone()));
        }
        for (b, (am, lm)) in a.chunks(n * n).zip(out.chunks_mut(n * n)).enumerate() {
            for i in 0..n {
                for j in 0..=i {
                    let s: f64 = (0..j).map(|k| lm[i * n + k] * lm[j * n + k]).sum();
                    if i == j {
                        let d = am[i * n + i] - s;
                        if d.is_nan() || d <= 0.0 || d.is_infinite() {
                            return Err(candle_core::Error::Msg(format!(
                                "{USER_ERR}matrix {b} of the batch (input shape {dims:?}) is not positive definite: \
                                 pivot {i} is {d}"
                            )));
                        }
                        lm[i * n + i] = d.sqrt();
                    } else {
                        lm[i * n + j] = (am[i * n + j] - s) / lm[j * n + j];
                    }
                }
            }
        }
        Ok((store(out, f32), l.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, l: &Tensor, gl: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // Murray (2016), as in PyTorch: Φ = tril(Lᵀ Ḡ) made symmetric with a halved diagonal,
        // then Ā = L⁻ᵀ Φ L⁻¹ (symmetric, since the kernel reads only the lower triangle of a
        // symmetric input).
        let go = || -> Result<Tensor> {
            let p = tril(&bmm(&mt(l)?, gl)?, 0)?;
            let phi = ((&p + mt(&tril(&p, -1)?)?)? * 0.5)?;
            let x = solve_triangular(&mt(l)?, &phi, false, true)?;
            solve_triangular(l, &x, true, false)
        };
        go().map(Some).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// The lower Cholesky factor `L` of a batch of symmetric positive-definite matrices `a = L Lᵀ`.
///
/// Only the lower triangle of `a` is read. Differentiable (the gradient is symmetric, as in
/// PyTorch). Errors name the shape for a non-square input and the batch index and pivot for a
/// matrix that is not positive definite.
pub fn cholesky(a: &Tensor) -> Result<Tensor> {
    check_square("cholesky", "a", a)?;
    if kernels::cpu_kernels(a.device()) {
        a.contiguous()?.apply_op1(Cholesky).map_err(user_err("cholesky", "a"))
    } else {
        cholesky_generic(a)
    }
}

/// Errors unless `t` is f32 or f64 (the dtypes the CPU kernels take).
fn check_dtype(func: &str, arg: &str, t: &Tensor) -> Result<()> {
    if supported_dtype(t.dtype()) {
        Ok(())
    } else {
        Err(Error::invalid_arg(format!("`{func}`"), arg, format!("needs an f32 or f64 tensor, got {:?}", t.dtype())))
    }
}

/// The rows of a matrix on the host, in f64 (copied before the cast: Metal has no f64).
fn host_f64(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Ok(t.to_device(&candle_core::Device::Cpu)?.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

/// [`cholesky`] from Candle ops: column `j` of `L` is `(a[:, j] - L[:, :j] L[j, :j]ᵀ) / √pivot`
/// below the diagonal. The input is the symmetric matrix built from `a`'s lower triangle, and
/// its gradient goes through `(a + aᵀ)/2`, so values and gradients match the kernel.
fn cholesky_generic(a: &Tensor) -> Result<Tensor> {
    check_dtype("cholesky", "a", a)?;
    let dims = a.dims().to_vec();
    let n = dims[dims.len() - 1];
    let nb: usize = dims[..dims.len() - 2].iter().product();
    if n == 0 || nb == 0 {
        return Ok(a.zeros_like()?);
    }
    let ad = a.detach();
    let mut s = (tril(&ad, 0)? + mt(&tril(&ad, -1)?)?)?;
    if a.track_op() {
        let e = (a - &ad)?;
        s = (s + ((&e + mt(&e)?)? * 0.5)?)?;
    }
    let s = s.reshape((nb, n, n))?;
    let rows = Tensor::arange(0u32, n as u32, a.device())?;
    let mut l: Option<Tensor> = None; // [nb, n, j]
    let mut pivots = Vec::with_capacity(n);
    for j in 0..n {
        let mut c = s.narrow(2, j, 1)?; // [nb, n, 1]
        if let Some(l) = &l {
            c = (c - l.matmul(&l.narrow(1, j, 1)?.transpose(1, 2)?.contiguous()?)?)?;
        }
        let pivot = c.narrow(1, j, 1)?; // [nb, 1, 1]
        pivots.push(pivot.detach());
        let below = rows.ge(j as u32)?.to_dtype(a.dtype())?.reshape((1, n, 1))?;
        let col = c.broadcast_div(&pivot.sqrt()?)?.broadcast_mul(&below)?;
        l = Some(match l {
            None => col,
            Some(l) => Tensor::cat(&[&l, &col], 2)?,
        });
    }
    // One read-back of the pivots to report a matrix that is not positive definite.
    let piv = host_f64(&Tensor::cat(&pivots, 2)?.reshape((nb, n))?)?;
    for (b, row) in piv.iter().enumerate() {
        if let Some((i, &d)) = row.iter().enumerate().find(|(_, d)| d.is_nan() || **d <= 0.0 || d.is_infinite()) {
            return Err(Error::invalid_arg(
                "`cholesky`",
                "a",
                format!("matrix {b} of the batch (input shape {dims:?}) is not positive definite: pivot {i} is {d}"),
            ));
        }
    }
    let l = l.expect("n > 0 columns");
    Ok(l.reshape(dims)?)
}

/// Left triangular solve kernel: `A X = B` for `A` lower (or upper) triangular, equal batch dims.
struct SolveLeft {
    lower: bool,
}

impl CustomOp2 for SolveLeft {
    fn name(&self) -> &'static str {
        "solve_triangular"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, f32) = host(s1, l1, "solve_triangular")?;
        let (b, _) = host(s2, l2, "solve_triangular")?;
        let ad = l1.dims();
        let bd = l2.dims();
        let n = ad[ad.len() - 1];
        let k = bd[bd.len() - 1];
        let mut x = b;
        if n == 0 || k == 0 {
            return Ok((store(x, f32), l2.shape().clone()));
        }
        for (bi, (am, xm)) in a.chunks(n * n).zip(x.chunks_mut(n * k)).enumerate() {
            let rows: Vec<usize> = if self.lower { (0..n).collect() } else { (0..n).rev().collect() };
            for &i in &rows {
                let d = am[i * n + i];
                if d == 0.0 {
                    return Err(candle_core::Error::Msg(format!(
                        "{USER_ERR}triangular matrix {bi} of the batch (shape {ad:?}) is singular: diagonal element {i} is 0"
                    )));
                }
                let js = if self.lower { 0..i } else { i + 1..n };
                for c in 0..k {
                    let s: f64 = js.clone().map(|j| am[i * n + j] * xm[j * k + c]).sum();
                    xm[i * k + c] = (xm[i * k + c] - s) / d;
                }
            }
        }
        Ok((store(x, f32), l2.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        _b: &Tensor,
        x: &Tensor,
        gx: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // X = A⁻¹B: B̄ = A⁻ᵀ X̄, Ā = -B̄ Xᵀ restricted to A's triangle.
        let go = || -> Result<(Tensor, Tensor)> {
            let gb = solve_left(&mt(a)?, &gx.contiguous()?, !self.lower)?;
            let ga = bmm(&gb, &mt(x)?)?.neg()?;
            let ga = if self.lower { tril(&ga, 0)? } else { triu(&ga, 0)? };
            Ok((ga, gb))
        };
        let (ga, gb) = go().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((Some(ga), Some(gb)))
    }
}

fn solve_left(a: &Tensor, b: &Tensor, lower: bool) -> Result<Tensor> {
    if kernels::cpu_kernels(a.device()) {
        a.contiguous()?.apply_op2(&b.contiguous()?, SolveLeft { lower }).map_err(user_err("solve_triangular", "l"))
    } else {
        solve_left_generic(a, b, lower)
    }
}

/// [`solve_left`] from Candle ops: forward (or back) substitution, one row of `X` per step,
/// reading only `a`'s triangle, so Candle's autodiff gives the kernel's gradients.
fn solve_left_generic(a: &Tensor, b: &Tensor, lower: bool) -> Result<Tensor> {
    check_dtype("solve_triangular", "l", a)?;
    check_dtype("solve_triangular", "b", b)?;
    if a.dtype() != b.dtype() {
        return Err(Error::DTypeMismatch {
            context: "`solve_triangular`".into(),
            a: "l".into(),
            a_dtype: a.dtype(),
            b: "b".into(),
            b_dtype: b.dtype(),
        });
    }
    let (ad, bd) = (a.dims().to_vec(), b.dims().to_vec());
    let n = ad[ad.len() - 1];
    let k = bd[bd.len() - 1];
    let nb: usize = ad[..ad.len() - 2].iter().product();
    if n == 0 || k == 0 || nb == 0 {
        return Ok(b.clone());
    }
    let a3 = a.reshape((nb, n, n))?;
    let b3 = b.reshape((nb, n, k))?;
    // One read-back of the diagonal to report a singular matrix, in the kernel's row order.
    let diag = host_f64(&diagonal(&a3)?)?;
    for (bi, d) in diag.iter().enumerate() {
        let mut order: Box<dyn Iterator<Item = usize>> = if lower { Box::new(0..n) } else { Box::new((0..n).rev()) };
        if let Some(i) = order.find(|&i| d[i] == 0.0) {
            return Err(Error::invalid_arg(
                "`solve_triangular`",
                "l",
                format!("triangular matrix {bi} of the batch (shape {ad:?}) is singular: diagonal element {i} is 0"),
            ));
        }
    }
    let mut x: Option<Tensor> = None; // the rows solved so far, in order
    for step in 0..n {
        let i = if lower { step } else { n - 1 - step };
        let row = a3.narrow(1, i, 1)?; // [nb, 1, n]
        let mut r = b3.narrow(1, i, 1)?; // [nb, 1, k]
        if let Some(x) = &x {
            let known = if lower { row.narrow(2, 0, i)? } else { row.narrow(2, i + 1, n - i - 1)? };
            r = (r - known.contiguous()?.matmul(x)?)?;
        }
        let xi = r.broadcast_div(&row.narrow(2, i, 1)?)?;
        x = Some(match x {
            None => xi,
            Some(x) if lower => Tensor::cat(&[&x, &xi], 1)?,
            Some(x) => Tensor::cat(&[&xi, &x], 1)?,
        });
    }
    Ok(x.expect("n > 0 rows").reshape(bd)?)
}

/// Solves `L X = B` (`left`) or `X L = B` (not `left`) for `X`, with `L` lower (`lower`) or
/// upper triangular.
///
/// Shapes: `l` is `[..., n, n]`; `b` is `[..., n, k]` when `left`, `[..., k, n]` otherwise; batch
/// dims broadcast. Only the triangle of `l` named by `lower` is read. Differentiable in both
/// arguments. Errors name the shapes when they do not fit, and a singular `l`.
pub fn solve_triangular(l: &Tensor, b: &Tensor, lower: bool, left: bool) -> Result<Tensor> {
    let n = check_square("solve_triangular", "l", l)?;
    let bd = b.dims();
    let bn = if left { bd.len().checked_sub(2).map(|i| bd[i]) } else { bd.last().copied() };
    let batch = if bd.len() >= 2 { broadcast_shapes(&l.dims()[..l.rank() - 2], &bd[..bd.len() - 2]) } else { None };
    let (Some(batch), Some(bn)) = (batch, bn) else {
        return Err(shape_err(l, b, left));
    };
    if bn != n {
        return Err(shape_err(l, b, left));
    }
    let mut ls = batch.clone();
    ls.extend([n, n]);
    let mut bs = batch;
    bs.extend_from_slice(&bd[bd.len() - 2..]);
    let l = if l.dims() == ls.as_slice() { l.clone() } else { l.broadcast_as(ls)? };
    let b = if b.dims() == bs.as_slice() { b.clone() } else { b.broadcast_as(bs)? };
    if left {
        solve_left(&l, &b, lower)
    } else {
        // X L = B  ⇔  Lᵀ Xᵀ = Bᵀ.
        mt(&solve_left(&mt(&l)?, &mt(&b)?, !lower)?)
    }
}

fn shape_err(l: &Tensor, b: &Tensor, left: bool) -> Error {
    let expected = if left {
        "[..., n, k] with n matching `l`'s [..., n, n]"
    } else {
        "[..., k, n] with n matching `l`'s [..., n, n]"
    };
    Error::ShapeMismatch {
        context: format!("`solve_triangular`: `l` of shape {:?} and `b` of shape {:?} do not fit", l.dims(), b.dims()),
        expected: expected.into(),
        got: format!("{:?}", b.dims()),
        hint: None,
    }
}

/// Solves `A X = B` given the lower Cholesky factor `l` of `A = L Lᵀ` (`b` is `[..., n, k]`).
pub fn cholesky_solve(b: &Tensor, l: &Tensor) -> Result<Tensor> {
    let y = solve_triangular(l, b, true, true)?;
    solve_triangular(&mt(l)?, &y, false, true)
}

/// `A⁻¹` given the lower Cholesky factor `l` of `A = L Lᵀ`.
pub fn cholesky_inverse(l: &Tensor) -> Result<Tensor> {
    let n = check_square("cholesky_inverse", "l", l)?;
    let eye = Tensor::eye(n, l.dtype(), l.device())?;
    let li = solve_triangular(l, &eye, true, true)?;
    bmm(&mt(&li)?, &li)
}

/// `log det(L Lᵀ) = 2 Σᵢ log Lᵢᵢ`, of shape `[...]`, for a batch of Cholesky factors `l`.
pub fn log_det_from_cholesky(l: &Tensor) -> Result<Tensor> {
    Ok((diagonal(l)?.log()?.sum(l.rank() - 2)? * 2.0)?)
}

/// `‖L⁻¹ x‖²` for `l` of shape `[bl.., n, n]` (lower triangular) and `x` of shape `[bx.., n]`,
/// broadcasting the batch dims (PyTorch's `_batch_mahalanobis`).
///
/// When `x` only adds leading dims to `l`'s batch, those are folded into the columns of one
/// solve instead of copying `l` for each of them.
pub fn batch_mahalanobis(l: &Tensor, x: &Tensor) -> Result<Tensor> {
    let n = check_square("batch_mahalanobis", "l", l)?;
    let lb = &l.dims()[..l.rank() - 2];
    let xd = x.dims();
    if xd.last() != Some(&n) {
        return Err(Error::shape_mismatch(
            format!("`batch_mahalanobis`: `x` must end in n = {n} to fit `l` of shape {:?}", l.dims()),
            &[n],
            xd,
        ));
    }
    let xb = &xd[..xd.len() - 1];
    if xb.len() >= lb.len() && &xb[xb.len() - lb.len()..] == lb {
        let s: usize = xb[..xb.len() - lb.len()].iter().product();
        let bprod: usize = lb.iter().product();
        // [S, B, n] -> [B, n, S]
        let xs = x.reshape((s, bprod, n))?.permute((1, 2, 0))?.contiguous()?;
        let z = solve_triangular(&l.reshape((bprod, n, n))?, &xs, true, true)?;
        let m = z.sqr()?.sum(1)?; // [B, S]
        Ok(m.t()?.contiguous()?.reshape(xb)?)
    } else {
        let z = solve_triangular(l, &x.unsqueeze(x.rank())?, true, true)?;
        Ok(z.squeeze(z.rank() - 1)?.sqr()?.sum(z.rank() - 2)?)
    }
}

/// `A x` for matrices `a` `[..., m, k]` and vectors `x` `[..., k]`, batch dims broadcast.
pub fn matvec(a: &Tensor, x: &Tensor) -> Result<Tensor> {
    if a.rank() == 2 && x.rank() >= 1 {
        // One matrix: fold every batch dim of x into the rows of a single gemm, x Aᵀ.
        let (m, k) = (a.dims()[0], a.dims()[1]);
        if x.dims()[x.rank() - 1] == k {
            let rows: usize = x.dims()[..x.rank() - 1].iter().product();
            let mut out = x.dims().to_vec();
            let last = out.len() - 1;
            out[last] = m;
            return Ok(x.reshape((rows, k))?.matmul(&a.t()?)?.reshape(out)?);
        }
    }
    let y = bmm(a, &x.unsqueeze(x.rank())?)?;
    Ok(y.squeeze(y.rank() - 1)?)
}

/// Batched matrix product `a b` for `[..., m, k]` and `[..., k, n]`, with broadcast batch dims
/// of any rank (Candle's `matmul` handles at most two batch dims and no broadcasting).
pub fn bmm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let bad = || Error::ShapeMismatch {
        context: format!("`bmm`: matrices of shapes {ad:?} and {bd:?} do not multiply"),
        expected: "[..., m, k] and [..., k, n] with broadcastable batch dims".into(),
        got: format!("{ad:?} and {bd:?}"),
        hint: None,
    };
    if ad.len() < 2 || bd.len() < 2 || ad[ad.len() - 1] != bd[bd.len() - 2] {
        return Err(bad());
    }
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let (ab, bb) = (&ad[..ad.len() - 2], &bd[..bd.len() - 2]);
    let batch = broadcast_shapes(ab, bb).ok_or_else(bad)?;
    let nb: usize = batch.iter().product();
    let mut out = batch.clone();
    out.extend([m, n]);
    if bb.is_empty() {
        // Fold a's batch into its rows.
        let a2 = a.broadcast_as([&batch[..], &[m, k]].concat())?.reshape((nb * m, k))?;
        return Ok(a2.matmul(b)?.reshape(out)?);
    }
    let a3 = a.broadcast_as([&batch[..], &[m, k]].concat())?.reshape((nb, m, k))?;
    let b3 = b.broadcast_as([&batch[..], &[k, n]].concat())?.reshape((nb, k, n))?;
    Ok(a3.matmul(&b3)?.reshape(out)?)
}

/// The transpose of the two rightmost dims.
pub fn mt(a: &Tensor) -> Result<Tensor> {
    let r = a.rank();
    if r < 2 {
        return Err(Error::shape_mismatch("`mt`: a matrix transpose needs rank >= 2", &[0, 0], a.dims()));
    }
    Ok(a.transpose(r - 2, r - 1)?)
}

/// A `[rows, cols]` mask (in `a`'s dtype, on its device) with ones where `col - row <= k`
/// (`lower`) or `>= k`.
fn band_mask(a: &Tensor, k: i64, lower: bool) -> Result<Tensor> {
    let r = a.rank();
    if r < 2 {
        return Err(Error::shape_mismatch("`tril`/`triu` need rank >= 2", &[0, 0], a.dims()));
    }
    let (rows, cols) = (a.dims()[r - 2], a.dims()[r - 1]);
    let index = |n: usize| -> Result<Tensor> { Ok(Tensor::arange(0u32, n as u32, a.device())?.to_dtype(a.dtype())?) };
    let d = index(cols)?.unsqueeze(0)?.broadcast_sub(&index(rows)?.unsqueeze(1)?)?;
    let keep = if lower { d.le(k as f64)? } else { d.ge(k as f64)? };
    Ok(keep.to_dtype(a.dtype())?)
}

/// The lower triangle of `a` on and below the `k`-th diagonal (`k = -1`: strictly lower); the rest is zero.
pub fn tril(a: &Tensor, k: i64) -> Result<Tensor> {
    Ok(a.broadcast_mul(&band_mask(a, k, true)?)?)
}

/// The upper triangle of `a` on and above the `k`-th diagonal; the rest is zero.
pub fn triu(a: &Tensor, k: i64) -> Result<Tensor> {
    Ok(a.broadcast_mul(&band_mask(a, k, false)?)?)
}

/// The diagonals `[..., n]` of a batch of square matrices `[..., n, n]`.
pub fn diagonal(a: &Tensor) -> Result<Tensor> {
    let n = check_square("diagonal", "a", a)?;
    let eye = Tensor::eye(n, a.dtype(), a.device())?;
    Ok(a.broadcast_mul(&eye)?.sum(a.rank() - 1)?)
}

/// Diagonal matrices `[..., n, n]` from vectors `[..., n]`.
pub fn diag_embed(v: &Tensor) -> Result<Tensor> {
    let n = *v.dims().last().ok_or_else(|| Error::shape_mismatch("`diag_embed` needs rank >= 1", &[0], v.dims()))?;
    let eye = Tensor::eye(n, v.dtype(), v.device())?;
    Ok(v.unsqueeze(v.rank())?.broadcast_mul(&eye)?)
}

/// The `n × n` identity, in the dtype and on the device of `like`.
pub fn eye_like(n: usize, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::eye(n, like.dtype(), like.device())?)
}

/// Whether `dtype` is one the kernels handle.
pub fn supported_dtype(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}
