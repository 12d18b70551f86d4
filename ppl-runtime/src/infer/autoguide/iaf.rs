//! `AutoIafNormal`: inverse autoregressive flows (Kingma et al. 2016) over MADE networks
//! (Germain et al. 2015), pushed from a standard Normal.

use super::continuous::{AutoContinuous, LatentFamily, ParamGetter};
use crate::dist::{
    Constraint, Delta, DistRef, Distribution, DistributionExt, Normal, Transform, TransformRef, TransformedDistribution,
};
use crate::error::{Error, Result};
use crate::nn::{init, linear};
use crate::primitives::{ParamOptions, param_with};
use crate::runtime::with_rng;
use crate::site::ParamInit;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Bounds of the log-scale of an affine autoregressive step (Pyro's defaults).
const LOG_SCALE_MIN: f64 = -5.0;
const LOG_SCALE_MAX: f64 = 3.0;

/// A masked autoencoder (MADE) over `dim` inputs: ReLU hidden layers whose connections are
/// masked so that outputs `i` and `dim + i` (the shift and log-scale of coordinate `i`) depend
/// only on the inputs that come before `i` in the flow's order (the natural order, or reversed).
#[derive(Clone, Debug)]
pub struct Made {
    dim: usize,
    /// `(weight [in, out], bias [out], mask [in, out])` per layer.
    layers: Vec<(Tensor, Tensor, Tensor)>,
}

/// The connectivity masks of a MADE with `hidden` layer sizes over `dim` inputs, `[in, out]`
/// each, the last `[h, 2 dim]`. `reversed` orders the coordinates `dim-1, ..., 0`.
pub(crate) fn made_masks(dim: usize, hidden: &[usize], reversed: bool) -> Vec<Vec<f64>> {
    let degree_in: Vec<usize> = (0..dim).map(|i| if reversed { dim - i } else { i + 1 }).collect();
    let span = dim.saturating_sub(1).max(1);
    let mut prev = degree_in.clone();
    let mut masks = Vec::new();
    for &h in hidden {
        let deg: Vec<usize> = (0..h).map(|k| k % span + 1).collect();
        masks.push(prev.iter().flat_map(|&p| deg.iter().map(move |&d| if d >= p { 1.0 } else { 0.0 })).collect());
        prev = deg;
    }
    let out_deg: Vec<usize> = degree_in.iter().chain(degree_in.iter()).copied().collect();
    masks.push(prev.iter().flat_map(|&p| out_deg.iter().map(move |&d| if d > p { 1.0 } else { 0.0 })).collect());
    masks
}

impl Made {
    /// The layer sizes: `dim, hidden.., 2 dim`.
    fn sizes(dim: usize, hidden: &[usize]) -> Vec<usize> {
        let mut s = vec![dim];
        s.extend_from_slice(hidden);
        s.push(2 * dim);
        s
    }

    /// The network whose parameters `{name}.w{l}` / `{name}.b{l}` are read from (or created, seeded,
    /// in) the current parameter store. The output layer starts small (a near-identity flow) with
    /// the shift's bias at `shift_init`.
    pub fn from_store(name: &str, dim: usize, hidden: &[usize], reversed: bool, shift_init: &Tensor) -> Result<Made> {
        let (dtype, device) = (shift_init.dtype(), shift_init.device().clone());
        let sizes = Self::sizes(dim, hidden);
        let masks = made_masks(dim, hidden, reversed);
        let last = sizes.len() - 2;
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        for l in 0..sizes.len() - 1 {
            let (i, o) = (sizes[l], sizes[l + 1]);
            let w = param_with(
                format!("{name}.w{l}"),
                ParamInit::lazy(|| {
                    let w = with_rng(|rng| init::linear_weight(rng, i, o, dtype, &device))?;
                    Ok(if l == last { (w * 0.01)? } else { w })
                }),
                ParamOptions::default(),
            )?;
            let b = param_with(
                format!("{name}.b{l}"),
                ParamInit::lazy(|| {
                    if l == last {
                        let zeros = Tensor::zeros(dim, dtype, &device)?;
                        Ok(Tensor::cat(&[shift_init, &zeros], 0)?)
                    } else {
                        with_rng(|rng| init::linear_bias(rng, i, o, dtype, &device))
                    }
                }),
                ParamOptions::default(),
            )?;
            let mask = Tensor::from_vec(masks[l].clone(), (i, o), &device)?.to_dtype(dtype)?;
            layers.push((w, b, mask));
        }
        Ok(Made { dim, layers })
    }

    /// The network with fitted parameters read through `param` (suffixes `{name}.w{l}` etc.).
    fn from_getter(param: &ParamGetter, name: &str, dim: usize, hidden: &[usize], reversed: bool) -> Result<Made> {
        let sizes = Self::sizes(dim, hidden);
        let masks = made_masks(dim, hidden, reversed);
        let mut layers = Vec::new();
        for l in 0..sizes.len() - 1 {
            let w = param(&format!("{name}.w{l}"))?.detach();
            let b = param(&format!("{name}.b{l}"))?.detach();
            let mask = Tensor::from_vec(masks[l].clone(), (sizes[l], sizes[l + 1]), w.device())?.to_dtype(w.dtype())?;
            layers.push((w, b, mask));
        }
        Ok(Made { dim, layers })
    }

    /// `(shift, log_scale)` for inputs `[.., dim]`, the log-scale clamped to `[-5, 3]`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        let n = self.layers.len();
        for (l, (w, b, m)) in self.layers.iter().enumerate() {
            h = linear(&h, &w.mul(m)?, Some(b))?;
            if l + 1 < n {
                h = h.relu()?;
            }
        }
        let last = h.rank() - 1;
        let shift = h.narrow(last, 0, self.dim)?;
        let log_scale = h.narrow(last, self.dim, self.dim)?.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)?;
        Ok((shift, log_scale))
    }

    /// One IAF step over inputs `[.., dim]`: `y = exp(s(x)) ⊙ x + m(x)` and its
    /// `log|det J| = Σ s(x)` over the last dim — what a flow's draw and its log-density need.
    pub fn flow(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (m, s) = self.forward(x)?;
        Ok((s.exp()?.mul(x)?.add(&m)?, s.sum(s.rank() - 1)?))
    }
}

/// One affine autoregressive step `y = exp(s(x)) ⊙ x + m(x)`, `(m, s)` from a [`Made`]: sampling
/// (forward) is one network pass, the inverse `dim` passes; `log|det J| = Σ s(x)`.
#[derive(Clone, Debug)]
pub struct IafTransform {
    made: Arc<Made>,
}

impl IafTransform {
    /// The step over `made`.
    pub fn new(made: Made) -> Self {
        IafTransform { made: Arc::new(made) }
    }
}

impl Transform for IafTransform {
    fn name(&self) -> &'static str {
        "IafTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.made.flow(x)?.0)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let mut x = y.zeros_like()?;
        for _ in 0..self.made.dim {
            let (m, s) = self.made.forward(&x)?;
            x = y.sub(&m)?.mul(&s.neg()?.exp()?)?;
        }
        Ok(x)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        let (_, s) = self.made.forward(x)?;
        Ok(s.sum(s.rank() - 1)?)
    }
    fn domain(&self) -> Constraint {
        Constraint::RealVector
    }
    fn codomain(&self) -> Constraint {
        Constraint::RealVector
    }
}

/// `num_transforms` IAF steps (alternating coordinate order) over a standard Normal.
#[derive(Clone, Debug)]
pub struct IafFamily {
    hidden: Option<Vec<usize>>,
    num_transforms: usize,
}

impl IafFamily {
    fn hidden_for(&self, dim: usize) -> Vec<usize> {
        self.hidden.clone().unwrap_or_else(|| vec![3 * dim + 10])
    }

    fn dim_of(param: &ParamGetter) -> Result<usize> {
        Ok(param("iaf0.w0")?.dim(0)?)
    }

    /// The flow's steps with fitted parameters.
    pub(crate) fn transforms(&self, param: &ParamGetter) -> Result<Vec<TransformRef>> {
        let dim = Self::dim_of(param)?;
        let hidden = self.hidden_for(dim);
        (0..self.num_transforms)
            .map(|k| {
                let made = Made::from_getter(param, &format!("iaf{k}"), dim, &hidden, k % 2 == 1)?;
                Ok(Arc::new(IafTransform::new(made)) as TransformRef)
            })
            .collect()
    }
}

impl LatentFamily for IafFamily {
    const NAME: &'static str = "AutoIafNormal";

    /// A draw `z` of the flow, recorded as `Delta(z, log q(z))`: `log q` is computed from the
    /// base draw and the steps' log-scales, so no inverse pass is needed.
    fn latent(&self, prefix: &str, init: &Tensor) -> Result<DistRef> {
        let dim = init.dim(0)?;
        let hidden = self.hidden_for(dim);
        let (dtype, device) = (init.dtype(), init.device().clone());
        let eps = with_rng(|r| r.normal_tensor(&[dim], dtype, &device))?;
        let mut log_q = standard_normal(dim, dtype, &device)?.log_prob(&eps)?;
        let mut x = eps;
        let zeros = init.zeros_like()?;
        for k in 0..self.num_transforms {
            let shift = if k + 1 == self.num_transforms { init } else { &zeros };
            let made = Made::from_store(&format!("{prefix}.iaf{k}"), dim, &hidden, k % 2 == 1, shift)?;
            let (y, log_det) = made.flow(&x)?;
            x = y;
            log_q = log_q.sub(&log_det)?;
        }
        Ok(Delta::new(&x, &log_q, 1)?.into_ref())
    }

    fn posterior(&self, param: &ParamGetter) -> Result<DistRef> {
        let dim = Self::dim_of(param)?;
        let w = param("iaf0.w0")?;
        let base = standard_normal(dim, w.dtype(), w.device())?.into_ref();
        Ok(TransformedDistribution::new(base, self.transforms(param)?)?.into_ref())
    }

    fn loc_scale(&self, _param: &ParamGetter) -> Result<(Tensor, Tensor)> {
        Err(Error::Unsupported {
            dist: "AutoIafNormal",
            method: "median/quantiles",
            hint: Some(
                "the flow's marginals have no closed form: use `sample_posterior` and empirical quantiles".into(),
            ),
        })
    }
}

fn standard_normal(dim: usize, dtype: DType, device: &Device) -> Result<crate::dist::Independent> {
    let zeros = Tensor::zeros(dim, dtype, device)?;
    Normal::new(&zeros, &zeros.ones_like()?)?.to_event(1)
}

/// Inverse autoregressive flows over a standard Normal on the flat latent vector (Pyro's
/// `AutoIAFNormal`): `num_transforms` affine autoregressive steps (default 1; odd steps use the
/// reversed coordinate order), each a MADE with ReLU hidden layers (default one of `3·dim + 10`
/// units); parameters `{prefix}.iaf{k}.w{l}` / `.b{l}`. The last step's shift starts at the
/// init strategy's point and its output weights small, so the flow starts near
/// `Normal(init, I)`. `median`/`quantiles` are unsupported (use `sample_posterior`).
pub type AutoIafNormal<P, M> = AutoContinuous<P, M, IafFamily>;

impl<P, M> AutoContinuous<P, M, IafFamily> {
    /// An `AutoIafNormal` guide for `model`.
    pub fn new(model: P) -> Self {
        Self::with_family(model, IafFamily { hidden: None, num_transforms: 1 })
    }

    /// Sets the hidden layer sizes of every MADE.
    pub fn hidden(mut self, sizes: &[usize]) -> Self {
        self.family.hidden = Some(sizes.to_vec());
        self
    }

    /// Sets the number of flow steps.
    pub fn num_transforms(mut self, n: usize) -> Self {
        self.family.num_transforms = n.max(1);
        self
    }

    /// The fitted flow's steps (first applied first), for checks and custom use.
    pub fn transforms(&self, params: &crate::params::ParamStore) -> Result<Vec<TransformRef>> {
        self.shared.fitted()?;
        self.family.transforms(&|s: &str| self.shared.param(params, s))
    }
}

#[cfg(test)]
mod tests {
    use super::made_masks;

    /// Output `i` (shift) may depend on input `j` only if `j` comes before `i` in the order:
    /// the product of the masks (paths from input to output) is zero elsewhere.
    #[test]
    fn made_masks_are_autoregressive() {
        for reversed in [false, true] {
            let (dim, hidden) = (4, [7usize, 5]);
            let masks = made_masks(dim, &hidden, reversed);
            let sizes = [dim, 7, 5, 2 * dim];
            // paths[i][o] = number of paths from input i to unit o of the current layer.
            let mut paths: Vec<Vec<f64>> =
                (0..dim).map(|i| (0..dim).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
            for (l, m) in masks.iter().enumerate() {
                let (inp, out) = (sizes[l], sizes[l + 1]);
                paths = paths
                    .iter()
                    .map(|row| (0..out).map(|o| (0..inp).map(|k| row[k] * m[k * out + o]).sum()).collect())
                    .collect();
            }
            let order = |i: usize| if reversed { dim - 1 - i } else { i };
            for (i, row) in paths.iter().enumerate() {
                for (o, &count) in row.iter().enumerate() {
                    let allowed = order(i) < order(o % dim);
                    assert_eq!(count > 0.0, allowed, "input {i} -> output {o} (reversed {reversed})");
                }
            }
        }
    }
}
