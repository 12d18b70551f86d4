//! The normal (Gaussian) distribution, and elementwise helper ops shared by the continuous
//! distributions.

use crate::dist::{kernels, ops};
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::special;
use crate::error::Result;
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
        args::check_value_shape("Normal", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("Normal", value, &Constraint::Real)?;
        let cpu = kernels::cpu_kernels(value.device());
        if let (Some((loc, scale)), true) = (self.consts, cpu) {
            let value = args::broadcast_value(value, &self.batch_shape, &[])?;
            return Ok(value.apply_op1(NormalLogPdf { loc, scale })?);
        }
        if cpu {
            // One fused pass over (x, loc, scale) instead of five elementwise ops.
            let [x, loc, scale] = ops::broadcast_contiguous([value, &self.loc, &self.scale])?;
            return Ok(x.apply_op3(&loc, &scale, NormalLogPdf3)?);
        }
        let z2 = self.standardize(value)?.sqr()?;
        Ok(z2.affine(-0.5, -HALF_LN_2PI)?.broadcast_sub(self.log_scale()?)?)
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

/// `-½((x - loc)/scale)² - log(scale) - ½log(2π)` in one pass over three contiguous
/// same-shape tensors, differentiable in all three.
struct NormalLogPdf3;

impl candle_core::CustomOp3 for NormalLogPdf3 {
    fn name(&self) -> &'static str {
        "normal_log_pdf"
    }
    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
        s3: &candle_core::CpuStorage,
        l3: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        let (Some((a0, a1)), Some((b0, b1)), Some((c0, c1))) = (l1.contiguous_offsets(), l2.contiguous_offsets(), l3.contiguous_offsets())
        else {
            candle_core::bail!("`normal_log_pdf` needs contiguous inputs")
        };
        macro_rules! run {
            ($x:expr, $m:expr, $s:expr, $t:ty) => {
                $x[a0..a1]
                    .iter()
                    .zip(&$m[b0..b1])
                    .zip(&$s[c0..c1])
                    .map(|((&x, &m), &s)| {
                        let z = (x - m) / s;
                        -0.5 * z * z - s.ln() - HALF_LN_2PI as $t
                    })
                    .collect()
            };
        }
        let out = match (s1, s2, s3) {
            (S::F32(x), S::F32(m), S::F32(s)) => S::F32(run!(x, m, s, f32)),
            (S::F64(x), S::F64(m), S::F64(s)) => S::F64(run!(x, m, s, f64)),
            _ => candle_core::bail!("`Normal.log_prob` needs value and parameters of one float dtype"),
        };
        Ok((out, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, loc: &Tensor, scale: &Tensor, _res: &Tensor, g: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // z = (x - loc)/scale: d/dx = -z/scale, d/dloc = z/scale, d/dscale = (z² - 1)/scale.
        let z = ((x - loc)? / scale)?;
        let gs = (g / scale)?;
        let dloc = (&z * &gs)?;
        let dscale = (z.sqr()?.affine(1.0, -1.0)? * &gs)?;
        Ok((Some(dloc.neg()?), Some(dloc), Some(dscale)))
    }
}
