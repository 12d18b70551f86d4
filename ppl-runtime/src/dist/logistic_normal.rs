//! The logistic-normal distribution over the simplex: a normal pushed through stick-breaking.

use crate::defaults;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution, DistributionExt};
use crate::dist::normal::Normal;
use crate::dist::ops;
use crate::dist::transformed::TransformedDistribution;
use crate::dist::transforms::StickBreakingTransform;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Logistic-normal distribution (torch's `LogisticNormal`): `X ~ Normal(loc, scale)` with the
/// last dim as the event, mapped onto the `K`-simplex (`K = loc.dims()[-1] + 1`) by
/// [`StickBreakingTransform`], which subtracts the offsets `log(K-1-i)` before the sigmoid, so that
/// `loc = 0` has its mode near the uniform point.
///
/// Scalar `loc` and `scale` give a distribution over the 2-simplex (as torch expands them to
/// `[1]`). `rsample` is reparameterized.
///
/// ```
/// use ppl_runtime::dist::{Distribution, LogisticNormal};
/// use candle_core::{Device, Tensor};
/// let d = LogisticNormal::new(Tensor::new(&[0.0f32, 0.0], &Device::Cpu)?, 1.0)?;
/// assert_eq!(d.event_shape(), &[3]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LogisticNormal {
    loc: Tensor,
    scale: Tensor,
    inner: TransformedDistribution,
}

const NAME: &str = "LogisticNormal";

impl LogisticNormal {
    /// A logistic-normal with normal `loc` and `scale > 0` (scalars or tensors, broadcast; the
    /// last dim of the broadcast, `K - 1`, indexes the free coordinates of the simplex).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve(NAME, vec![("loc", loc.into()), ("scale", scale.into())])?;
        args::validate_param(NAME, "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param(NAME, "scale", &r.tensors[1], &Constraint::Positive)?;
        let [mut loc, mut scale] = ops::take(r.tensors);
        if loc.rank() == 0 {
            (loc, scale) = (loc.reshape(1)?, scale.reshape(1)?);
        }
        Self::build(loc, scale)
    }

    fn build(loc: Tensor, scale: Tensor) -> Result<Self> {
        // The parameters were validated by `new`: the inner normal need not check them again.
        let base = {
            let _v = defaults::set_validation(false);
            Normal::new(&loc, &scale)?
        };
        let inner = TransformedDistribution::new(base.into_ref(), vec![Arc::new(StickBreakingTransform)])?;
        Ok(LogisticNormal { loc, scale, inner })
    }

    /// The normal's mean, shape `batch_shape ++ [K - 1]`.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The normal's standard deviation, shape `batch_shape ++ [K - 1]`.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }
}

impl Distribution for LogisticNormal {
    fn name(&self) -> &'static str {
        NAME
    }
    fn batch_shape(&self) -> &[usize] {
        self.inner.batch_shape()
    }
    fn event_shape(&self) -> &[usize] {
        self.inner.event_shape()
    }
    fn dtype(&self) -> DType {
        self.loc.dtype()
    }
    fn device(&self) -> &Device {
        self.loc.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.inner.sample(rng, sample_shape)
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.inner.rsample(rng, sample_shape)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape(NAME, value, self.batch_shape(), self.event_shape(), self.dtype())?;
        args::validate_value(NAME, value, &Constraint::Simplex)?;
        let _checked = defaults::set_validation(false);
        self.inner.log_prob(value)
    }
    fn support(&self) -> Constraint {
        Constraint::Simplex
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let old = self.batch_shape();
        let loc = args::expand_param(NAME, &self.loc, old, batch_shape)?;
        let scale = args::expand_param(NAME, &self.scale, old, batch_shape)?;
        Ok(Arc::new(Self::build(loc, scale)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
