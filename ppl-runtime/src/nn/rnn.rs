//! A gated recurrent unit (GRU) over `[B, T, D]` batches, forwards or backwards in time, with an
//! optional mask so that padded steps of shorter sequences never reach the valid steps.
//!
//! Composed of ppl's fused [`linear`] op and activations (so it runs on any device): the
//! input projection of all steps is one product, then each step is one `[B, H] × [H, 3H]`
//! product and a handful of elementwise ops.

use crate::error::{Error, Result};
use crate::nn::{init, linear, sigmoid, tanh};
use crate::primitives::{ParamOptions, param_with};
use crate::site::ParamInit;
use candle_core::{DType, Device, Tensor};

/// The direction a recurrent layer walks the time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `t = 0, 1, …, T−1`: the state at `t` summarises `x_0..=x_t`.
    Forward,
    /// `t = T−1, …, 0`: the state at `t` summarises `x_t..` (to the sequence's end).
    Backward,
}

/// The weights of a GRU, in PyTorch's gate order `(r, z, n)` but stored `[in, 3H]` / `[H, 3H]`
/// (the transpose of PyTorch's `weight_ih_l0` / `weight_hh_l0`).
#[derive(Clone, Debug)]
pub struct GruWeights {
    /// `[D, 3H]`: input weights of the reset, update and new gates.
    pub w_ih: Tensor,
    /// `[H, 3H]`: hidden weights of the same gates.
    pub w_hh: Tensor,
    /// `[3H]`.
    pub b_ih: Tensor,
    /// `[3H]`.
    pub b_hh: Tensor,
}

/// Runs a GRU (PyTorch's equations) over `x` `[B, T, D]` from the initial state `h0` (`[H]`,
/// broadcast over the batch, or `[B, H]`) and returns every step's state `[B, T, H]`:
///
/// ```text
/// r = σ(x W_ir + b_ir + h W_hr + b_hr)
/// z = σ(x W_iz + b_iz + h W_hz + b_hz)
/// n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// With a `mask` `[B, T]` (u8 0/1, or a float tensor of 0/1), a masked-out step does not update
/// the state: it is reset to `h0` instead, and its output is `h0`. Walking [`Direction::Backward`]
/// over sequences padded at the end, each sequence therefore starts from `h0` at its own last
/// step, exactly as if it had been run alone (PyTorch's packed sequences).
pub fn gru(x: &Tensor, h0: &Tensor, w: &GruWeights, direction: Direction, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, t_len, d) = match x.dims() {
        &[b, t, d] => (b, t, d),
        s => return Err(Error::invalid_arg("gru", "x", format!("must be `[batch, time, features]`, got shape {s:?}"))),
    };
    let h = w.w_hh.dim(0)?;
    let check = |name: &str, t: &Tensor, want: &[usize]| -> Result<()> {
        if t.dims() != want {
            return Err(Error::shape_mismatch(format!("gru: `{name}`"), want, t.dims()));
        }
        Ok(())
    };
    check("w_ih", &w.w_ih, &[d, 3 * h])?;
    check("w_hh", &w.w_hh, &[h, 3 * h])?;
    check("b_ih", &w.b_ih, &[3 * h])?;
    check("b_hh", &w.b_hh, &[3 * h])?;
    let h0 = match h0.dims() {
        [hh] if *hh == h => h0.unsqueeze(0)?.broadcast_as((b, h))?.contiguous()?,
        [bb, hh] if *bb == b && *hh == h => h0.clone(),
        s => {
            return Err(Error::ShapeMismatch {
                context: "gru: the initial state `h0`".into(),
                expected: format!("[{h}] or [{b}, {h}]"),
                got: format!("{s:?}"),
                hint: None,
            });
        }
    };
    let mask = match mask {
        None => None,
        Some(m) => {
            check("mask", m, &[b, t_len])?;
            Some(m.to_dtype(x.dtype())?.unsqueeze(2)?)
        }
    };
    // Input projections of every step at once: [B, T, 3H].
    let gx = linear(x, &w.w_ih, Some(&w.b_ih))?;
    let mut state = h0.clone();
    let mut outs = vec![None; t_len];
    let order: Box<dyn Iterator<Item = usize>> = match direction {
        Direction::Forward => Box::new(0..t_len),
        Direction::Backward => Box::new((0..t_len).rev()),
    };
    for t in order {
        let gx_t = gx.narrow(1, t, 1)?.squeeze(1)?;
        let gh = linear(&state, &w.w_hh, Some(&w.b_hh))?;
        let rz = sigmoid(&(gx_t.narrow(1, 0, 2 * h)? + gh.narrow(1, 0, 2 * h)?)?)?;
        let (r, z) = (rz.narrow(1, 0, h)?, rz.narrow(1, h, h)?);
        let n = tanh(&(gx_t.narrow(1, 2 * h, h)? + r.mul(&gh.narrow(1, 2 * h, h)?)?)?)?;
        // h' = n + z ⊙ (h − n)
        let mut next = (&n + z.mul(&(&state - &n)?)?)?;
        if let Some(m) = &mask {
            let m_t = m.narrow(1, t, 1)?.squeeze(1)?;
            next = (&h0 + m_t.broadcast_mul(&(next - &h0)?)?)?;
        }
        outs[t] = Some(next.clone());
        state = next;
    }
    let outs: Vec<Tensor> = outs.into_iter().flatten().collect();
    if outs.is_empty() {
        return Ok(Tensor::zeros((b, 0, h), x.dtype(), x.device())?);
    }
    Ok(Tensor::stack(&outs, 1)?)
}

/// A GRU layer whose weights live in the current [`ParamStore`](crate::params::ParamStore) as
/// `{name}.weight_ih` (`[in, 3H]`), `{name}.weight_hh` (`[H, 3H]`), `{name}.bias_ih` and
/// `{name}.bias_hh` (`[3H]`), gates in PyTorch's order `(r, z, n)`, created on first use with
/// PyTorch's initialisation `Uniform(−1/√H, 1/√H)` drawn from ppl's generator. See [`gru`] for
/// the equations and the mask.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use ppl_runtime::{ParamStore, handlers::seed, nn::{Direction, Gru}};
/// let rnn = Gru::new("rnn", 88, 16);
/// let x = Tensor::zeros((4, 10, 88), DType::F32, &Device::Cpu)?;
/// let h0 = Tensor::zeros(16, DType::F32, &Device::Cpu)?;
/// let store = ParamStore::new();
/// let hs = store.scope(|| seed(0, || rnn.forward(&x, &h0, Direction::Backward, None)))?;
/// assert_eq!(hs.dims(), &[4, 10, 16]);
/// assert_eq!(store.len(), 4);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Gru {
    name: String,
    in_dim: usize,
    hidden_dim: usize,
}

impl Gru {
    /// A GRU named `name` reading `in_dim` features with a state of `hidden_dim`.
    pub fn new(name: impl Into<String>, in_dim: usize, hidden_dim: usize) -> Gru {
        Gru { name: name.into(), in_dim, hidden_dim }
    }

    /// The layer's name (the prefix of its parameters' names).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size of the state.
    pub fn hidden_dim(&self) -> usize {
        self.hidden_dim
    }

    /// The weights from the current parameter store, created there (seeded) in `dtype` on
    /// `device` if missing.
    pub fn weights(&self, dtype: DType, device: &Device) -> Result<GruWeights> {
        let (d, h) = (self.in_dim, self.hidden_dim);
        let bound = 1.0 / (h.max(1) as f64).sqrt();
        let get = |suffix: &str, shape: Vec<usize>| -> Result<Tensor> {
            let name = format!("{}.{suffix}", self.name);
            let shape2 = shape.clone();
            let t = param_with(
                name.as_str(),
                ParamInit::lazy(move || crate::runtime::with_rng(|rng| init::uniform(rng, &shape2, -bound, bound, dtype, device))),
                ParamOptions::default(),
            )?;
            if t.dims() != shape.as_slice() {
                return Err(Error::shape_mismatch(format!("Gru `{}`: parameter `{name}`", self.name), &shape, t.dims()));
            }
            Ok(t)
        };
        Ok(GruWeights {
            w_ih: get("weight_ih", vec![d, 3 * h])?,
            w_hh: get("weight_hh", vec![h, 3 * h])?,
            b_ih: get("bias_ih", vec![3 * h])?,
            b_hh: get("bias_hh", vec![3 * h])?,
        })
    }

    /// Runs [`gru`] over `x` `[B, T, in]` from `h0` with the layer's weights (created in `x`'s
    /// dtype and on its device); returns `[B, T, H]`.
    pub fn forward(&self, x: &Tensor, h0: &Tensor, direction: Direction, mask: Option<&Tensor>) -> Result<Tensor> {
        let w = self.weights(x.dtype(), x.device())?;
        gru(x, h0, &w, direction, mask).map_err(|e| e.at_site(&self.name, None))
    }
}
