//! The normal (Gaussian) distribution, and elementwise helper ops shared by the continuous
//! distributions.

use crate::dist::{kernels, ops};
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution, sum_rightmost};
use crate::dist::special;
use crate::error::Result;
use crate::nn::fused;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::sync::{Arc, OnceLock};

/// `0.5 * ln(2π)`.
pub(crate) const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Normal distribution with mean `loc` and standard deviation `scale`.
///
/// ```
/// use ppl_runtime::dist::{Distribution, Normal};
/// let n = Normal::new(0.0, 1.0)?;
/// let lp = n.log_prob(&candle_core::Tensor::new(0f32, &candle_core::Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? + 0.918_938_5).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Normal {
    loc: Tensor,
    scale: Tensor,
    batch_shape: Vec<usize>,
    /// `(loc, scale)` as host numbers when both are constants (no gradient to keep): `log_prob`
    /// then needs no broadcast ops.
    consts: Option<(f64, f64)>,
    /// `log(scale)`, computed on first use.
    log_scale: OnceLock<Tensor>,
}

impl Normal {
    /// A normal with mean `loc` and standard deviation `scale > 0` (scalars or tensors, broadcast).
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let (loc, scale) = (loc.into(), scale.into());
        let consts = ops::host_const(&loc).zip(ops::host_const(&scale));
        let r = args::resolve("Normal", vec![("loc", loc), ("scale", scale)])?;
        args::validate_param("Normal", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("Normal", "scale", &r.tensors[1], &Constraint::Positive)?;
        let [loc, scale]: [Tensor; 2] = ops::take(r.tensors);
        Ok(Normal { loc, scale, batch_shape: r.shape, consts, log_scale: OnceLock::new() })
    }

    /// The mean parameter.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The standard-deviation parameter.
    pub fn scale(&self) -> &Tensor {
        &self.scale
    }

    fn log_scale(&self) -> Result<&Tensor> {
        ops::cached(&self.log_scale, || Ok(self.scale.log()?))
    }

    /// `(value - loc) / scale`, of the broadcast of the value with the batch shape.
    fn standardize(&self, value: &Tensor) -> Result<Tensor> {
        Ok(match self.consts {
            Some((l, s)) => args::broadcast_value(value, &self.batch_shape, &[])?.affine(1.0 / s, -l / s)?,
            None => value.broadcast_sub(&self.loc)?.broadcast_div(&self.scale)?,
        })
    }
}

impl Distribution for Normal {
    fn name(&self) -> &'static str {
        "Normal"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
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
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let eps = rng.normal_tensor(&shape, self.dtype(), self.device())?;
        Ok(eps.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        self.log_prob_event(value, 0)
    }
    /// One fused pass over `(value, loc, scale)` on the CPU (log-density and its sum over the
    /// rightmost `event_dims` dims, see [`crate::nn::fused::normal_log_prob`]); Candle ops elsewhere.
    fn log_prob_event(&self, value: &Tensor, event_dims: usize) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Normal", value, &Constraint::Real)?;
        let cpu = kernels::cpu_kernels(value.device());
        if let (Some((loc, scale)), true) = (self.consts, cpu) {
            let value = args::broadcast_value(value, &self.batch_shape, &[])?;
            return sum_rightmost("Normal", value.apply_op1(NormalLogPdf { loc, scale })?, event_dims);
        }
        if cpu {
            return fused::normal_log_prob(value, &self.loc, &self.scale, event_dims);
        }
        let z2 = self.standardize(value)?.sqr()?;
        sum_rightmost("Normal", z2.affine(-0.5, -HALF_LN_2PI)?.broadcast_sub(self.log_scale()?)?, event_dims)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.scale.sqr()?)
    }
    fn entropy(&self) -> Result<Tensor> {
        Ok(self.log_scale()?.affine(1.0, 0.5 + HALF_LN_2PI)?)
    }
    fn cdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        special::ndtr(&self.standardize(value)?)
    }
    fn icdf(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Normal", value, &Constraint::UnitInterval)?;
        Ok(special::ndtri(value)?.broadcast_mul(&self.scale)?.broadcast_add(&self.loc)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(Normal {
            loc: args::expand_param("Normal", &self.loc, &self.batch_shape, batch_shape)?,
            scale: args::expand_param("Normal", &self.scale, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
            consts: self.consts,
            log_scale: OnceLock::new(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// `-½((x - loc)/scale)² - log(scale) - ½log(2π)` in one pass, for constant `loc`, `scale`
/// (gradient to `x` only); f32 values are computed in f32.
struct NormalLogPdf {
    loc: f64,
    scale: f64,
}

impl candle_core::CustomOp1 for NormalLogPdf {
    fn name(&self) -> &'static str {
        "normal_log_pdf"
    }
    fn cpu_fwd(&self, s: &candle_core::CpuStorage, l: &candle_core::Layout) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        use candle_core::backend::BackendStorage;
        let (m, c) = (1.0 / self.scale, -HALF_LN_2PI - self.scale.ln());
        let out = match s {
            S::F32(v) => {
                let (loc, m, c) = (self.loc as f32, m as f32, c as f32);
                S::F32(candle_core::cpu_backend::unary_map(v, l, |x| {
                    let z = (x - loc) * m;
                    -0.5 * z * z + c
                }))
            }
            S::F64(v) => S::F64(candle_core::cpu_backend::unary_map(v, l, |x| {
                let z = (x - self.loc) * m;
                -0.5 * z * z + c
            })),
            s => candle_core::bail!("`Normal.log_prob` needs an f32 or f64 value, got {:?}", s.dtype()),
        };
        Ok((out, l.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let v = self.scale * self.scale;
        Ok(Some(g.mul(&x.affine(-1.0 / v, self.loc / v)?)?))
    }
}
