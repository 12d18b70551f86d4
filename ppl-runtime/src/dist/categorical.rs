//! The categorical distribution over `{0, ..., K-1}`, parameterized by `probs` or `logits`.

use crate::defaults;
use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution, sum_rightmost};
use crate::dist::kernels;
use crate::nn::fused;
use crate::error::{Error, Result};
use crate::rng::Rng;
use candle_core::{D, DType, Device, Tensor};
use std::sync::Arc;

/// Categorical distribution over `{0, ..., K-1}`, where `K` is the last dim of `probs`/`logits`
/// (torch convention: `batch_shape = probs.dims()[..-1]`, `event_shape = []`).
///
/// **Values are index tensors**: [`sample`](Distribution::sample) and
/// [`enumerate_support`](Distribution::enumerate_support) return `U32` tensors (Candle's index
/// dtype for `gather`/`index_select`), unlike the other discrete distributions whose values are
/// floats. [`log_prob`](Distribution::log_prob) accepts `U8`, `U32`, `I64` and float index
/// tensors (floats must hold integers).
///
/// Zero probabilities are clamped to the dtype's smallest positive normal number inside the log,
/// so their log-mass is finite (about -87.3 in f32, -708.4 in f64) and gradients stay finite;
/// `-inf` logits passed to [`Categorical::from_logits`] are kept as `-inf`.
///
/// ```
/// use ppl_runtime::dist::{Categorical, Distribution};
/// use candle_core::{Device, Tensor};
/// let c = Categorical::new(&Tensor::new(&[0.2f32, 0.3, 0.5], &Device::Cpu)?)?;
/// let lp = c.log_prob(&Tensor::new(2u32, &Device::Cpu)?)?;
/// assert!((lp.to_scalar::<f32>()? - 0.5f32.ln()).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Categorical {
    /// Normalized log-probabilities, `batch_shape ++ [K]`.
    logits: Tensor,
    /// Probabilities, `batch_shape ++ [K]`.
    probs: Tensor,
    batch_shape: Vec<usize>,
}

/// The most negative finite number of `dtype` (as torch's `finfo.min`).
pub(crate) fn finfo_min(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::MIN,
        DType::F16 => -65504.0,
        DType::BF16 => -3.389_531_4e38,
        _ => f32::MIN as f64,
    }
}

/// The smallest positive normal number of `dtype` (as torch's `finfo.tiny`).
pub(crate) fn finfo_tiny(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => f64::MIN_POSITIVE,
        DType::F16 => 6.103_515_6e-5,
        _ => f32::MIN_POSITIVE as f64,
    }
}

fn need_rank1(dist: &'static str, arg: &'static str, t: &Tensor) -> Result<()> {
    if t.rank() == 0 || t.dims()[t.rank() - 1] == 0 {
        return Err(Error::invalid_arg(
            format!("`{dist}`"),
            arg,
            format!("needs at least one dim whose last dim is the number of categories, got shape {:?}", t.dims()),
        ));
    }
    Ok(())
}

/// Checks logits for NaN or `+inf`, and for rows with no finite entry (`-inf` is allowed, to
/// rule categories out).
pub(crate) fn validate_logits(dist: &'static str, logits: &Tensor) -> Result<()> {
    if !defaults::validation_enabled() {
        return Ok(());
    }
    let k = logits.dims()[logits.rank() - 1];
    let v = logits.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    for (r, row) in v.chunks(k).enumerate() {
        if let Some(j) = row.iter().position(|x| x.is_nan() || *x == f64::INFINITY) {
            let detail = format!("element {j} of row {r} is {}", row[j]);
            return Err(Error::InvalidParameter { dist, arg: "logits", constraint: "real (or -inf)".into(), detail });
        }
        if row.iter().all(|x| *x == f64::NEG_INFINITY) {
            let detail = format!("row {r} is all -inf");
            return Err(Error::InvalidParameter { dist, arg: "logits", constraint: "real (or -inf)".into(), detail });
        }
    }
    Ok(())
}

impl Categorical {
    /// Categorical with event probabilities `probs` (last dim = categories; each row on the simplex).
    pub fn new(probs: impl Into<Arg>) -> Result<Self> {
        Self::new_named("Categorical", probs.into())
    }

    /// Categorical with unnormalized log-probabilities `logits` (last dim = categories).
    pub fn from_logits(logits: impl Into<Arg>) -> Result<Self> {
        Self::from_logits_named("Categorical", logits.into())
    }

    pub(crate) fn new_named(dist: &'static str, probs: Arg) -> Result<Self> {
        let r = args::resolve(dist, vec![("probs", probs)])?;
        let p = &r.tensors[0];
        need_rank1(dist, "probs", p)?;
        args::validate_param(dist, "probs", p, &Constraint::Simplex)?;
        let probs = p.broadcast_div(&p.sum_keepdim(D::Minus1)?)?;
        let logits = probs.clamp(finfo_tiny(r.dtype), 1.0)?.log()?;
        let batch_shape = r.shape[..r.shape.len() - 1].to_vec();
        Ok(Categorical { logits, probs, batch_shape })
    }

    pub(crate) fn from_logits_named(dist: &'static str, logits: Arg) -> Result<Self> {
        let r = args::resolve(dist, vec![("logits", logits)])?;
        let l = &r.tensors[0];
        need_rank1(dist, "logits", l)?;
        validate_logits(dist, l)?;
        let logits = l.broadcast_sub(&l.log_sum_exp(D::Minus1)?.unsqueeze(D::Minus1)?)?;
        let probs = logits.exp()?;
        let batch_shape = r.shape[..r.shape.len() - 1].to_vec();
        Ok(Categorical { logits, probs, batch_shape })
    }

    /// The normalized log-probabilities, `batch_shape ++ [K]`.
    pub fn logits(&self) -> &Tensor {
        &self.logits
    }

    /// The probabilities, `batch_shape ++ [K]`.
    pub fn probs(&self) -> &Tensor {
        &self.probs
    }

    /// The number of categories `K`.
    pub fn num_categories(&self) -> usize {
        self.logits.dims()[self.logits.rank() - 1]
    }

    /// The same categorical with parameters broadcast to `batch_shape` (a concrete [`expand`](Distribution::expand)).
    pub fn expand_to(&self, batch_shape: &[usize]) -> Result<Categorical> {
        Ok(Categorical {
            logits: args::expand_param(self.name(), &self.logits, &self.batch_shape, batch_shape)?,
            probs: args::expand_param(self.name(), &self.probs, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        })
    }

    /// Draws `U32` category indices of shape `sample_shape ++ batch_shape`.
    pub(crate) fn sample_indices(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let k = self.num_categories();
        let p = self.probs.detach().flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        // Row-wise cumulative sums; the last entry is forced to 1 so rounding never falls off.
        let mut cum = p.clone();
        for (row, pr) in cum.chunks_mut(k).zip(p.chunks(k)) {
            for j in 1..k {
                row[j] += row[j - 1];
            }
            // From the last category with positive mass on, so that rounding of the sum can
            // neither fall off the end nor land on a trailing zero-probability category.
            let last = pr.iter().rposition(|&x| x > 0.0).unwrap_or(k - 1);
            row[last..].iter_mut().for_each(|c| *c = f64::INFINITY);
        }
        let nb = cum.len() / k;
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let n: usize = shape.iter().product();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let row = &cum[(i % nb) * k..(i % nb + 1) * k];
            let u = rng.uniform_open01();
            // First j with u < cum[j], skipping zero-probability categories.
            let j = row.partition_point(|&c| c <= u);
            out.push(j.min(k - 1) as u32);
        }
        Ok(Tensor::from_vec(out, shape, self.device())?)
    }

    /// `log_prob` of an index tensor already checked for shape and support.
    pub(crate) fn log_prob_indices(&self, idx: &Tensor) -> Result<Tensor> {
        let idx = if idx.dtype() == DType::U32 { idx.clone() } else { idx.to_dtype(DType::U32)? };
        let shape = args::broadcast_shapes(idx.dims(), &self.batch_shape).ok_or_else(|| {
            Error::shape_mismatch(format!("`{}`.log_prob", self.name()), &self.batch_shape, idx.dims())
        })?;
        let k = self.num_categories();
        let full = args::concat_shapes(&shape, &[k]);
        // Candle's gather needs a contiguous source: materialize only when broadcasting.
        let logits = if self.logits.dims() == full.as_slice() {
            self.logits.contiguous()?
        } else {
            self.logits.broadcast_as(full)?.contiguous()?
        };
        let idx = idx.broadcast_as(shape.as_slice())?.unsqueeze(D::Minus1)?.contiguous()?;
        Ok(logits.gather(&idx, D::Minus1)?.squeeze(D::Minus1)?)
    }
}

/// Category indices must be `U8`, `U32`, `I64` or floats.
fn check_index_dtype(value: &Tensor) -> Result<()> {
    match value.dtype() {
        DType::U8 | DType::U32 | DType::I64 => Ok(()),
        dt if dt.is_float() => Ok(()),
        dt => Err(Error::invalid_arg(
            "`Categorical`.log_prob",
            "value",
            format!("expected an index tensor (U8, U32, I64 or float), got {dt:?}"),
        )),
    }
}

impl Distribution for Categorical {
    fn name(&self) -> &'static str {
        "Categorical"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.logits.dtype()
    }
    fn device(&self) -> &Device {
        self.logits.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        self.sample_indices(rng, sample_shape)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        self.log_prob_event(value, 0)
    }
    /// The log-mass summed over the rightmost `event_dims` dims: on the CPU in one fused pass
    /// ([`crate::nn::fused::categorical_logits_log_prob`]), elsewhere by `gather`.
    fn log_prob_event(&self, value: &Tensor, event_dims: usize) -> Result<Tensor> {
        check_index_dtype(value)?;
        // Any index dtype is accepted, so the dtype check of `check_value_shape` is skipped.
        args::check_value_shape("Categorical", value, &self.batch_shape, &[], value.dtype())?;
        if kernels::cpu_kernels(value.device()) && matches!(self.dtype(), DType::F32 | DType::F64) {
            // The kernel rejects indices outside `0..K` itself; the full check runs only to
            // word that error as the other path does.
            return fused::categorical_logits_log_prob(&self.logits, value, event_dims).or_else(|e| {
                args::validate_value("Categorical", value, &self.support())?;
                Err(e)
            });
        }
        args::validate_value("Categorical", value, &self.support())?;
        sum_rightmost(self.name(), self.log_prob_indices(value)?, event_dims)
    }
    fn support(&self) -> Constraint {
        Constraint::IntegerInterval(0, self.num_categories() as i64 - 1)
    }
    fn has_enumerate_support(&self) -> bool {
        true
    }
    fn enumerate_support(&self, expand: bool) -> Result<Tensor> {
        let k = self.num_categories();
        let mut shape = vec![k];
        shape.extend(std::iter::repeat_n(1, self.batch_shape.len()));
        let v = Tensor::arange(0u32, k as u32, self.device())?.reshape(shape)?;
        if expand { Ok(v.broadcast_as(args::concat_shapes(&[k], &self.batch_shape))?.contiguous()?) } else { Ok(v) }
    }
    fn entropy(&self) -> Result<Tensor> {
        // -sum p log p, with -inf logits clamped so that 0 * -inf gives 0, not NaN.
        let l = self.logits.clamp(finfo_min(self.dtype()), f64::INFINITY)?;
        Ok((&self.probs * l)?.sum(D::Minus1)?.neg()?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(self.expand_to(batch_shape)?))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
