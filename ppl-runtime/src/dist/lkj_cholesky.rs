//! The LKJ distribution over Cholesky factors of correlation matrices.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::{linalg, special};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use rand_distr::Distribution as _;
use std::f64::consts::PI;
use std::sync::Arc;

const NAME: &str = "LkjCholesky";

/// LKJ distribution over lower Cholesky factors `L` of `dim × dim` correlation matrices `L Lᵀ`,
/// with `concentration` η > 0 (`torch.distributions.LKJCholesky`; `event_shape = [dim, dim]`).
///
/// The density of the correlation matrix is proportional to `det(L Lᵀ)^(η-1)`; η = 1 is uniform
/// over correlation matrices, larger η concentrates near the identity. `log_prob` is the
/// density of `L` with respect to Lebesgue measure on its strictly lower entries, with the
/// normalizing constant of Lewandowski, Kurowicka and Joe (2009). Sampling uses the onion
/// method; there is no `rsample`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, LkjCholesky};
/// let lkj = LkjCholesky::new(3, 2.0)?;
/// let l = lkj.sample(&mut ppl_runtime::rng::Rng::seed_from_u64(0), &[])?;
/// assert_eq!(l.dims(), &[3, 3]);
/// assert!(lkj.log_prob(&l)?.to_scalar::<f32>()?.is_finite());
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
///
/// References:
/// - D. Lewandowski, D. Kurowicka, H. Joe (2009), "Generating random correlation matrices based
///   on vines and extended onion method", J. Multivariate Analysis 100(9).
#[derive(Clone, Debug)]
pub struct LkjCholesky {
    dim: usize,
    concentration: Tensor,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
}

impl LkjCholesky {
    /// An LKJ distribution over `dim × dim` correlation Cholesky factors (`dim >= 2`) with
    /// `concentration` η > 0 (scalar or tensor; its shape is the batch shape).
    pub fn new(dim: usize, concentration: impl Into<Arg>) -> Result<Self> {
        if dim < 2 {
            return Err(Error::invalid_arg(format!("`{NAME}`"), "dim", format!("must be at least 2, got {dim}")));
        }
        let r = args::resolve(NAME, vec![("concentration", concentration.into())])?;
        args::validate_param(NAME, "concentration", &r.tensors[0], &Constraint::Positive)?;
        let concentration = r.tensors.into_iter().next().expect("resolve returns one tensor per argument");
        Ok(LkjCholesky { dim, concentration, batch_shape: r.shape, event_shape: vec![dim, dim] })
    }

    /// The matrix size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The concentration η.
    pub fn concentration(&self) -> &Tensor {
        &self.concentration
    }

    /// `log` of the normalizing constant, of shape `batch_shape` (torch's `normalize_term`).
    fn log_normalizer(&self) -> Result<Tensor> {
        let dm1 = (self.dim - 1) as f64;
        let alpha = self.concentration.affine(1.0, 0.5 * dm1)?;
        let denominator = (special::lgamma(&alpha)? * dm1)?;
        // multivariate lgamma: Γ_p(a) = p(p-1)/4 log π + Σ_{i=1..p} log Γ(a + (1 - i)/2), p = dim - 1
        let p = self.dim - 1;
        let mut numerator = alpha.ones_like()?.affine(0.0, dm1 * (dm1 - 1.0) / 4.0 * PI.ln())?;
        for i in 1..=p {
            numerator = numerator.add(&special::lgamma(&alpha.affine(1.0, -0.5 + (1.0 - i as f64) / 2.0)?)?)?;
        }
        // The LKJ paper's π constant is D(D-1)/4 log π; multigammaln's is (D-1)(D-2)/4 log π.
        let pi_constant = 0.5 * dm1 * PI.ln();
        Ok(numerator.sub(&denominator)?.affine(1.0, pi_constant)?)
    }
}

impl Distribution for LkjCholesky {
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
        self.concentration.dtype()
    }
    fn device(&self) -> &Device {
        self.concentration.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        // Onion method (LKJ 2009, Sec. 3.2, as NumPyro): row i ≥ 1 of L is √y·u, u uniform on the
        // sphere in the first i coordinates and y ~ Beta(i/2, η + (dim - 2)/2 - (i - 1)/2), then a
        // positive diagonal that completes the row to unit norm. (torch 2.x draws y from
        // Beta(i - ½, ·), which only agrees for i = 1; its off-diagonal marginals are then not the
        // LKJ Beta(η - 1 + dim/2) ones, which the tests check.)
        let d = self.dim;
        let etas = self.concentration.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let reps: usize = sample_shape.iter().product();
        let mut out = vec![0.0f64; reps * etas.len() * d * d];
        for (m, mat) in out.chunks_mut(d * d).enumerate() {
            let eta = etas[m % etas.len()];
            let marginal = eta + 0.5 * (d as f64 - 2.0);
            mat[0] = 1.0;
            for i in 1..d {
                let (a, b) = (0.5 * i as f64, marginal - 0.5 * (i as f64 - 1.0));
                let beta = rand_distr::Beta::new(a, b).map_err(|e| {
                    Error::invalid_arg(format!("`{NAME}`.sample"), "concentration", format!("Beta({a}, {b}): {e}"))
                })?;
                let y: f64 = beta.sample(rng.inner());
                let u: Vec<f64> = (0..i).map(|_| rng.standard_normal()).collect();
                let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
                let mut ss = 0.0;
                for (j, uj) in u.iter().enumerate() {
                    let w = y.sqrt() * uj / norm;
                    mat[i * d + j] = w;
                    ss += w * w;
                }
                mat[i * d + i] = (1.0 - ss).max(f64::MIN_POSITIVE).sqrt();
            }
        }
        let shape = args::concat_shapes(&args::concat_shapes(sample_shape, &self.batch_shape), &self.event_shape);
        Ok(Tensor::from_vec(out, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape(NAME, value, &self.batch_shape, &self.event_shape, self.dtype())?;
        args::validate_value(NAME, value, &Constraint::CorrCholesky)?;
        let d = self.dim;
        let diag = linalg::diagonal(value)?;
        let diag = diag.narrow(diag.rank() - 1, 1, d - 1)?;
        // order_i = 2(η - 1) + dim - i for rows i = 2..dim (1-based), as torch.
        let order: Vec<f64> = (2..=d).map(|i| (d - i) as f64).collect();
        let order = Tensor::from_vec(order, d - 1, self.device())?.to_dtype(self.dtype())?;
        let eta_term = self.concentration.affine(2.0, -2.0)?.unsqueeze(self.concentration.rank())?;
        let order = eta_term.broadcast_add(&order)?;
        let unnorm = diag.log()?.broadcast_mul(&order)?;
        let unnorm = unnorm.sum(unnorm.rank() - 1)?;
        Ok(unnorm.broadcast_sub(&self.log_normalizer()?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::CorrCholesky
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(LkjCholesky {
            dim: self.dim,
            concentration: args::expand_param(NAME, &self.concentration, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            event_shape: self.event_shape.clone(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
