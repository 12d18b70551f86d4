//! The Dirichlet distribution over the probability simplex.

use crate::dist::special;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::gamma::standard_gamma_log;
use crate::dist::ops;
use crate::dist::special::{digamma, lgamma};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{D, DType, Device, Tensor};
use std::sync::{Arc, OnceLock};

/// Dirichlet distribution with `concentration` of shape `batch_shape ++ [K]` (torch's
/// `Dirichlet`); events are vectors of length `K` on the simplex.
///
/// `rsample` is reparameterized: normalized standard gammas with implicit reparameterization
/// gradients, normalized in log space so that draws stay right for tiny concentrations.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::dist::{Dirichlet, Distribution};
/// let d = Dirichlet::new(Tensor::new(&[1f32, 1.0, 2.0], &Device::Cpu)?)?;
/// assert_eq!(d.event_shape(), &[3]);
/// assert_eq!(d.mean()?.to_vec1::<f32>()?, vec![0.25, 0.25, 0.5]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dirichlet {
    concentration: Tensor,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
    /// `lgamma(Σα) - Σ lgamma(α)`, computed on first use.
    log_norm: OnceLock<Tensor>,
}

impl Dirichlet {
    /// A Dirichlet with positive `concentration` of rank ≥ 1 (the last dim indexes categories).
    pub fn new(concentration: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("Dirichlet", vec![("concentration", concentration.into())])?;
        let [c] = ops::take(r.tensors);
        if c.rank() == 0 || c.dims()[c.rank() - 1] == 0 {
            return Err(Error::ShapeMismatch {
                context: "`Dirichlet`: argument `concentration` needs a last dim of categories".into(),
                expected: "[..., K] with K >= 1".into(),
                got: format!("{:?}", c.dims()),
                hint: Some("wrap a single concentration in a 1-element vector".into()),
            });
        }
        args::validate_param("Dirichlet", "concentration", &c, &Constraint::Positive)?;
        let (batch, k) = c.dims().split_at(c.rank() - 1);
        Ok(Dirichlet { batch_shape: batch.to_vec(), event_shape: k.to_vec(), concentration: c, log_norm: OnceLock::new() })
    }

    /// The concentration, shape `batch_shape ++ [K]`.
    pub fn concentration(&self) -> &Tensor {
        &self.concentration
    }

    fn total(&self) -> Result<Tensor> {
        Ok(self.concentration.sum_keepdim(D::Minus1)?)
    }

    fn log_norm(&self) -> Result<&Tensor> {
        ops::cached(&self.log_norm, || {
            let a = &self.concentration;
            Ok((lgamma(&a.sum(D::Minus1)?)? - lgamma(a)?.sum(D::Minus1)?)?)
        })
    }
}

impl Distribution for Dirichlet {
    fn name(&self) -> &'static str {
        "Dirichlet"
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
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, self.concentration.dims());
        // Normalized gammas as a softmax of their logs, in f64: no draw underflows, so tiny
        // concentrations give near-vertex draws, not ties at 0/0 → 1/K.
        let lg = standard_gamma_log(rng, &self.concentration.broadcast_as(shape)?)?;
        Ok(candle_nn::ops::softmax(&lg, D::Minus1)?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Dirichlet", value, &self.batch_shape, &self.event_shape, self.dtype())?;
        args::validate_value("Dirichlet", value, &Constraint::Simplex)?;
        let t = special::xlogy(&self.concentration.affine(1.0, -1.0)?, value)?.sum(D::Minus1)?;
        Ok(t.broadcast_add(self.log_norm()?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Simplex
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.concentration.broadcast_div(&self.total()?)?)
    }
    fn variance(&self) -> Result<Tensor> {
        // α (α0 - α) / (α0² (α0 + 1))
        let (a, t) = (&self.concentration, self.total()?);
        let num = (a * t.broadcast_sub(a)?)?;
        Ok(num.broadcast_div(&(t.sqr()? * t.affine(1.0, 1.0)?)?)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // log B(α) + (α0 - K) ψ(α0) - Σ (α_j - 1) ψ(α_j)
        let a = &self.concentration;
        let k = *self.event_shape.first().unwrap_or(&1) as f64;
        let t = a.sum(D::Minus1)?;
        let s = (a.affine(1.0, -1.0)? * digamma(a)?)?.sum(D::Minus1)?;
        Ok(((t.affine(1.0, -k)? * digamma(&t)?)? - s - self.log_norm()?)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Dirichlet {
            concentration: args::expand_param("Dirichlet", &self.concentration, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            event_shape: self.event_shape.clone(),
            log_norm: OnceLock::new(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
