//! The multivariate normal distribution, parameterized by a scale-tril, covariance or precision matrix.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::linalg;
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::Arc;

/// Multivariate normal with mean `loc` and covariance `Σ = L Lᵀ` (`event_shape = [n]`).
///
/// Built from exactly one of `scale_tril` ([`MultivariateNormal::from_scale_tril`]),
/// `covariance_matrix` ([`MultivariateNormal::from_covariance_matrix`]) or `precision_matrix`
/// ([`MultivariateNormal::from_precision_matrix`]), as in `torch.distributions`. The batch
/// shape broadcasts `loc.shape[..-1]` with the matrix's `shape[..-2]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::dist::{Distribution, MultivariateNormal};
/// let cov = Tensor::new(&[[2.0f64, 0.5], [0.5, 1.0]], &Device::Cpu)?;
/// let mvn = MultivariateNormal::from_covariance_matrix(0.0, &cov)?;
/// assert_eq!(mvn.event_shape(), &[2]);
/// let lp = mvn.log_prob(&Tensor::new(&[0.0f64, 0.0], &Device::Cpu)?)?;
/// // -log(2π) - ½ log det Σ, det Σ = 1.75
/// assert!((lp.to_scalar::<f64>()? + (2.0 * std::f64::consts::PI).ln() + 0.5 * 1.75f64.ln()).abs() < 1e-12);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MultivariateNormal {
    /// `batch_shape ++ [n]`.
    loc: Tensor,
    /// `[..., n, n]`, with batch dims that broadcast to `batch_shape` (not copied).
    scale_tril: Tensor,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
}

/// Resolves a `[..., n, n]` matrix argument and a `[..., n]` (or scalar) vector argument of
/// `dist` to one dtype and device; returns `(vector, matrix)`. Names both shapes on mismatch.
pub(crate) fn vector_and_matrix(
    dist: &'static str,
    vec_name: &'static str,
    vec: Arg,
    mat_name: &'static str,
    mat: Arg,
    square: bool,
) -> Result<(Tensor, Tensor)> {
    let mat = matrix_arg(dist, mat_name, mat, square)?;
    let n = mat.dims()[mat.rank() - 2];
    let vec = vector_arg(dist, vec_name, vec, n, &mat, mat_name)?;
    Ok((vec, mat))
}

/// A matrix argument: a float tensor of rank >= 2 (square when `square`).
pub(crate) fn matrix_arg(dist: &'static str, name: &'static str, mat: Arg, square: bool) -> Result<Tensor> {
    let Arg::Tensor(mat) = mat else {
        return Err(Error::invalid_arg(
            format!("`{dist}`"),
            name,
            "must be a tensor of shape [..., n, n], got a scalar",
        ));
    };
    let d = mat.dims();
    if d.len() < 2 || (square && d[d.len() - 1] != d[d.len() - 2]) {
        let expected = if square { "[..., n, n]" } else { "[..., n, k]" };
        return Err(Error::ShapeMismatch {
            context: format!("`{dist}`: argument `{name}` must be a (batch of) matrices"),
            expected: expected.into(),
            got: format!("{d:?}"),
            hint: None,
        });
    }
    if !linalg::supported_dtype(mat.dtype()) {
        return Err(Error::invalid_arg(
            format!("`{dist}`"),
            name,
            format!("must be f32 or f64, got {:?}", mat.dtype()),
        ));
    }
    Ok(mat)
}

/// A vector argument of length `n` (a scalar is broadcast), in the dtype and device of `like`.
pub(crate) fn vector_arg(
    dist: &'static str,
    name: &'static str,
    v: Arg,
    n: usize,
    like: &Tensor,
    like_name: &'static str,
) -> Result<Tensor> {
    match v {
        Arg::Scalar(x) => Ok(Tensor::full(x, n, like.device())?.to_dtype(like.dtype())?),
        Arg::Tensor(t) => {
            if t.dtype() != like.dtype() {
                return Err(Error::DTypeMismatch {
                    context: format!("`{dist}`"),
                    a: like_name.into(),
                    a_dtype: like.dtype(),
                    b: name.into(),
                    b_dtype: t.dtype(),
                });
            }
            if !t.device().same_device(like.device()) {
                return Err(Error::DeviceMismatch {
                    context: format!("`{dist}`"),
                    a: format!("`{like_name}` is on {:?}", like.device()),
                    b: format!("`{name}` is on {:?}", t.device()),
                });
            }
            if t.dims().last() != Some(&n) {
                return Err(Error::ShapeMismatch {
                    context: format!(
                        "`{dist}`: `{name}` of shape {:?} does not fit `{like_name}` of shape {:?}",
                        t.dims(),
                        like.dims()
                    ),
                    expected: format!("[..., {n}]"),
                    got: format!("{:?}", t.dims()),
                    hint: None,
                });
            }
            Ok(t)
        }
    }
}

/// The broadcast of batch shapes `a` and `b` of `dist`'s arguments, naming both on failure.
pub(crate) fn broadcast_batch(dist: &'static str, a: (&str, &[usize]), b: (&str, &[usize])) -> Result<Vec<usize>> {
    args::broadcast_shapes(a.1, b.1).ok_or_else(|| Error::ShapeMismatch {
        context: format!("`{dist}`: batch shapes of `{}` and `{}` do not broadcast", a.0, b.0),
        expected: format!("{:?}", a.1),
        got: format!("{:?}", b.1),
        hint: None,
    })
}

impl MultivariateNormal {
    /// A multivariate normal with mean `loc` (`[..., n]`, or a scalar broadcast to `[n]`) and
    /// lower-triangular Cholesky factor `scale_tril` (`[..., n, n]`, positive diagonal) of the covariance.
    pub fn from_scale_tril(loc: impl Into<Arg>, scale_tril: impl Into<Arg>) -> Result<Self> {
        let (loc, l) =
            vector_and_matrix("MultivariateNormal", "loc", loc.into(), "scale_tril", scale_tril.into(), true)?;
        args::validate_param("MultivariateNormal", "scale_tril", &l, &Constraint::LowerCholesky)?;
        Self::build(loc, l)
    }

    /// A multivariate normal with mean `loc` and symmetric positive-definite `covariance_matrix`
    /// (`[..., n, n]`); its Cholesky factor is computed (differentiably) here.
    pub fn from_covariance_matrix(loc: impl Into<Arg>, covariance_matrix: impl Into<Arg>) -> Result<Self> {
        let (loc, cov) = vector_and_matrix(
            "MultivariateNormal",
            "loc",
            loc.into(),
            "covariance_matrix",
            covariance_matrix.into(),
            true,
        )?;
        args::validate_param("MultivariateNormal", "covariance_matrix", &cov, &Constraint::PositiveDefinite)?;
        Self::build(loc, linalg::cholesky(&cov)?)
    }

    /// A multivariate normal with mean `loc` and symmetric positive-definite `precision_matrix`
    /// (the inverse covariance, `[..., n, n]`).
    pub fn from_precision_matrix(loc: impl Into<Arg>, precision_matrix: impl Into<Arg>) -> Result<Self> {
        let (loc, prec) = vector_and_matrix(
            "MultivariateNormal",
            "loc",
            loc.into(),
            "precision_matrix",
            precision_matrix.into(),
            true,
        )?;
        args::validate_param("MultivariateNormal", "precision_matrix", &prec, &Constraint::PositiveDefinite)?;
        Self::build(loc, precision_to_scale_tril(&prec)?)
    }

    fn build(loc: Tensor, scale_tril: Tensor) -> Result<Self> {
        args::validate_param("MultivariateNormal", "loc", &loc, &Constraint::RealVector)?;
        let n = scale_tril.dims()[scale_tril.rank() - 1];
        let batch_shape = broadcast_batch(
            "MultivariateNormal",
            ("loc", &loc.dims()[..loc.rank() - 1]),
            ("scale_tril", &scale_tril.dims()[..scale_tril.rank() - 2]),
        )?;
        let loc = loc.broadcast_as(args::concat_shapes(&batch_shape, &[n]))?;
        Ok(MultivariateNormal { loc, scale_tril, batch_shape, event_shape: vec![n] })
    }

    /// The mean, of shape `batch_shape ++ [n]`.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The lower Cholesky factor of the covariance, of shape `batch_shape ++ [n, n]`.
    pub fn scale_tril(&self) -> Result<Tensor> {
        self.broadcast_matrix(&self.scale_tril)
    }

    /// The covariance matrix `L Lᵀ`, of shape `batch_shape ++ [n, n]`.
    pub fn covariance_matrix(&self) -> Result<Tensor> {
        let l = &self.scale_tril;
        self.broadcast_matrix(&linalg::bmm(l, &linalg::mt(l)?)?)
    }

    /// The precision matrix `Σ⁻¹`, of shape `batch_shape ++ [n, n]`.
    pub fn precision_matrix(&self) -> Result<Tensor> {
        self.broadcast_matrix(&linalg::cholesky_inverse(&self.scale_tril)?)
    }

    fn n(&self) -> usize {
        self.event_shape[0]
    }

    fn broadcast_matrix(&self, m: &Tensor) -> Result<Tensor> {
        Ok(m.broadcast_as(args::concat_shapes(&self.batch_shape, &[self.n(), self.n()]))?)
    }

    /// `½ log det Σ = Σᵢ log Lᵢᵢ`, with `scale_tril`'s (unbroadcast) batch shape.
    pub(crate) fn half_log_det(&self) -> Result<Tensor> {
        Ok((linalg::log_det_from_cholesky(&self.scale_tril)? * 0.5)?)
    }

    /// The unbroadcast Cholesky factor (for the KL registry).
    pub(crate) fn raw_scale_tril(&self) -> &Tensor {
        &self.scale_tril
    }
}

/// `L` with `L Lᵀ = P⁻¹`, lower triangular, as PyTorch's `_precision_to_scale_tril`: with `J` the
/// exchange matrix, `J P J = Lf Lfᵀ`, so `P = U Uᵀ` for upper `U = J Lf J` and `L = U⁻ᵀ`.
fn precision_to_scale_tril(p: &Tensor) -> Result<Tensor> {
    let r = p.rank();
    let lf = linalg::cholesky(&p.flip(&[r - 2, r - 1])?)?;
    let l_inv = linalg::mt(&lf.flip(&[r - 2, r - 1])?)?;
    let n = p.dims()[r - 1];
    let eye = linalg::eye_like(n, p)?;
    linalg::solve_triangular(&l_inv, &eye, true, true)
}

impl Distribution for MultivariateNormal {
    fn name(&self) -> &'static str {
        "MultivariateNormal"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &self.event_shape
    }
    fn dtype(&self) -> DType {
        self.loc.dtype()
    }
    fn device(&self) -> &Device {
        self.loc.device()
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(&args::concat_shapes(sample_shape, &self.batch_shape), &self.event_shape);
        let eps = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        Ok(self.loc.broadcast_add(&linalg::matvec(&self.scale_tril, &eps)?)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("MultivariateNormal", value, &self.batch_shape, &self.event_shape, self.dtype())?;
        args::validate_value("MultivariateNormal", value, &Constraint::RealVector)?;
        let diff = value.broadcast_sub(&self.loc)?;
        let m = linalg::batch_mahalanobis(&self.scale_tril, &diff)?;
        let c = -0.5 * self.n() as f64 * (2.0 * PI).ln();
        Ok(m.affine(-0.5, c)?.broadcast_sub(&self.half_log_det()?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::RealVector
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        let l = &self.scale_tril;
        Ok(l.sqr()?.sum(l.rank() - 1)?.broadcast_as(self.loc.shape())?)
    }
    fn entropy(&self) -> Result<Tensor> {
        let c = 0.5 * self.n() as f64 * (1.0 + (2.0 * PI).ln());
        Ok(self.half_log_det()?.affine(1.0, c)?.broadcast_as(self.batch_shape.as_slice())?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let loc = args::expand_param("MultivariateNormal", &self.loc, &self.batch_shape, batch_shape)?;
        Ok(Arc::new(MultivariateNormal {
            loc,
            scale_tril: self.scale_tril.clone(),
            batch_shape: batch_shape.to_vec(),
            event_shape: self.event_shape.clone(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
