//! Learning-rate schedules: a [`Schedule`] gives a factor applied to every learning rate of an
//! optimizer; [`Scheduled`] wraps an optimizer with one.
//!
//! ```
//! use ppl_runtime::optim::{Adam, ExponentialLr, Scheduled};
//! // lr 0.01 at step 0, 0.01 * 0.999^t after t steps
//! let optim = Scheduled::new(Adam::new(0.01), ExponentialLr { gamma: 0.999 });
//! # let _ = optim;
//! ```

use super::Optimizer;
use crate::error::Result;
use crate::params::ParamStore;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use std::collections::HashMap;

/// A learning-rate schedule.
pub trait Schedule {
    /// The factor of step `t` (0-based) given the loss of the previous step, if known.
    fn factor(&mut self, t: u64, last_loss: Option<f64>) -> f64;
}

/// `gamma^t` (`torch.optim.lr_scheduler.ExponentialLR`, stepped every step).
#[derive(Clone, Debug)]
pub struct ExponentialLr {
    /// Decay per step.
    pub gamma: f64,
}

impl Schedule for ExponentialLr {
    fn factor(&mut self, t: u64, _: Option<f64>) -> f64 {
        self.gamma.powf(t as f64)
    }
}

/// `gamma^(t / step_size)` (integer division): decays by `gamma` every `step_size` steps.
#[derive(Clone, Debug)]
pub struct StepLr {
    /// Steps between decays.
    pub step_size: u64,
    /// Decay factor.
    pub gamma: f64,
}

impl Schedule for StepLr {
    fn factor(&mut self, t: u64, _: Option<f64>) -> f64 {
        self.gamma.powf((t / self.step_size.max(1)) as f64)
    }
}

/// Multiplies the learning rate by `factor` when the loss has not improved (by a relative
/// `threshold`) for more than `patience` steps (`ReduceLROnPlateau`, mode "min").
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    /// Multiplier applied at each reduction. Default 0.1.
    pub factor: f64,
    /// Steps without improvement tolerated. Default 10.
    pub patience: u64,
    /// Relative improvement that counts. Default 1e-4.
    pub threshold: f64,
    /// The factor never goes below this. Default 0.
    pub min_factor: f64,
    best: f64,
    bad: u64,
    current: f64,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        ReduceLrOnPlateau { factor: 0.1, patience: 10, threshold: 1e-4, min_factor: 0.0, best: f64::INFINITY, bad: 0, current: 1.0 }
    }
}

impl ReduceLrOnPlateau {
    /// Cuts the learning rate tenfold after `patience` steps without improvement.
    pub fn new(patience: u64) -> Self {
        ReduceLrOnPlateau { patience, ..Default::default() }
    }

    /// The multiplier applied at each reduction.
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }
}

impl Schedule for ReduceLrOnPlateau {
    fn factor(&mut self, _t: u64, last_loss: Option<f64>) -> f64 {
        if let Some(loss) = last_loss {
            let better = if self.best.is_finite() { loss < self.best - self.threshold * self.best.abs() } else { true };
            if better {
                self.best = loss;
                self.bad = 0;
            } else {
                self.bad += 1;
                if self.bad > self.patience {
                    self.current = (self.current * self.factor).max(self.min_factor);
                    self.bad = 0;
                }
            }
        }
        self.current
    }
}

/// The one-cycle policy (`OneCycleLR`, cosine annealing): the factor rises from `1/div_factor` to
/// 1 over the first `pct_start` of `total_steps`, then falls to `1/(div_factor * final_div_factor)`.
/// The optimizer's learning rate is the peak.
#[derive(Clone, Debug)]
pub struct OneCycleLr {
    /// Length of the cycle in steps.
    pub total_steps: u64,
    /// Fraction of the cycle spent rising. Default 0.3.
    pub pct_start: f64,
    /// Initial factor is `1/div_factor`. Default 25.
    pub div_factor: f64,
    /// Final factor is `1/(div_factor * final_div_factor)`. Default 1e4.
    pub final_div_factor: f64,
}

impl OneCycleLr {
    /// A cycle of `total_steps` with the default shape.
    pub fn new(total_steps: u64) -> Self {
        OneCycleLr { total_steps, pct_start: 0.3, div_factor: 25.0, final_div_factor: 1e4 }
    }
}

impl Schedule for OneCycleLr {
    fn factor(&mut self, t: u64, _: Option<f64>) -> f64 {
        let cos = |from: f64, to: f64, frac: f64| to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * frac.clamp(0.0, 1.0)).cos());
        let start = 1.0 / self.div_factor;
        let end = start / self.final_div_factor;
        let up = (self.pct_start * self.total_steps as f64 - 1.0).max(1.0);
        let down = (self.total_steps as f64 - 1.0 - up).max(1.0);
        let t = t as f64;
        if t <= up { cos(start, 1.0, t / up) } else { cos(1.0, end, (t - up) / down) }
    }
}

/// An optimizer whose learning rates follow a [`Schedule`].
pub struct Scheduled<O, S> {
    optim: O,
    schedule: S,
    t: u64,
    last_loss: Option<f64>,
}

impl<O: Optimizer, S: Schedule> Scheduled<O, S> {
    /// Wraps `optim` with `schedule`.
    pub fn new(optim: O, schedule: S) -> Self {
        Scheduled { optim, schedule, t: 0, last_loss: None }
    }

    /// The factor the next step will use.
    pub fn current_factor(&mut self) -> f64 {
        self.schedule.factor(self.t, None)
    }
}

impl<O: Optimizer, S: Schedule> Optimizer for Scheduled<O, S> {
    fn step(&mut self, params: &ParamStore, grads: &GradStore) -> Result<()> {
        let f = self.schedule.factor(self.t, self.last_loss.take());
        self.optim.set_lr_factor(f);
        self.t += 1;
        self.optim.step(params, grads)
    }

    fn observe_loss(&mut self, loss: f64) {
        self.last_loss = Some(loss);
        self.optim.observe_loss(loss);
    }

    fn set_lr_factor(&mut self, factor: f64) {
        self.optim.set_lr_factor(factor);
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut s = self.optim.state()?;
        s.push(("__schedule#t".into(), Tensor::new(self.t as f64, &candle_core::Device::Cpu)?));
        Ok(s)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        if let Some(t) = state.get("__schedule#t") {
            self.t = t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()? as u64;
        }
        self.optim.load_state(state)
    }
}
