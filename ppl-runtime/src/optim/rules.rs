//! The update rules: each once elementwise (for the CPU kernel) and once as Candle ops.

use super::{Fused, Rule};
use crate::error::Result;
use candle_core::Tensor;

/// Options of [`Adam`](super::Adam) (defaults as `torch.optim.Adam`, learning rate 1e-3).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate. Default 1e-3.
    pub lr: f64,
    /// Decay rates of the first and second moment estimates. Default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator. Default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient. Default 0.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Options of [`ClippedAdam`](super::ClippedAdam) (defaults as Pyro's `ClippedAdam`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClippedAdamConfig {
    /// Initial learning rate. Default 1e-3.
    pub lr: f64,
    /// Decay rates of the moment estimates. Default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator. Default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient. Default 0.
    pub weight_decay: f64,
    /// Each gradient element is clamped to `[-clip_norm, clip_norm]` (as Pyro does). Default 10.
    pub clip_norm: f64,
    /// Learning-rate decay per step: step `t` uses `lr * lrd^t`. Default 1 (no decay).
    pub lrd: f64,
}

impl Default for ClippedAdamConfig {
    fn default() -> Self {
        ClippedAdamConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0, clip_norm: 10.0, lrd: 1.0 }
    }
}

/// Options of [`AdamW`](super::AdamW) (defaults as `torch.optim.AdamW`).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate. Default 1e-3.
    pub lr: f64,
    /// Decay rates of the moment estimates. Default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator. Default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay: each step multiplies the parameter by `1 - lr * weight_decay`. Default 0.01.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01 }
    }
}

/// Per-step constants shared by the Adam family.
#[derive(Clone, Copy, Debug)]
pub struct AdamConsts {
    step: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    bc2_sqrt: f64,
    l2: f64,
    shrink: f64,
    clip: f64,
}

fn adam_consts(lr: f64, betas: (f64, f64), eps: f64, l2: f64, decoupled: f64, clip: f64, t: u64) -> AdamConsts {
    let (b1, b2) = betas;
    let t = t as i32;
    AdamConsts {
        step: lr / (1.0 - b1.powi(t)),
        b1,
        b2,
        eps,
        bc2_sqrt: (1.0 - b2.powi(t)).sqrt(),
        l2,
        shrink: 1.0 - lr * decoupled,
        clip,
    }
}

#[inline(always)]
fn adam_update(c: &AdamConsts, p: f64, g: f64, s: &mut [f64]) -> f64 {
    // Branch-free and panic-free (clipping as selects; NaN passes through), so that the
    // kernel's loop vectorizes.
    let g = if g > c.clip {
        c.clip
    } else if g < -c.clip {
        -c.clip
    } else {
        g
    };
    let g = g + c.l2 * p;
    let m = c.b1 * s[0] + (1.0 - c.b1) * g;
    let v = c.b2 * s[1] + (1.0 - c.b2) * g * g;
    s[0] = m;
    s[1] = v;
    // As the tensor path: sqrt(v)·(1/sqrt(1 - β₂ᵗ)) + ε, one division per element.
    p * c.shrink - c.step * m / (v.sqrt() * (1.0 / c.bc2_sqrt) + c.eps)
}

fn adam_update_tensors(c: &AdamConsts, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> Result<Tensor> {
    let mut g = if c.clip.is_finite() { g.clamp(-c.clip, c.clip)? } else { g.clone() };
    if c.l2 != 0.0 {
        g = (g + p.affine(c.l2, 0.0)?)?;
    }
    let m = (s[0].affine(c.b1, 0.0)? + g.affine(1.0 - c.b1, 0.0)?)?;
    let v = (s[1].affine(c.b2, 0.0)? + g.sqr()?.affine(1.0 - c.b2, 0.0)?)?;
    let denom = v.sqrt()?.affine(1.0 / c.bc2_sqrt, c.eps)?;
    let p0 = if c.shrink != 1.0 { p.affine(c.shrink, 0.0)? } else { p.clone() };
    let new = (p0 - (m.div(&denom)? * c.step)?)?;
    s[0] = m;
    s[1] = v;
    Ok(new)
}

impl Rule for AdamConfig {
    const NAME: &'static str = "Adam";
    const SLOTS: usize = 2;
    type Consts = AdamConsts;
    fn consts(&self, f: f64, t: u64) -> AdamConsts {
        adam_consts(self.lr * f, self.betas, self.eps, self.weight_decay, 0.0, f64::INFINITY, t)
    }
    #[inline(always)]
    fn update(c: &AdamConsts, p: f64, g: f64, s: &mut [f64]) -> f64 {
        adam_update(c, p, g, s)
    }
    fn update_tensors(c: &AdamConsts, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> Result<Tensor> {
        adam_update_tensors(c, p, g, s)
    }
}

impl Rule for ClippedAdamConfig {
    const NAME: &'static str = "ClippedAdam";
    const SLOTS: usize = 2;
    type Consts = AdamConsts;
    fn consts(&self, f: f64, t: u64) -> AdamConsts {
        let lr = self.lr * f * self.lrd.powi(t as i32);
        adam_consts(lr, self.betas, self.eps, self.weight_decay, 0.0, self.clip_norm, t)
    }
    #[inline(always)]
    fn update(c: &AdamConsts, p: f64, g: f64, s: &mut [f64]) -> f64 {
        adam_update(c, p, g, s)
    }
    fn update_tensors(c: &AdamConsts, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> Result<Tensor> {
        adam_update_tensors(c, p, g, s)
    }
}

impl Rule for AdamWConfig {
    const NAME: &'static str = "AdamW";
    const SLOTS: usize = 2;
    type Consts = AdamConsts;
    fn consts(&self, f: f64, t: u64) -> AdamConsts {
        adam_consts(self.lr * f, self.betas, self.eps, 0.0, self.weight_decay, f64::INFINITY, t)
    }
    #[inline(always)]
    fn update(c: &AdamConsts, p: f64, g: f64, s: &mut [f64]) -> f64 {
        adam_update(c, p, g, s)
    }
    fn update_tensors(c: &AdamConsts, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> Result<Tensor> {
        adam_update_tensors(c, p, g, s)
    }
}

/// Options of [`Sgd`](super::Sgd) (as `torch.optim.SGD`).
#[derive(Clone, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate. Default 0.01.
    pub lr: f64,
    /// Momentum factor. Default 0 (plain SGD).
    pub momentum: f64,
    /// Dampening of the momentum. Default 0.
    pub dampening: f64,
    /// Nesterov momentum. Default false.
    pub nesterov: bool,
    /// L2 penalty added to the gradient. Default 0.
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { lr: 0.01, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }
}

/// Per-step constants of SGD.
#[derive(Clone, Copy, Debug)]
pub struct SgdConsts {
    lr: f64,
    mu: f64,
    damp: f64,
    nesterov: bool,
    l2: f64,
    first: bool,
}

impl Rule for SgdConfig {
    const NAME: &'static str = "Sgd";
    const SLOTS: usize = 1;
    type Consts = SgdConsts;
    fn consts(&self, f: f64, t: u64) -> SgdConsts {
        SgdConsts {
            lr: self.lr * f,
            mu: self.momentum,
            damp: self.dampening,
            nesterov: self.nesterov,
            l2: self.weight_decay,
            first: t == 1,
        }
    }
    #[inline(always)]
    fn update(c: &SgdConsts, p: f64, g: f64, s: &mut [f64]) -> f64 {
        let mut d = g + c.l2 * p;
        if c.mu != 0.0 {
            let buf = if c.first { d } else { c.mu * s[0] + (1.0 - c.damp) * d };
            s[0] = buf;
            d = if c.nesterov { d + c.mu * buf } else { buf };
        }
        p - c.lr * d
    }
    fn update_tensors(c: &SgdConsts, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> Result<Tensor> {
        let mut d = if c.l2 != 0.0 { (g + p.affine(c.l2, 0.0)?)? } else { g.clone() };
        if c.mu != 0.0 {
            let buf = if c.first { d.clone() } else { (s[0].affine(c.mu, 0.0)? + d.affine(1.0 - c.damp, 0.0)?)? };
            d = if c.nesterov { (d + buf.affine(c.mu, 0.0)?)? } else { buf.clone() };
            s[0] = buf;
        }
        Ok((p - d.affine(c.lr, 0.0)?)?)
    }
}

/// Options of [`RmsProp`](super::RmsProp) (as `torch.optim.RMSprop`, not centered).
#[derive(Clone, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate. Default 0.01.
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average. Default 0.99.
    pub alpha: f64,
    /// Added to the denominator. Default 1e-8.
    pub eps: f64,
    /// L2 penalty added to the gradient. Default 0.
    pub weight_decay: f64,
    /// Momentum factor. Default 0.
    pub momentum: f64,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig { lr: 0.01, alpha: 0.99, eps: 1e-8, weight_decay: 0.0, momentum: 0.0 }
    }
}

/// Per-step constants of RMSprop.
#[derive(Clone, Copy, Debug)]
pub struct RmsPropConsts {
    lr: f64,
    alpha: f64,
    eps: f64,
    l2: f64,
    mu: f64,
}

impl Rule for RmsPropConfig {
    const NAME: &'static str = "RmsProp";
    const SLOTS: usize = 2;
    type Consts = RmsPropConsts;
    fn consts(&self, f: f64, _t: u64) -> RmsPropConsts {
        RmsPropConsts { lr: self.lr * f, alpha: self.alpha, eps: self.eps, l2: self.weight_decay, mu: self.momentum }
    }
    #[inline(always)]
    fn update(c: &RmsPropConsts, p: f64, g: f64, s: &mut [f64]) -> f64 {
        let g = g + c.l2 * p;
        s[0] = c.alpha * s[0] + (1.0 - c.alpha) * g * g;
        let step = g / (s[0].sqrt() + c.eps);
        if c.mu > 0.0 {
            s[1] = c.mu * s[1] + step;
            p - c.lr * s[1]
        } else {
            p - c.lr * step
        }
    }
    fn update_tensors(c: &RmsPropConsts, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> Result<Tensor> {
        let g = if c.l2 != 0.0 { (g + p.affine(c.l2, 0.0)?)? } else { g.clone() };
        s[0] = (s[0].affine(c.alpha, 0.0)? + g.sqr()?.affine(1.0 - c.alpha, 0.0)?)?;
        let step = g.div(&s[0].sqrt()?.affine(1.0, c.eps)?)?;
        if c.mu > 0.0 {
            s[1] = (s[1].affine(c.mu, 0.0)? + step)?;
            Ok((p - s[1].affine(c.lr, 0.0)?)?)
        } else {
            Ok((p - step.affine(c.lr, 0.0)?)?)
        }
    }
}

impl Fused<AdamConfig> {
    /// Adam with learning rate `lr` and the other options at their defaults.
    pub fn new(lr: f64) -> Self {
        Fused::with_config(AdamConfig { lr, ..Default::default() })
    }
}

impl Fused<ClippedAdamConfig> {
    /// ClippedAdam with learning rate `lr` and the other options at Pyro's defaults.
    pub fn new(lr: f64) -> Self {
        Fused::with_config(ClippedAdamConfig { lr, ..Default::default() })
    }
}

impl Fused<AdamWConfig> {
    /// AdamW with learning rate `lr` and the other options at their defaults.
    pub fn new(lr: f64) -> Self {
        Fused::with_config(AdamWConfig { lr, ..Default::default() })
    }
}

impl Fused<SgdConfig> {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Fused::with_config(SgdConfig { lr, ..Default::default() })
    }
}

impl Fused<RmsPropConfig> {
    /// RMSprop with learning rate `lr` and the other options at their defaults.
    pub fn new(lr: f64) -> Self {
        Fused::with_config(RmsPropConfig { lr, ..Default::default() })
    }
}
