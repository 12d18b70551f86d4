//! Seeded initialisation of network weights, for ppl's layers and for candle-nn's.
//!
//! Candle's CPU device cannot be seeded, so `candle_nn::linear` and `Init::{Randn, Kaiming}`
//! give different weights on every run. Everything here draws from a ppl [`Rng`] instead: inside
//! [`seed`](crate::handlers::seed) (through [`with_rng`](crate::runtime::with_rng)) a whole run
//! — ppl layers and candle-nn layers built with [`var_builder`] — is reproducible from one seed.
//!
//! ```
//! use candle_core::{DType, Device, Module};
//! use ppl_runtime::{handlers::seed, nn::init};
//! let weights = |s| -> ppl_runtime::Result<Vec<Vec<f32>>> {
//!     let vars = candle_nn::VarMap::new();
//!     let vb = init::var_builder(&vars, DType::F32, &Device::Cpu);
//!     let fc = seed(s, || candle_nn::linear(3, 2, vb.pp("fc")))?;
//!     Ok(fc.weight().to_vec2()?)
//! };
//! assert_eq!(weights(7)?, weights(7)?);
//! assert_ne!(weights(7)?, weights(8)?);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

/// `Uniform(lo, hi)` draws of `shape` (drawn in f64, then converted to `dtype`).
pub fn uniform(rng: &mut Rng, shape: &[usize], lo: f64, hi: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| lo + (hi - lo) * rng.uniform_open01()).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?)
}

/// `Normal(mean, std)` draws of `shape`.
pub fn normal(rng: &mut Rng, shape: &[usize], mean: f64, std: f64, dtype: DType, device: &Device) -> Result<Tensor> {
    let z = rng.normal_tensor(shape, DType::F64, &Device::Cpu)?;
    Ok(z.affine(std, mean)?.to_dtype(dtype)?.to_device(device)?)
}

/// A `[in_dim, out_dim]` weight as PyTorch's `nn.Linear` initialises it (Kaiming-uniform with
/// `a = √5`): `Uniform(-1/√in_dim, 1/√in_dim)`.
pub fn linear_weight(rng: &mut Rng, in_dim: usize, out_dim: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
    uniform(rng, &[in_dim, out_dim], -bound, bound, dtype, device)
}

/// A `[out_dim]` bias as PyTorch and candle-nn initialise it: `Uniform(-1/√in_dim, 1/√in_dim)`.
pub fn linear_bias(rng: &mut Rng, in_dim: usize, out_dim: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
    uniform(rng, &[out_dim], -bound, bound, dtype, device)
}

/// Draws a tensor of `shape` under one of candle-nn's initialisation schemes, from `rng` — the
/// same distributions as `candle_nn::Init::var` (including its fan computation for Kaiming:
/// `fan_in = shape[1] · receptive field`, candle-nn's `[out, in, ...]` layout), but seeded.
pub fn sample_init(rng: &mut Rng, init: Init, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    match init {
        Init::Const(c) => Ok((Tensor::ones(shape, dtype, device)? * c)?),
        Init::Uniform { lo, up } => uniform(rng, shape, lo, up, dtype, device),
        Init::Randn { mean, stdev } => normal(rng, shape, mean, stdev, dtype, device),
        Init::Kaiming { dist, fan, non_linearity } => {
            let fan = fan_for_shape(fan, shape);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, shape, -bound, bound, dtype, device)
                }
                NormalOrUniform::Normal => normal(rng, shape, 0.0, std, dtype, device),
            }
        }
    }
}

fn fan_for_shape(fan: FanInOut, shape: &[usize]) -> usize {
    fan.for_shape(&Shape::from(shape.to_vec()))
}

/// A candle-nn `VarBuilder` whose missing variables are created in `vars` with seeded draws:
/// each new variable is initialised by [`sample_init`] from the generator of the innermost
/// [`seed`](crate::handlers::seed) handler at creation time (Candle's own `VarMap` backend uses
/// the unseedable CPU RNG). Existing variables are returned as they are (shape-checked), so a
/// `VarMap` filled by `VarMap::load` or a previous run keeps its values.
///
/// Register the network's variables with the parameter store through
/// [`module`](crate::primitives::module) so optimizers see them.
pub fn var_builder(vars: &VarMap, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededBackend { vars: vars.clone() }), dtype, device.clone())
}

/// The backend of [`var_builder`].
struct SeededBackend {
    vars: VarMap,
}

impl SimpleBackend for SeededBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut data = self.vars.data().lock().map_err(|_| candle_core::Error::Msg("the VarMap's lock is poisoned".into()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("var_builder: `{name}` exists with shape {:?}, but shape {:?} was asked for", v.dims(), s.dims());
            }
            return Ok(v.as_tensor().clone());
        }
        let t = crate::runtime::with_rng(|rng| sample_init(rng, h, s.dims(), dtype, dev))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let data = self.vars.data().lock().map_err(|_| candle_core::Error::Msg("the VarMap's lock is poisoned".into()))?;
        match data.get(name) {
            Some(v) => v.as_tensor().to_device(dev)?.to_dtype(dtype),
            None => candle_core::bail!("var_builder: no variable named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}
