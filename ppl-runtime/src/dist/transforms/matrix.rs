//! Vector and matrix transforms: stick-breaking (simplex), ordered vectors, lower-Cholesky,
//! corr-Cholesky and Cholesky factorization.
//!
//! Candle has no `cumprod`: running products are written as `exp(cumsum(log ...))`, with the
//! logs taken in closed form (`log(1 - sigmoid(x)) = -softplus(x)`,
//! `log sech(x) = ln 2 - x - softplus(-2x)`), which is also more accurate than torch's
//! clamped products.

use super::{Transform, check_rank, sum_rightmost};
use crate::dist::constraints::Constraint;
use crate::dist::kernels::cumsum_last;
use crate::dist::{linalg, special};
use crate::error::{Error, Result};
use candle_core::{D, Tensor};

/// A constant vector of `v` with `like`'s dtype and device.
fn constant(v: Vec<f64>, like: &Tensor) -> Result<Tensor> {
    let n = v.len();
    Ok(Tensor::from_vec(v, n, like.device())?.to_dtype(like.dtype())?)
}

/// Row-major positions `(i, j)` of the lower triangle of an `n × n` matrix, with the diagonal
/// unless `strict`.
fn tril_positions(n: usize, strict: bool) -> Vec<(usize, usize)> {
    (0..n).flat_map(|i| (0..if strict { i } else { i + 1 }).map(move |j| (i, j))).collect()
}

/// The matrix size `n` whose (strict) lower triangle has `m` entries, or an error naming `name`.
fn tril_size(name: &str, m: usize, strict: bool) -> Result<usize> {
    let n = if strict { (1.0 + (1.0 + 8.0 * m as f64).sqrt()) / 2.0 } else { ((1.0 + 8.0 * m as f64).sqrt() - 1.0) / 2.0 };
    let n = n.round() as usize;
    let count = if strict { n * n.saturating_sub(1) / 2 } else { n * (n + 1) / 2 };
    if count != m || n == 0 {
        let what = if strict { "K(K-1)/2" } else { "n(n+1)/2" };
        return Err(Error::ShapeMismatch {
            context: format!("`{name}`: the last dim must be a triangular number {what}"),
            expected: format!("a size {what}, e.g. 1, 3, 6, 10"),
            got: format!("{m}"),
            hint: None,
        });
    }
    Ok(n)
}

/// `[..., m]` vector → `[..., n, n]` matrix with the vector on the (strict) lower triangle, row-major.
fn vec_to_tril(x: &Tensor, n: usize, strict: bool) -> Result<Tensor> {
    let pos = tril_positions(n, strict);
    let m = pos.len();
    let mut idx = vec![m as u32; n * n];
    for (k, &(i, j)) in pos.iter().enumerate() {
        idx[i * n + j] = k as u32;
    }
    let idx = Tensor::from_vec(idx, n * n, x.device())?;
    let r = x.rank();
    let mut zshape = x.dims().to_vec();
    zshape[r - 1] = 1;
    let padded = Tensor::cat(&[x, &Tensor::zeros(zshape, x.dtype(), x.device())?], r - 1)?;
    let mut shape = x.dims()[..r - 1].to_vec();
    shape.extend([n, n]);
    Ok(padded.index_select(&idx, r - 1)?.reshape(shape)?)
}

/// `[..., n, n]` matrix → `[..., m]` vector of its (strict) lower triangle, row-major.
fn tril_to_vec(y: &Tensor, strict: bool) -> Result<Tensor> {
    let r = y.rank();
    let n = y.dims()[r - 1];
    let idx: Vec<u32> = tril_positions(n, strict).iter().map(|&(i, j)| (i * n + j) as u32).collect();
    let m = idx.len();
    let idx = Tensor::from_vec(idx, m, y.device())?;
    Ok(y.flatten_from(r - 2)?.index_select(&idx, r - 2)?)
}

/// Errors unless the two rightmost dims of `shape` are square.
fn check_square(name: &str, shape: &[usize]) -> Result<usize> {
    check_rank(name, "matrix", shape, 2)?;
    let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if r != c {
        return Err(Error::shape_mismatch(format!("`{name}`: expected square matrices"), &[r, r], &[r, c]));
    }
    Ok(r)
}

/// `[..., m] → [..., n, n]` for a triangular number `m` of `n`.
fn vec_to_matrix_shape(name: &str, shape: &[usize], strict: bool) -> Result<Vec<usize>> {
    check_rank(name, "forward_shape", shape, 1)?;
    let n = tril_size(name, shape[shape.len() - 1], strict)?;
    let mut s = shape[..shape.len() - 1].to_vec();
    s.extend([n, n]);
    Ok(s)
}

/// `[..., n, n] → [..., m]`.
fn matrix_to_vec_shape(name: &str, shape: &[usize], strict: bool) -> Result<Vec<usize>> {
    let n = check_square(name, shape)?;
    let mut s = shape[..shape.len() - 2].to_vec();
    s.push(if strict { n * n.saturating_sub(1) / 2 } else { n * (n + 1) / 2 });
    Ok(s)
}

/// Maps `K-1` reals onto the `K`-simplex by stick-breaking (torch's `StickBreakingTransform`):
/// `z_i = sigmoid(x_i - ln(K-1-i))`, `y_i = z_i ∏_{j<i} (1 - z_j)`, `y_K = ∏_j (1 - z_j)`.
/// The Jacobian is that of `x ↦ y[..K-1]`.
#[derive(Clone, Debug, Default)]
pub struct StickBreakingTransform;

impl StickBreakingTransform {
    /// `(log z, log(1 - z), exclusive cumsum of log(1 - z), inclusive cumsum)` from `x`.
    fn logs(x: &Tensor) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
        let n = x.dim(D::Minus1)?;
        let offsets = constant((0..n).map(|i| ((n - i) as f64).ln()).collect(), x)?;
        let xo = x.broadcast_sub(&offsets)?;
        let lz = special::log_sigmoid(&xo)?;
        let l1mz = special::softplus(&xo)?.neg()?;
        let incl = cumsum_last(&l1mz)?;
        let excl = (&incl - &l1mz)?;
        Ok((lz, l1mz, excl, incl))
    }
}

impl Transform for StickBreakingTransform {
    fn name(&self) -> &'static str {
        "StickBreakingTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(self.name(), "forward", x.dims(), 1)?;
        let n = x.dim(D::Minus1)?;
        let (lz, _, excl, incl) = Self::logs(x)?;
        let last = incl.narrow(D::Minus1, n - 1, 1)?;
        Ok(Tensor::cat(&[&(lz + excl)?, &last], x.rank() - 1)?.exp()?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let k = y.dim(D::Minus1)?;
        check_rank(self.name(), "inverse", y.dims(), 1)?;
        if k < 2 {
            return Err(Error::shape_mismatch("`StickBreakingTransform`.inverse: a simplex needs K >= 2", &[2], y.dims()));
        }
        let n = k - 1;
        // The mass left after y_i, Σ_{j>i} y_j, as a matmul (no cancellation as in 1 - cumsum).
        let after: Vec<f64> = (0..k).flat_map(|j| (0..n).map(move |i| if j > i { 1.0 } else { 0.0 })).collect();
        let after = Tensor::from_vec(after, (k, n), y.device())?.to_dtype(y.dtype())?;
        let r = y.rank();
        let rest = y.unsqueeze(r - 1)?.broadcast_matmul(&after)?.squeeze(r - 1)?;
        let rest = rest.clamp(f64::MIN_POSITIVE, f64::INFINITY)?;
        let offsets = constant((0..n).map(|i| ((n - i) as f64).ln()).collect(), y)?;
        Ok((y.narrow(D::Minus1, 0, n)?.log()? - rest.log()?)?.broadcast_add(&offsets)?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        // torch: Σ_i (-x'_i + log σ(x'_i) + log y_i) = Σ_i (log(1 - z_i) + log y_i), in log space.
        let (lz, l1mz, excl, _) = Self::logs(x)?;
        Ok((l1mz + lz + excl)?.sum(D::Minus1)?)
    }
    fn domain(&self) -> Constraint {
        Constraint::RealVector
    }
    fn codomain(&self) -> Constraint {
        Constraint::Simplex
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        check_rank(self.name(), "forward_shape", shape, 1)?;
        let mut s = shape.to_vec();
        *s.last_mut().unwrap_or(&mut 0) += 1;
        Ok(s)
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        check_rank(self.name(), "inverse_shape", shape, 1)?;
        let k = shape[shape.len() - 1];
        if k < 2 {
            return Err(Error::shape_mismatch("`StickBreakingTransform`: a simplex needs K >= 2", &[2], shape));
        }
        let mut s = shape.to_vec();
        *s.last_mut().unwrap_or(&mut 0) -= 1;
        Ok(s)
    }
}

/// Maps real vectors to strictly increasing ones: `y_0 = x_0`, `y_i = y_{i-1} + exp(x_i)`
/// (torch's `OrderedTransform`).
#[derive(Clone, Debug, Default)]
pub struct OrderedTransform;

impl Transform for OrderedTransform {
    fn name(&self) -> &'static str {
        "OrderedTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_rank(self.name(), "forward", x.dims(), 1)?;
        let n = x.dim(D::Minus1)?;
        if n < 2 {
            return Ok(x.clone());
        }
        let z = Tensor::cat(&[&x.narrow(D::Minus1, 0, 1)?, &x.narrow(D::Minus1, 1, n - 1)?.exp()?], x.rank() - 1)?;
        Ok(cumsum_last(&z)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        check_rank(self.name(), "inverse", y.dims(), 1)?;
        let n = y.dim(D::Minus1)?;
        if n < 2 {
            return Ok(y.clone());
        }
        let diff = (y.narrow(D::Minus1, 1, n - 1)? - y.narrow(D::Minus1, 0, n - 1)?)?;
        Ok(Tensor::cat(&[&y.narrow(D::Minus1, 0, 1)?, &diff.log()?], y.rank() - 1)?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        check_rank(self.name(), "log_abs_det_jacobian", x.dims(), 1)?;
        let n = x.dim(D::Minus1)?;
        Ok((x.narrow(D::Minus1, 1, n.saturating_sub(1))?.sum(D::Minus1)? + x.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?.zeros_like()?)?)
    }
    fn domain(&self) -> Constraint {
        Constraint::RealVector
    }
    fn codomain(&self) -> Constraint {
        Constraint::OrderedVector
    }
}

/// Maps unconstrained reals to lower-triangular matrices with a positive diagonal:
/// strictly-lower entries are copied and the diagonal is exponentiated.
///
/// [`LowerCholeskyTransform::new`] is torch's matrix form (`[..., n, n] → [..., n, n]`; the
/// upper triangle of the input is ignored, so it is a bijection only on lower-triangular
/// inputs); [`LowerCholeskyTransform::from_vector`] takes the `n(n+1)/2` lower-triangular
/// entries row-major (`[..., n(n+1)/2] → [..., n, n]`, as NumPyro), a true bijection.
/// Either way the Jacobian is taken on the lower-triangular coordinates: `Σ` of the
/// diagonal inputs.
#[derive(Clone, Debug, Default)]
pub struct LowerCholeskyTransform {
    vector: bool,
}

impl LowerCholeskyTransform {
    /// torch's matrix form.
    pub fn new() -> Self {
        LowerCholeskyTransform { vector: false }
    }

    /// The vector form: `n(n+1)/2` reals, row-major, to an `n × n` lower-Cholesky factor.
    pub fn from_vector() -> Self {
        LowerCholeskyTransform { vector: true }
    }

    /// 1 on the diagonal positions of the row-major lower-triangle vector of size `n(n+1)/2`.
    fn diag_mask(n: usize, like: &Tensor) -> Result<Tensor> {
        constant(tril_positions(n, false).iter().map(|&(i, j)| f64::from(u8::from(i == j))).collect(), like)
    }
}

impl Transform for LowerCholeskyTransform {
    fn name(&self) -> &'static str {
        "LowerCholeskyTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.vector {
            check_rank(self.name(), "forward", x.dims(), 1)?;
            let n = tril_size(self.name(), x.dim(D::Minus1)?, false)?;
            let dm = Self::diag_mask(n, x)?;
            // exp only where the mask is 1; the masked-out exp(0) keeps gradients finite.
            let v = (x.broadcast_mul(&dm.affine(-1.0, 1.0)?)? + x.broadcast_mul(&dm)?.exp()?.broadcast_mul(&dm)?)?;
            vec_to_tril(&v, n, false)
        } else {
            let n = check_square(self.name(), x.dims())?;
            let eye = linalg::eye_like(n, x)?;
            let strict = linalg::tril(x, -1)?;
            Ok((strict + x.broadcast_mul(&eye)?.exp()?.broadcast_mul(&eye)?)?)
        }
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let n = check_square(self.name(), y.dims())?;
        if self.vector {
            let v = tril_to_vec(y, false)?;
            let dm = Self::diag_mask(n, y)?;
            let off = dm.affine(-1.0, 1.0)?;
            // log only of the diagonal entries (the rest are replaced by 1 first).
            Ok((v.broadcast_mul(&off)? + (v.broadcast_mul(&dm)?.broadcast_add(&off)?).log()?.broadcast_mul(&dm)?)?)
        } else {
            let eye = linalg::eye_like(n, y)?;
            let off = eye.affine(-1.0, 1.0)?;
            let strict = linalg::tril(y, -1)?;
            Ok((strict + (y.broadcast_mul(&eye)?.broadcast_add(&off)?).log()?.broadcast_mul(&eye)?)?)
        }
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        if self.vector {
            let n = tril_size(self.name(), x.dim(D::Minus1)?, false)?;
            Ok(x.broadcast_mul(&Self::diag_mask(n, x)?)?.sum(D::Minus1)?)
        } else {
            Ok(linalg::diagonal(x)?.sum(D::Minus1)?)
        }
    }
    fn domain(&self) -> Constraint {
        if self.vector { Constraint::RealVector } else { Constraint::Real.independent(2) }
    }
    fn codomain(&self) -> Constraint {
        Constraint::LowerCholesky
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        if self.vector {
            vec_to_matrix_shape(self.name(), shape, false)
        } else {
            check_square(self.name(), shape)?;
            Ok(shape.to_vec())
        }
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        if self.vector {
            matrix_to_vec_shape(self.name(), shape, false)
        } else {
            check_square(self.name(), shape)?;
            Ok(shape.to_vec())
        }
    }
}

/// Maps `K(K-1)/2` reals to the lower-Cholesky factor of a `K × K` correlation matrix
/// (torch's `CorrCholeskyTransform`): `r = tanh(x)` fills the strict lower triangle row-major,
/// and each row is completed by stick-breaking on the squares so that it has unit norm. The
/// Jacobian is that of `x ↦` the strict lower triangle of `y` (the diagonal is determined).
#[derive(Clone, Debug, Default)]
pub struct CorrCholeskyTransform;

impl CorrCholeskyTransform {
    /// `(tanh X, log sqrt(1 - tanh² X), inclusive row cumsum of the latter)` for the matrix `X`
    /// holding `x` on its strict lower triangle.
    fn parts(x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        check_rank("CorrCholeskyTransform", "forward", x.dims(), 1)?;
        let k = tril_size("CorrCholeskyTransform", x.dim(D::Minus1)?, true)?;
        let m = vec_to_tril(x, k, true)?;
        let mask = linalg::tril(&linalg::eye_like(k, x)?.ones_like()?, -1)?;
        // log sqrt(1 - tanh²x) = log sech x = ln 2 - x - softplus(-2x); zero off the strict triangle.
        let ls = m.affine(-1.0, std::f64::consts::LN_2)?.sub(&special::softplus(&m.affine(-2.0, 0.0)?)?)?.broadcast_mul(&mask)?;
        let cs = cumsum_last(&ls)?;
        Ok((m.tanh()?, ls, cs))
    }
}

impl Transform for CorrCholeskyTransform {
    fn name(&self) -> &'static str {
        "CorrCholeskyTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (r, ls, cs) = Self::parts(x)?;
        let k = r.dim(D::Minus1)?;
        let eye = linalg::eye_like(k, x)?;
        // y_ij = r_ij ∏_{l<j} sqrt(1 - r_il²) below the diagonal; y_ii = ∏_{l<i} sqrt(1 - r_il²).
        Ok(r.broadcast_add(&eye)?.mul(&(cs - ls)?.exp()?)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let k = check_square(self.name(), y.dims())?;
        let mask = linalg::tril(&linalg::eye_like(k, y)?.ones_like()?, -1)?;
        let y2 = y.sqr()?;
        // 1 - Σ_{l<j} y_il², replaced by 1 off the strict lower triangle so no 0/0 (or its
        // NaN gradient) appears in entries that are dropped anyway.
        let left = (cumsum_last(&y2)? - &y2)?.affine(-1.0, 1.0)?;
        let left = (left.broadcast_mul(&mask)? + mask.affine(-1.0, 1.0)?.broadcast_as(left.shape())?)?;
        let t = tril_to_vec(&y.div(&left.sqrt()?)?, true)?;
        // atanh(t) = (log1p(t) - log1p(-t)) / 2
        Ok((special::log1p(&t)? - special::log1p(&t.neg()?)?)?.affine(0.5, 0.0)?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        // torch: ½ Σ_{j ≤ i-2} log(1 - Σ_{l≤j} y_il²) + Σ log(1 - tanh² x). The first log is
        // Σ_{l≤j} log(1 - r_il²) = 2·cs_ij; the second is 2·ls summed.
        let (_, ls, cs) = Self::parts(x)?;
        let k = ls.dim(D::Minus1)?;
        let below2 = linalg::tril(&linalg::eye_like(k, x)?.ones_like()?, -2)?;
        let total = (cs.broadcast_mul(&below2)? + ls.affine(2.0, 0.0)?)?;
        sum_rightmost(total, 2)
    }
    fn domain(&self) -> Constraint {
        Constraint::RealVector
    }
    fn codomain(&self) -> Constraint {
        Constraint::CorrCholesky
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        vec_to_matrix_shape(self.name(), shape, true)
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        matrix_to_vec_shape(self.name(), shape, true)
    }
}

/// Maps a positive-definite matrix to its lower Cholesky factor, `y = cholesky(x)`, inverse
/// `x = y yᵀ` (NumPyro's `CholeskyTransform`; `CholeskyTransform.inv()` after the vector
/// [`LowerCholeskyTransform`] is `biject_to(positive_definite)`). The Jacobian is taken on the
/// lower triangles: `log |det| = -n ln 2 - Σ_i (n - i) ln L_ii` (0-based `i`).
#[derive(Clone, Debug, Default)]
pub struct CholeskyTransform;

impl Transform for CholeskyTransform {
    fn name(&self) -> &'static str {
        "CholeskyTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_square(self.name(), x.dims())?;
        linalg::cholesky(x)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        check_square(self.name(), y.dims())?;
        linalg::bmm(y, &linalg::mt(y)?)
    }
    fn log_abs_det_jacobian(&self, _x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let n = check_square(self.name(), y.dims())?;
        let w = constant((0..n).map(|i| (n - i) as f64).collect(), y)?;
        let s = linalg::diagonal(y)?.log()?.broadcast_mul(&w)?.sum(D::Minus1)?;
        Ok(s.affine(-1.0, -(n as f64) * std::f64::consts::LN_2)?)
    }
    fn domain(&self) -> Constraint {
        Constraint::PositiveDefinite
    }
    fn codomain(&self) -> Constraint {
        Constraint::LowerCholesky
    }
}
