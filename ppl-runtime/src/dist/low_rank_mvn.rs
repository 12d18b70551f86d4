//! The low-rank-plus-diagonal multivariate normal, `Σ = W Wᵀ + diag(D)`.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::linalg;
use crate::dist::multivariate_normal::{broadcast_batch, matrix_arg, vector_arg};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::Arc;

/// Multivariate normal with covariance `W Wᵀ + diag(D)` for `W = cov_factor` (`[..., n, r]`) and
/// `D = cov_diag` (`[..., n]`, positive), as `torch.distributions.LowRankMultivariateNormal`.
///
/// `log_prob` costs O(n r²) through the Woodbury identity and the matrix determinant lemma on
/// the `r × r` capacitance matrix `C = I + Wᵀ D⁻¹ W`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::dist::{Distribution, LowRankMultivariateNormal};
/// let w = Tensor::new(&[[1.0f64], [0.5]], &Device::Cpu)?;
/// let d = Tensor::new(&[1.0f64, 2.0], &Device::Cpu)?;
/// let lr = LowRankMultivariateNormal::new(0.0, &w, &d)?;
/// // variance = row norms of W squared + D
/// assert_eq!(lr.variance()?.to_vec1::<f64>()?, vec![2.0, 2.25]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LowRankMultivariateNormal {
    /// `batch ++ [n]`.
    loc: Tensor,
    /// `batch ++ [n, r]`.
    cov_factor: Tensor,
    /// `batch ++ [n]`.
    cov_diag: Tensor,
    /// Cholesky factor of the capacitance `I + Wᵀ D⁻¹ W`, `batch ++ [r, r]`.
    capacitance_tril: Tensor,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
}

const NAME: &str = "LowRankMultivariateNormal";

impl LowRankMultivariateNormal {
    /// A low-rank multivariate normal with mean `loc` (`[..., n]` or a scalar), `cov_factor`
    /// `W` (`[..., n, r]`) and `cov_diag` `D` (`[..., n]` or a scalar, positive).
    pub fn new(loc: impl Into<Arg>, cov_factor: impl Into<Arg>, cov_diag: impl Into<Arg>) -> Result<Self> {
        let w = matrix_arg(NAME, "cov_factor", cov_factor.into(), false)?;
        let (n, r) = (w.dims()[w.rank() - 2], w.dims()[w.rank() - 1]);
        let loc = vector_arg(NAME, "loc", loc.into(), n, &w, "cov_factor")?;
        let d = vector_arg(NAME, "cov_diag", cov_diag.into(), n, &w, "cov_factor")?;
        args::validate_param(NAME, "loc", &loc, &Constraint::RealVector)?;
        args::validate_param(NAME, "cov_factor", &w, &Constraint::Real)?;
        args::validate_param(NAME, "cov_diag", &d, &Constraint::Positive)?;
        let b =
            broadcast_batch(NAME, ("loc", &loc.dims()[..loc.rank() - 1]), ("cov_factor", &w.dims()[..w.rank() - 2]))?;
        let batch_shape = broadcast_batch(NAME, ("loc/cov_factor", &b), ("cov_diag", &d.dims()[..d.rank() - 1]))?;
        let loc = loc.broadcast_as(args::concat_shapes(&batch_shape, &[n]))?;
        let w = w.broadcast_as(args::concat_shapes(&batch_shape, &[n, r]))?;
        let d = d.broadcast_as(args::concat_shapes(&batch_shape, &[n]))?;
        let wt_dinv = linalg::mt(&w)?.broadcast_div(&d.unsqueeze(d.rank() - 1)?)?;
        let cap = linalg::bmm(&wt_dinv, &w)?.broadcast_add(&linalg::eye_like(r, &w)?)?;
        let capacitance_tril = linalg::cholesky(&cap)?;
        Ok(LowRankMultivariateNormal {
            loc,
            cov_factor: w,
            cov_diag: d,
            capacitance_tril,
            batch_shape,
            event_shape: vec![n],
        })
    }

    /// The mean, `batch_shape ++ [n]`.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The low-rank factor `W`, `batch_shape ++ [n, r]`.
    pub fn cov_factor(&self) -> &Tensor {
        &self.cov_factor
    }

    /// The diagonal part `D`, `batch_shape ++ [n]`.
    pub fn cov_diag(&self) -> &Tensor {
        &self.cov_diag
    }

    /// The covariance `W Wᵀ + diag(D)`, `batch_shape ++ [n, n]`.
    pub fn covariance_matrix(&self) -> Result<Tensor> {
        let w = &self.cov_factor;
        Ok(linalg::bmm(w, &linalg::mt(w)?)?.add(&linalg::diag_embed(&self.cov_diag)?)?)
    }

    /// The precision `Σ⁻¹ = D⁻¹ − D⁻¹ W C⁻¹ Wᵀ D⁻¹` (Woodbury), `batch_shape ++ [n, n]`.
    pub fn precision_matrix(&self) -> Result<Tensor> {
        let dinv = self.cov_diag.recip()?;
        let rank = self.cov_diag.rank();
        // A = Lc⁻¹ Wᵀ D⁻¹ ([.., r, n]); Σ⁻¹ = diag(D⁻¹) − Aᵀ A.
        let wt_dinv = linalg::mt(&self.cov_factor)?.broadcast_mul(&dinv.unsqueeze(rank - 1)?)?;
        let a = linalg::solve_triangular(&self.capacitance_tril, &wt_dinv, true, true)?;
        Ok(linalg::diag_embed(&dinv)?.sub(&linalg::bmm(&linalg::mt(&a)?, &a)?)?)
    }

    /// The lower Cholesky factor of the covariance, `batch_shape ++ [n, n]`.
    pub fn scale_tril(&self) -> Result<Tensor> {
        linalg::cholesky(&self.covariance_matrix()?)
    }

    /// `log det Σ = log det C + Σ log D`, of shape `batch_shape`.
    fn log_det(&self) -> Result<Tensor> {
        let ld_c = linalg::log_det_from_cholesky(&self.capacitance_tril)?;
        Ok(ld_c.add(&self.cov_diag.log()?.sum(self.cov_diag.rank() - 1)?)?)
    }

    fn n(&self) -> usize {
        self.event_shape[0]
    }
}

impl Distribution for LowRankMultivariateNormal {
    fn name(&self) -> &'static str {
        NAME
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
        let r = self.cov_factor.dims()[self.cov_factor.rank() - 1];
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let eps_w = rng.normal_tensor(&args::concat_shapes(&shape, &[r]), self.dtype(), self.device())?;
        let eps_d = rng.normal_tensor(&args::concat_shapes(&shape, &[self.n()]), self.dtype(), self.device())?;
        let x = linalg::matvec(&self.cov_factor, &eps_w)?.add(&eps_d.broadcast_mul(&self.cov_diag.sqrt()?)?)?;
        Ok(x.broadcast_add(&self.loc)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape(NAME, value, &self.batch_shape, &self.event_shape, self.dtype())?;
        args::validate_value(NAME, value, &Constraint::RealVector)?;
        let diff = value.broadcast_sub(&self.loc)?;
        let last = diff.rank() - 1;
        let dinv_diff = diff.broadcast_div(&self.cov_diag)?;
        // Woodbury: xᵀΣ⁻¹x = xᵀD⁻¹x − ‖Lc⁻¹ Wᵀ D⁻¹ x‖².
        let m_d = dinv_diff.mul(&diff)?.sum(last)?;
        let y = linalg::matvec(&linalg::mt(&self.cov_factor)?, &dinv_diff)?;
        let m_c = linalg::batch_mahalanobis(&self.capacitance_tril, &y)?;
        let m = m_d.sub(&m_c)?;
        let c = -0.5 * self.n() as f64 * (2.0 * PI).ln();
        Ok(m.affine(-0.5, c)?.broadcast_sub(&(self.log_det()? * 0.5)?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::RealVector
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        let w = &self.cov_factor;
        Ok(w.sqr()?.sum(w.rank() - 1)?.add(&self.cov_diag)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        let c = 0.5 * self.n() as f64 * (1.0 + (2.0 * PI).ln());
        Ok(self.log_det()?.affine(0.5, c)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let ex = |t: &Tensor| args::expand_param(NAME, t, &self.batch_shape, batch_shape);
        Ok(Arc::new(LowRankMultivariateNormal {
            loc: ex(&self.loc)?,
            cov_factor: ex(&self.cov_factor)?,
            cov_diag: ex(&self.cov_diag)?,
            capacitance_tril: ex(&self.capacitance_tril)?,
            batch_shape: batch_shape.to_vec(),
            event_shape: self.event_shape.clone(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
