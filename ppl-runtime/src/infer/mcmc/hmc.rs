//! Hamiltonian Monte Carlo with a fixed trajectory length (nuts-rs has no static HMC), with
//! Stan's warmup: dual-averaging step size and a diagonal or dense mass matrix estimated in
//! doubling windows (75-draw initial buffer, 25-draw first window, 50-draw final buffer), each
//! window's estimate regularized towards `1e-3 · I` as Stan does.
//!
//! References: Neal (2011), *MCMC using Hamiltonian dynamics*, Handbook of MCMC; Hoffman &
//! Gelman (2014), *The No-U-Turn Sampler* (dual averaging), JMLR 15; Stan Reference Manual,
//! *HMC algorithm parameters* (adaptation windows).

use crate::error::Result;
use crate::infer::init::{InitStrategy, initial_position};
use crate::infer::mcmc::chain::{ChainDraws, ChainProgress, DrawStats, Recorder};
use crate::infer::mcmc::config::{MassMatrix, McmcConfig};
use crate::infer::mcmc::runner::{Kernel, chain_rng, chain_setting, model_layout};
use crate::infer::potential::{Layout, ModelPotential, Potential, is_recoverable};
use crate::infer::program::Program;
use crate::rng::Rng;
use std::marker::PhantomData;

/// Settings of the HMC kernel.
#[derive(Clone, Debug)]
pub struct HmcConfig {
    /// Step size to start from (adapted during warmup unless `adapt_step_size` is off). Default: 1.
    pub step_size: f64,
    /// Integration time per draw: `ceil(trajectory_length / step_size)` leapfrog steps.
    /// Default: 2π (NumPyro's).
    pub trajectory_length: f64,
    /// Cap on leapfrog steps per draw. Default: 1024.
    pub max_steps: usize,
    /// Adapt the step size by dual averaging during warmup. Default: true.
    pub adapt_step_size: bool,
    /// Adapt the mass matrix in Stan's windows during warmup. Default: true.
    pub adapt_mass_matrix: bool,
    /// Diagonal (default) or dense mass matrix (`LowRank` is treated as dense).
    pub mass_matrix: MassMatrix,
    /// Target acceptance probability of step-size adaptation. Default: 0.8.
    pub target_accept_prob: f64,
    /// Where chains start. Default: [`init_to_uniform`](crate::infer::init_to_uniform)`(2.0)`.
    pub init_strategy: InitStrategy,
}

impl Default for HmcConfig {
    fn default() -> Self {
        HmcConfig {
            step_size: 1.0,
            trajectory_length: 2.0 * std::f64::consts::PI,
            max_steps: 1024,
            adapt_step_size: true,
            adapt_mass_matrix: true,
            mass_matrix: MassMatrix::Diagonal,
            target_accept_prob: 0.8,
            init_strategy: InitStrategy::default(),
        }
    }
}

/// Static-trajectory Hamiltonian Monte Carlo over a model's potential. Run it with
/// [`Mcmc`](crate::infer::Mcmc); the adapted inverse mass matrix of each chain is in
/// [`ChainDraws::inverse_mass_matrix`].
pub struct Hmc<P, M = ()> {
    model: P,
    config: HmcConfig,
    _marker: PhantomData<fn() -> M>,
}

impl<P, M> Hmc<P, M> {
    /// HMC over `model` with the default [`HmcConfig`].
    pub fn new(model: P) -> Self {
        Self::with_config(model, HmcConfig::default())
    }

    /// HMC over `model` with `config`.
    pub fn with_config(model: P, config: HmcConfig) -> Self {
        Hmc { model, config, _marker: PhantomData }
    }

    /// The settings.
    pub fn config(&self) -> &HmcConfig {
        &self.config
    }
}

/// Stan's dual averaging of the log step size.
struct DualAveraging {
    mu: f64,
    s_bar: f64,
    x_bar: f64,
    counter: f64,
    delta: f64,
}

impl DualAveraging {
    fn new(step_size: f64, delta: f64) -> Self {
        DualAveraging { mu: (10.0 * step_size).ln(), s_bar: 0.0, x_bar: 0.0, counter: 0.0, delta }
    }

    /// Learns from one acceptance statistic and returns the next step size.
    fn update(&mut self, accept: f64) -> f64 {
        const GAMMA: f64 = 0.05;
        const T0: f64 = 10.0;
        const KAPPA: f64 = 0.75;
        self.counter += 1.0;
        let eta = 1.0 / (self.counter + T0);
        self.s_bar = (1.0 - eta) * self.s_bar + eta * (self.delta - accept.min(1.0));
        let x = self.mu - self.s_bar * self.counter.sqrt() / GAMMA;
        let x_eta = self.counter.powf(-KAPPA);
        self.x_bar = (1.0 - x_eta) * self.x_bar + x_eta * x;
        x.exp()
    }

    fn final_step_size(&self) -> f64 {
        self.x_bar.exp()
    }
}

/// Stan's mass-matrix windows for `num_warmup` draws: the first iteration of the first window
/// and the inclusive end of every window.
fn windows(num_warmup: usize) -> (usize, Vec<usize>) {
    if num_warmup < 20 {
        return (0, Vec::new());
    }
    let (mut init, mut term, mut base) = (75, 50, 25);
    if init + term + base > num_warmup {
        init = (0.15 * num_warmup as f64) as usize;
        term = (0.1 * num_warmup as f64) as usize;
        base = num_warmup - init - term;
    }
    let last = num_warmup - term - 1;
    let mut ends = Vec::new();
    let mut size = base;
    let mut end = (init + base - 1).min(last);
    loop {
        ends.push(end);
        if end >= last {
            break;
        }
        size *= 2;
        let mut next = end + size;
        // A window whose successor would not fit before the final buffer is stretched to it.
        if next != last && next + 2 * size > last {
            next = last;
        }
        end = next.min(last);
    }
    (init, ends)
}

/// The mass matrix of one chain (as its inverse, the covariance estimate).
enum Metric {
    /// Diagonal of the inverse mass matrix.
    Diag(Vec<f64>),
    /// Dense inverse mass matrix (row-major) and its lower Cholesky factor.
    Dense { inv: Vec<f64>, chol: Vec<f64> },
}

impl Metric {
    fn identity(d: usize, dense: bool) -> Metric {
        if dense {
            let mut inv = vec![0.0; d * d];
            (0..d).for_each(|i| inv[i * d + i] = 1.0);
            Metric::Dense { chol: inv.clone(), inv }
        } else {
            Metric::Diag(vec![1.0; d])
        }
    }

    /// `v = M⁻¹ p`.
    fn velocity(&self, p: &[f64], v: &mut [f64]) {
        match self {
            Metric::Diag(m) => v.iter_mut().zip(p.iter().zip(m)).for_each(|(v, (p, m))| *v = p * m),
            Metric::Dense { inv, .. } => {
                let d = p.len();
                for i in 0..d {
                    v[i] = (0..d).map(|j| inv[i * d + j] * p[j]).sum();
                }
            }
        }
    }

    /// A momentum draw `p ~ N(0, M)`.
    fn sample(&self, rng: &mut Rng, p: &mut [f64]) {
        let d = p.len();
        p.iter_mut().for_each(|x| *x = rng.standard_normal());
        match self {
            Metric::Diag(m) => p.iter_mut().zip(m).for_each(|(p, m)| *p /= m.sqrt()),
            // M⁻¹ = L Lᵀ, so p = L⁻ᵀ z has covariance (L Lᵀ)⁻¹ = M: solve Lᵀ p = z.
            Metric::Dense { chol, .. } => {
                for i in (0..d).rev() {
                    let s: f64 = ((i + 1)..d).map(|k| chol[k * d + i] * p[k]).sum();
                    p[i] = (p[i] - s) / chol[i * d + i];
                }
            }
        }
    }

    fn kinetic(&self, p: &[f64], scratch: &mut [f64]) -> f64 {
        self.velocity(p, scratch);
        0.5 * p.iter().zip(scratch.iter()).map(|(a, b)| a * b).sum::<f64>()
    }

    fn inverse(&self) -> Vec<f64> {
        match self {
            Metric::Diag(m) => m.clone(),
            Metric::Dense { inv, .. } => inv.clone(),
        }
    }
}

/// Lower Cholesky factor of a symmetric positive-definite row-major matrix.
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// Welford's running mean and (co)variance of the window's draws.
struct Welford {
    n: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
    dense: bool,
}

impl Welford {
    fn new(d: usize, dense: bool) -> Self {
        Welford { n: 0.0, mean: vec![0.0; d], m2: vec![0.0; if dense { d * d } else { d }], dense }
    }

    fn add(&mut self, x: &[f64]) {
        let d = x.len();
        self.n += 1.0;
        let delta: Vec<f64> = x.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        self.mean.iter_mut().zip(&delta).for_each(|(m, dl)| *m += dl / self.n);
        if self.dense {
            for (i, di) in delta.iter().enumerate() {
                for (j, (xj, mj)) in x.iter().zip(&self.mean).enumerate() {
                    self.m2[i * d + j] += di * (xj - mj);
                }
            }
        } else {
            for ((m2, di), (xi, mi)) in self.m2.iter_mut().zip(&delta).zip(x.iter().zip(&self.mean)) {
                *m2 += di * (xi - mi);
            }
        }
    }

    /// Stan's regularized estimate: `n/(n+5) · cov + 1e-3 · 5/(n+5) · I`.
    fn metric(&self) -> Option<Metric> {
        let d = self.mean.len();
        let n = self.n;
        if n < 3.0 {
            return None;
        }
        let (w, shrink) = (n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0));
        let mut cov: Vec<f64> = self.m2.iter().map(|v| w * v / (n - 1.0)).collect();
        if self.dense {
            (0..d).for_each(|i| cov[i * d + i] += shrink);
            let chol = cholesky(&cov, d)?;
            Some(Metric::Dense { inv: cov, chol })
        } else {
            cov.iter_mut().for_each(|v| *v += shrink);
            Some(Metric::Diag(cov))
        }
    }
}

/// One chain's integrator state and scratch space.
struct Integrator<'p, T: Potential> {
    potential: &'p mut T,
    grad: Vec<f64>,
    v: Vec<f64>,
}

/// A point of the chain: position, log-density, gradient.
type Point = (Vec<f64>, f64, Vec<f64>);

/// Outcome of a trajectory.
struct Trajectory {
    x: Vec<f64>,
    lp: f64,
    grad: Vec<f64>,
    energy: f64,
    diverged: bool,
}

impl<T: Potential> Integrator<'_, T> {
    /// `n` leapfrog steps of size `eps` from `(x, p)` with log-density `lp` and gradient `g`.
    fn leapfrog(
        &mut self,
        metric: &Metric,
        x: &[f64],
        p: &mut [f64],
        g: &[f64],
        eps: f64,
        n: usize,
    ) -> Result<Option<Point>> {
        let mut x = x.to_vec();
        let mut g = g.to_vec();
        let mut lp = f64::NAN;
        for _ in 0..n {
            p.iter_mut().zip(&g).for_each(|(p, g)| *p += 0.5 * eps * g);
            metric.velocity(p, &mut self.v);
            x.iter_mut().zip(&self.v).for_each(|(x, v)| *x += eps * v);
            match self.potential.log_density(&x, &mut self.grad) {
                Ok(l) => lp = l,
                Err(e) if is_recoverable(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
            g.copy_from_slice(&self.grad);
            p.iter_mut().zip(&g).for_each(|(p, g)| *p += 0.5 * eps * g);
        }
        Ok(Some((x, lp, g)))
    }

    /// One HMC transition.
    #[allow(clippy::too_many_arguments)]
    fn transition(
        &mut self,
        metric: &Metric,
        rng: &mut Rng,
        x: &[f64],
        lp: f64,
        g: &[f64],
        eps: f64,
        n: usize,
    ) -> Result<(Trajectory, f64)> {
        let d = x.len();
        let mut p = vec![0.0; d];
        metric.sample(rng, &mut p);
        let mut scratch = vec![0.0; d];
        let h0 = -lp + metric.kinetic(&p, &mut scratch);
        let stay = |diverged: bool| Trajectory { x: x.to_vec(), lp, grad: g.to_vec(), energy: h0, diverged };
        let Some((x1, lp1, g1)) = self.leapfrog(metric, x, &mut p, g, eps, n)? else {
            return Ok((stay(true), 0.0));
        };
        let h1 = -lp1 + metric.kinetic(&p, &mut scratch);
        let diverged = h1.is_nan() || h1 - h0 >= 1000.0;
        let accept = if h1.is_finite() { (h0 - h1).exp().min(1.0) } else { 0.0 };
        if !diverged && rng.uniform_open01() < accept {
            Ok((Trajectory { x: x1, lp: lp1, grad: g1, energy: h1, diverged }, accept))
        } else {
            Ok((stay(diverged), accept))
        }
    }

    /// Stan's heuristic: double or halve `eps` until one leapfrog step's acceptance crosses 0.8.
    fn reasonable_step_size(
        &mut self,
        metric: &Metric,
        rng: &mut Rng,
        x: &[f64],
        lp: f64,
        g: &[f64],
        mut eps: f64,
    ) -> Result<f64> {
        let d = x.len();
        let mut scratch = vec![0.0; d];
        let mut log_accept = |s: &mut Self, eps: f64, rng: &mut Rng| -> Result<f64> {
            let mut p = vec![0.0; d];
            metric.sample(rng, &mut p);
            let h0 = -lp + metric.kinetic(&p, &mut scratch);
            Ok(match s.leapfrog(metric, x, &mut p, g, eps, 1)? {
                Some((_, lp1, _)) => {
                    let h = h0 - (-lp1 + metric.kinetic(&p, &mut scratch));
                    if h.is_nan() { f64::NEG_INFINITY } else { h }
                }
                None => f64::NEG_INFINITY,
            })
        };
        let target = 0.8f64.ln();
        let up = log_accept(self, eps, rng)? > target;
        for _ in 0..100 {
            eps = if up { eps * 2.0 } else { eps / 2.0 };
            let h = log_accept(self, eps, rng)?;
            let crossed = h.is_nan() || if up { h <= target } else { h >= target };
            if crossed || !(1e-10..1e7).contains(&eps) {
                break;
            }
        }
        Ok(eps)
    }
}

impl<A, M, P> Kernel<A> for Hmc<P, M>
where
    A: ?Sized + Sync,
    P: Program<A, M> + Sync,
{
    fn name(&self) -> &'static str {
        "hmc"
    }

    fn layout(&self, args: &A) -> Result<Layout> {
        model_layout(&self.model, args)
    }

    fn run_chain(
        &self,
        args: &A,
        layout: &Layout,
        chain: usize,
        cfg: &McmcConfig,
        report: &mut dyn FnMut(ChainProgress),
    ) -> Result<ChainDraws> {
        let c = &self.config;
        let (dtype, device) = chain_setting();
        let mut pot = ModelPotential::with_layout(&self.model, args, layout.clone(), dtype, &device);
        let mut rng = chain_rng(cfg.seed, chain);
        let (mut x, mut lp, mut g) =
            initial_position(&mut pot, layout, &self.model, args, &c.init_strategy, &mut rng, cfg.max_init_tries)?;
        let d = layout.dim();
        let dense = c.mass_matrix != MassMatrix::Diagonal;
        let mut metric = Metric::identity(d, dense);
        let mut recorder = Recorder::new(cfg, d, report);
        let mut integ = Integrator { potential: &mut pot, grad: vec![0.0; d], v: vec![0.0; d] };
        let mut eps = c.step_size;
        if c.adapt_step_size && cfg.num_warmup > 0 {
            eps = integ.reasonable_step_size(&metric, &mut rng, &x, lp, &g, eps)?;
        }
        let mut da = DualAveraging::new(eps, c.target_accept_prob);
        let (first, ends) = if c.adapt_mass_matrix { windows(cfg.num_warmup) } else { (0, Vec::new()) };
        let mut welford = Welford::new(d, dense);
        for i in 0..cfg.num_warmup + cfg.num_samples {
            let n = ((c.trajectory_length / eps).ceil() as usize).clamp(1, c.max_steps);
            let (t, accept) = integ.transition(&metric, &mut rng, &x, lp, &g, eps, n)?;
            let stats = DrawStats {
                diverging: t.diverged,
                tree_depth: 0,
                max_depth_reached: false,
                num_steps: n as u64,
                accept_prob: accept,
                step_size: eps,
                energy: t.energy,
                lp: t.lp,
            };
            (x, lp, g) = (t.x, t.lp, t.grad);
            if i < cfg.num_warmup {
                if c.adapt_step_size {
                    eps = da.update(accept);
                }
                if i >= first && ends.last().is_some_and(|&l| i <= l) {
                    welford.add(&x);
                    if ends.contains(&i) {
                        if let Some(m) = welford.metric() {
                            metric = m;
                        }
                        welford = Welford::new(d, dense);
                        if c.adapt_step_size {
                            eps = integ.reasonable_step_size(&metric, &mut rng, &x, lp, &g, eps)?;
                            da = DualAveraging::new(eps, c.target_accept_prob);
                        }
                    }
                }
                if i + 1 == cfg.num_warmup && c.adapt_step_size {
                    eps = da.final_step_size();
                }
            }
            recorder.record(i, &x, stats);
        }
        let mut out = recorder.out;
        out.step_size = eps;
        out.inverse_mass_matrix = Some(metric.inverse());
        out.num_gradients = pot.num_evaluations();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stan's windows for 1000 warmup draws: 75 + 25, 50, 100, 200, 500 → ends at 99, 149, 249,
    /// 449, 949 (the last window stretched to the 50-draw final buffer).
    #[test]
    fn adaptation_windows_match_stans() {
        assert_eq!(windows(1000), (75, vec![99, 149, 249, 449, 949]));
        assert!(windows(10).1.is_empty());
        // 100 warmup draws: 15 + 75 + 10.
        assert_eq!(windows(100), (15, vec![89]));
    }

    #[test]
    fn dense_momentum_has_covariance_m() {
        // M⁻¹ = [[2, 0.6], [0.6, 1]]: p ~ N(0, M) so E[p pᵀ] = M = inv([[2, .6], [.6, 1]]).
        let inv = vec![2.0, 0.6, 0.6, 1.0];
        let metric = Metric::Dense { chol: cholesky(&inv, 2).unwrap(), inv };
        let mut rng = Rng::seed_from_u64(1);
        let n = 200_000;
        let mut acc = [0.0; 3];
        let mut p = [0.0; 2];
        for _ in 0..n {
            metric.sample(&mut rng, &mut p);
            acc[0] += p[0] * p[0];
            acc[1] += p[0] * p[1];
            acc[2] += p[1] * p[1];
        }
        let det = 2.0 - 0.36;
        let m = [1.0 / det, -0.6 / det, 2.0 / det];
        for k in 0..3 {
            // standard error of a second moment of a normal: ≤ sqrt(2) m_ii / sqrt(n)
            assert!(
                (acc[k] / n as f64 - m[k]).abs() < 4.0 * 1.5 * 1.3 / (n as f64).sqrt(),
                "{k}: {}",
                acc[k] / n as f64
            );
        }
    }
}
