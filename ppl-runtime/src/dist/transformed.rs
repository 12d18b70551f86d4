//! `TransformedDistribution`: a base distribution pushed through a chain of bijections.

use crate::dist::args;
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::independent::Independent;
use crate::dist::transforms::{ComposeTransform, Transform, TransformRef, sum_rightmost};
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// The distribution of `y = f_n(...f_1(x))` for `x ~ base` (torch's `TransformedDistribution`).
///
/// `log_prob(y) = base.log_prob(x) - Σ_k log |det J_{f_k}|`, each term summed over the event
/// dims as in torch. The base is expanded when a transform broadcasts (e.g. an affine map
/// with tensor parameters) and wrapped in [`Independent`] when the transforms act on more
/// dims than its event.
///
/// ```
/// use ppl_runtime::dist::transforms::ExpTransform;
/// use ppl_runtime::dist::{Distribution, DistributionExt, Normal, TransformedDistribution};
/// use std::sync::Arc;
/// let log_normal = TransformedDistribution::new(Normal::new(0.0, 1.0)?.into_ref(), vec![Arc::new(ExpTransform)])?;
/// // At y = 1: x = log y = 0 and log |dy/dx| = 0, so log p(1) = log N(0; 0, 1).
/// let lp = log_normal.log_prob(&candle_core::Tensor::new(1f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? + 0.918_938_5).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TransformedDistribution {
    base: DistRef,
    transforms: Vec<TransformRef>,
    batch_shape: Vec<usize>,
    event_shape: Vec<usize>,
}

impl TransformedDistribution {
    /// `base` pushed through `transforms`, the first applied first.
    pub fn new(base: DistRef, transforms: Vec<TransformRef>) -> Result<Self> {
        let base_shape = args::concat_shapes(base.batch_shape(), base.event_shape());
        let base_event_dim = base.event_shape().len();
        let chain = ComposeTransform::new(transforms.clone());
        let domain_ed = chain.domain_event_dim();
        if base_shape.len() < domain_ed {
            return Err(Error::ShapeMismatch {
                context: format!("`TransformedDistribution`: the transforms act on {domain_ed} event dim(s) of the base `{}`", base.name()),
                expected: format!("a base batch_shape ++ event_shape of rank >= {domain_ed}"),
                got: format!("{base_shape:?}"),
                hint: None,
            });
        }
        let forward_shape = chain.forward_shape(&base_shape)?;
        let expanded = chain.inverse_shape(&forward_shape)?;
        let mut base = base;
        if expanded != base_shape {
            base = base.expand(&expanded[..expanded.len() - base_event_dim])?;
        }
        if domain_ed > base_event_dim {
            base = Arc::new(Independent::new(base, domain_ed - base_event_dim)?);
        }
        let codomain_ed = chain.codomain_event_dim() as isize;
        let event_dim = codomain_ed.max(base_event_dim as isize + codomain_ed - domain_ed as isize) as usize;
        if forward_shape.len() < event_dim {
            return Err(Error::shape_mismatch("`TransformedDistribution`: the output has too few dims", &vec![1; event_dim], &forward_shape));
        }
        let cut = forward_shape.len() - event_dim;
        Ok(TransformedDistribution {
            base,
            transforms,
            batch_shape: forward_shape[..cut].to_vec(),
            event_shape: forward_shape[cut..].to_vec(),
        })
    }

    /// The base distribution (expanded and made [`Independent`] as needed).
    pub fn base_dist(&self) -> &DistRef {
        &self.base
    }

    /// The transforms, first applied first.
    pub fn transforms(&self) -> &[TransformRef] {
        &self.transforms
    }

    fn push_forward(&self, x: Tensor) -> Result<Tensor> {
        self.transforms.iter().try_fold(x, |x, t| t.forward(&x))
    }

    /// The product of the transforms' signs, when all are monotone elementwise maps and the
    /// event is scalar.
    fn monotone_sign(&self, method: &'static str) -> Result<f64> {
        let sign = self.transforms.iter().try_fold(1.0, |s, t| t.sign().map(|x| s * x));
        match sign {
            Some(s) if self.event_shape.is_empty() && self.base.event_shape().is_empty() => Ok(s),
            _ => Err(Error::Unsupported {
                dist: self.name(),
                method,
                hint: Some("only for scalar events pushed through monotone elementwise transforms".into()),
            }),
        }
    }
}

impl Distribution for TransformedDistribution {
    fn name(&self) -> &'static str {
        "TransformedDistribution"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &self.event_shape
    }
    fn dtype(&self) -> DType {
        self.base.dtype()
    }
    fn device(&self) -> &Device {
        self.base.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let x = self.base.sample(rng, sample_shape)?;
        Ok(self.push_forward(x)?.detach())
    }
    fn has_rsample(&self) -> bool {
        self.base.has_rsample()
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let x = self.base.rsample(rng, sample_shape)?;
        self.push_forward(x)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape(self.name(), value, &self.batch_shape, &self.event_shape, self.dtype())?;
        args::validate_value(self.name(), value, &self.support())?;
        let mut event_dim = self.event_shape.len() as isize;
        let mut y = value.clone();
        let mut lp: Option<Tensor> = None;
        for t in self.transforms.iter().rev() {
            let x = t.inverse(&y)?;
            event_dim += t.domain_event_dim() as isize - t.codomain_event_dim() as isize;
            let extra = (event_dim - t.domain_event_dim() as isize).max(0) as usize;
            let term = sum_rightmost(t.log_abs_det_jacobian(&x, &y)?, extra)?;
            lp = Some(match lp {
                None => term.neg()?,
                Some(acc) => acc.broadcast_sub(&term)?,
            });
            y = x;
        }
        let extra = (event_dim - self.base.event_shape().len() as isize).max(0) as usize;
        let base_lp = sum_rightmost(self.base.log_prob(&y)?, extra)?;
        Ok(match lp {
            None => base_lp,
            Some(acc) => base_lp.broadcast_add(&acc)?,
        })
    }
    fn support(&self) -> Constraint {
        let Some(last) = self.transforms.last() else { return self.base.support() };
        let support = last.codomain();
        let ed = support.event_dim();
        support.independent(self.event_shape.len().saturating_sub(ed))
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        let sign = self.monotone_sign("cdf")?;
        let x = self.transforms.iter().rev().try_fold(value.clone(), |y, t| t.inverse(&y))?;
        let c = self.base.cdf(&x)?;
        Ok(if sign < 0.0 { c.affine(-1.0, 1.0)? } else { c })
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        let sign = self.monotone_sign("icdf")?;
        let u = if sign < 0.0 { value.affine(-1.0, 1.0)? } else { value.clone() };
        self.push_forward(self.base.icdf(&u)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let mut shape = args::concat_shapes(batch_shape, &self.event_shape);
        for t in self.transforms.iter().rev() {
            shape = t.inverse_shape(&shape)?;
        }
        let base_batch = &shape[..shape.len().saturating_sub(self.base.event_shape().len())];
        Ok(Arc::new(TransformedDistribution::new(self.base.expand(base_batch)?, self.transforms.clone())?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
