//! The chi-squared distribution, as `Gamma(df / 2, 1 / 2)`.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::gamma::Gamma;
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Chi-squared distribution with `df` degrees of freedom (torch's `Chi2`): `Gamma(df/2, 1/2)`,
/// reparameterized in `df`.
///
/// ```
/// use ppl_runtime::dist::{Chi2, Distribution};
/// let d = Chi2::new(3.0)?;
/// assert_eq!(d.variance()?.to_scalar::<f32>()?, 6.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Chi2 {
    df: Tensor,
    gamma: Gamma,
}

impl Chi2 {
    /// A chi-squared with `df > 0` degrees of freedom (a scalar or a tensor).
    pub fn new(df: impl Into<Arg>) -> Result<Self> {
        let df = df.into();
        let r = args::resolve("Chi2", vec![("df", df.clone())])?;
        args::validate_param("Chi2", "df", &r.tensors[0], &Constraint::Positive)?;
        let df_t = r.tensors[0].clone();
        let half = match df {
            Arg::Scalar(x) => Arg::Scalar(x / 2.0),
            Arg::Tensor(_) => Arg::Tensor(df_t.affine(0.5, 0.0)?),
        };
        Ok(Chi2 { gamma: Gamma::named("Chi2", half, Arg::Scalar(0.5))?, df: df_t })
    }

    /// The degrees of freedom.
    pub fn df(&self) -> &Tensor {
        &self.df
    }
}

impl Distribution for Chi2 {
    fn name(&self) -> &'static str {
        "Chi2"
    }
    fn batch_shape(&self) -> &[usize] {
        self.gamma.batch_shape()
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.df.dtype()
    }
    fn device(&self) -> &Device {
        self.df.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.gamma.sample(rng, sample_shape)
    }
    fn has_rsample(&self) -> bool {
        true
    }
    fn rsample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.gamma.rsample(rng, sample_shape)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Chi2", value, self.batch_shape(), &[], self.dtype())?;
        args::validate_value("Chi2", value, &Constraint::Nonnegative)?;
        self.gamma.log_prob_unchecked(value)
    }
    fn support(&self) -> Constraint {
        Constraint::Nonnegative
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.df.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.df.affine(2.0, 0.0)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        self.gamma.entropy()
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Chi2", value, self.batch_shape(), &[], self.dtype())?;
        self.gamma.cdf_unchecked(value)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        let df = args::expand_param("Chi2", &self.df, self.batch_shape(), batch_shape)?;
        Ok(Arc::new(Chi2 { df, gamma: self.gamma.expanded(batch_shape)? }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
