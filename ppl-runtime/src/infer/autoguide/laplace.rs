//! `AutoLaplaceApproximation`: MAP in unconstrained space, then a Gaussian with the inverse
//! Hessian of the negative log joint at the MAP as covariance.

use super::continuous::{AutoContinuous, AutoMultivariateNormal, LatentFamily, MultivariateNormalFamily, ParamGetter};
use crate::dist::{Constraint, Delta, DistRef, DistributionExt};
use crate::error::{Error, Result};
use crate::infer::potential::{ModelPotential, Potential};
use crate::infer::program::Program;
use crate::params::ParamStore;
use crate::primitives::{ParamOptions, param_with};
use crate::site::ParamInit;
use candle_core::{DType, Tensor};

/// A point mass over the flat latent vector: parameter `loc`.
#[derive(Clone, Debug)]
pub struct DeltaFamily;

impl LatentFamily for DeltaFamily {
    const NAME: &'static str = "AutoLaplaceApproximation";
    fn latent(&self, prefix: &str, init: &Tensor) -> Result<DistRef> {
        let loc = param_with(format!("{prefix}.loc"), ParamInit::lazy(|| Ok(init.clone())), ParamOptions::default())?;
        Ok(Delta::new(&loc, 0.0, 1)?.into_ref())
    }
    fn posterior(&self, param: &ParamGetter) -> Result<DistRef> {
        Ok(Delta::new(&param("loc")?, 0.0, 1)?.into_ref())
    }
    fn loc_scale(&self, param: &ParamGetter) -> Result<(Tensor, Tensor)> {
        let loc = param("loc")?;
        let zero = loc.zeros_like()?;
        Ok((loc, zero))
    }
}

/// The Laplace approximation (Pyro's `AutoLaplaceApproximation`): fit it as a MAP guide (a
/// point mass over the flat unconstrained latent vector, parameter `{prefix}.loc`; the
/// Jacobians of the bijections count, so this is the MAP in unconstrained space), then call
/// [`AutoContinuous::laplace_approximation`] for the [`AutoMultivariateNormal`] whose covariance
/// is the inverse Hessian of the negative log joint (unconstrained) at the MAP.
pub type AutoLaplaceApproximation<P, M> = AutoContinuous<P, M, DeltaFamily>;

impl<P, M> AutoContinuous<P, M, DeltaFamily> {
    /// An `AutoLaplaceApproximation` guide for `model`.
    pub fn new(model: P) -> Self {
        Self::with_family(model, DeltaFamily)
    }

    /// The Hessian of `-log p(x)` (the model's joint log-density in unconstrained space, Jacobians
    /// included) at the fitted `loc`, by central finite differences of its autodiff gradient,
    /// symmetrized; `[dim, dim]` row-major in the guide's latent order. Model parameters are read
    /// from `params`.
    #[allow(clippy::needless_range_loop)] // index loops over a small dense matrix read best
    pub fn hessian<A: ?Sized>(&self, params: &ParamStore, args: &A) -> Result<Vec<Vec<f64>>>
    where
        P: Program<A, M>,
    {
        let proto = self.shared.fitted()?;
        let loc: Vec<f64> = self.shared.param(params, "loc")?.to_dtype(DType::F64)?.to_vec1()?;
        let model = self.shared.model();
        params.scope(|| {
            let mut pot = ModelPotential::new(model, args, proto.dtype, &proto.device)?;
            // Map the guide's latent order onto the potential's.
            let n = loc.len();
            let mut perm = vec![0usize; n];
            let mut off = 0;
            for s in &proto.sites {
                let l = pot.layout().get(&s.name).ok_or_else(|| {
                    Error::invalid_arg(self.shared.prefix.as_str(), "model", "the latent site did not run again")
                        .at_site(&s.name, None)
                })?;
                for k in 0..s.numel() {
                    perm[off + k] = l.offset + k;
                }
                off += s.numel();
            }
            if pot.dim() != n {
                return Err(Error::shape_mismatch("AutoLaplaceApproximation: latent dim", &[n], &[pot.dim()]));
            }
            let mut x = vec![0.0; n];
            for i in 0..n {
                x[perm[i]] = loc[i];
            }
            let h_step = if proto.dtype == DType::F64 { 1e-5 } else { 3e-3 };
            let mut grad_p = vec![0.0; n];
            let mut grad_m = vec![0.0; n];
            let mut h = vec![vec![0.0; n]; n];
            for j in 0..n {
                let step = h_step * x[perm[j]].abs().max(1.0);
                let mut xp = x.clone();
                xp[perm[j]] += step;
                pot.log_density(&xp, &mut grad_p)?;
                let mut xm = x.clone();
                xm[perm[j]] -= step;
                pot.log_density(&xm, &mut grad_m)?;
                for i in 0..n {
                    h[i][j] = -(grad_p[perm[i]] - grad_m[perm[i]]) / (2.0 * step);
                }
            }
            for i in 0..n {
                for j in 0..i {
                    let m = 0.5 * (h[i][j] + h[j][i]);
                    h[i][j] = m;
                    h[j][i] = m;
                }
            }
            Ok(h)
        })
    }

    /// The Laplace approximation at the fitted MAP: an [`AutoMultivariateNormal`] over the same
    /// sites whose parameters `{prefix}.mvn.loc` (the MAP) and `{prefix}.mvn.scale_tril` (the
    /// Cholesky factor of the inverse [`hessian`](Self::hessian)) are written into `params`.
    /// An error when the Hessian is not positive definite (the fit is not at a local maximum).
    pub fn laplace_approximation<A: ?Sized>(
        &self,
        params: &ParamStore,
        args: &A,
    ) -> Result<AutoMultivariateNormal<P, M>>
    where
        P: Program<A, M>,
    {
        let proto = self.shared.fitted()?;
        let h = self.hessian(params, args)?;
        let n = h.len();
        let not_pd = || {
            Error::invalid_arg(
                self.shared.prefix.as_str(),
                "fit",
                "the Hessian of the negative log joint at the fitted point is not positive definite, so it is not a local \
                 maximum: train the MAP guide longer (or check the model for flat directions)",
            )
        };
        let lh = cholesky(&h).ok_or_else(not_pd)?;
        let cov = inverse_from_cholesky(&lh);
        let l = cholesky(&cov).ok_or_else(not_pd)?;
        let loc = self.shared.param(params, "loc")?.detach();
        let flat: Vec<f64> = l.into_iter().flatten().collect();
        let scale_tril = Tensor::from_vec(flat, (n, n), loc.device())?.to_dtype(loc.dtype())?;
        let guide = AutoContinuous {
            shared: self.shared.derived(&format!("{}.mvn", self.shared.prefix), proto),
            family: MultivariateNormalFamily::default(),
        };
        params.set(&format!("{}.loc", guide.shared.prefix), &loc, Constraint::Real)?;
        params.set(&format!("{}.scale_tril", guide.shared.prefix), &scale_tril, Constraint::LowerCholesky)?;
        Ok(guide)
    }
}

/// The lower Cholesky factor of a symmetric matrix, `None` unless positive definite.
#[allow(clippy::needless_range_loop)]
fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i][j] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    Some(l)
}

/// `A⁻¹` from the Cholesky factor `L` of `A` (`A⁻¹ = L⁻ᵀ L⁻¹`).
#[allow(clippy::needless_range_loop)]
fn inverse_from_cholesky(l: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = l.len();
    // Columns of L⁻¹ by forward substitution.
    let mut linv = vec![vec![0.0; n]; n];
    for c in 0..n {
        for i in 0..n {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let s: f64 = rhs - (0..i).map(|k| l[i][k] * linv[k][c]).sum::<f64>();
            linv[i][c] = s / l[i][i];
        }
    }
    let mut out = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..n {
            out[i][j] = (0..n).map(|k| linv[k][i] * linv[k][j]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cholesky_inverse_matches_a_known_inverse() {
        // [[4, 2], [2, 3]]⁻¹ = [[3, -2], [-2, 4]] / 8
        let a = vec![vec![4.0, 2.0], vec![2.0, 3.0]];
        let inv = inverse_from_cholesky(&cholesky(&a).unwrap());
        let want = [[0.375, -0.25], [-0.25, 0.5]];
        for i in 0..2 {
            for j in 0..2 {
                assert!((inv[i][j] - want[i][j]).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[vec![1.0, 2.0], vec![2.0, 1.0]]).is_none());
    }
}
