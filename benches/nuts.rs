//! NUTS speed: eight schools (non-centered, 1000 + 1000 draws, 1 chain) and logistic regression
//! (N = 1000, D = 25, 500 + 500; synthetic data from a fixed seed), whole wall time as a user
//! waits, gradient evaluations, µs per gradient, minimum bulk ESS and ESS/s, and ppl's potential
//! against the same log-density and gradient hand-written in Candle ops, timed in the same run.
//!
//! Run: `cargo bench --bench nuts`. One line per model:
//! `nuts eight_schools: wall 0.91 s, grads 13576, us/grad 67.0, min_ess 436, ess/s 479, potential/candle 1.12`

use ppl::dist::{Bernoulli, HalfCauchy, Normal};
use ppl::infer::{Mcmc, McmcConfig, ModelPotential, Nuts, Potential};
use ppl::prelude::*;
use std::hint::black_box;
use std::time::Instant;

fn eight_schools_data() -> Result<(Tensor, Tensor)> {
    let text = include_str!("../data/eight_schools.csv");
    let (mut y, mut sigma) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let parse = |s: &str| s.trim().parse::<f64>().map_err(|_| Error::invalid_arg("eight_schools.csv", "value", s));
        y.push(parse(cols[1])?);
        sigma.push(parse(cols[2])?);
    }
    Ok((Tensor::new(y, &Device::Cpu)?, Tensor::new(sigma, &Device::Cpu)?))
}

fn eight_schools(data: &(Tensor, Tensor)) -> Result<()> {
    let (y, sigma) = data;
    let mu = ppl::sample("mu", Normal::new(0.0, 5.0)?)?;
    let tau = ppl::sample("tau", HalfCauchy::new(5.0)?)?;
    ppl::plate("schools", y.dim(0)?, |_| {
        let tt = ppl::sample("theta_tilde", Normal::new(0.0, 1.0)?)?;
        let theta = tt.broadcast_mul(&tau)?.broadcast_add(&mu)?;
        ppl::observe("y", Normal::new(&theta, sigma)?, y)?;
        Ok(())
    })
}

/// The eight-schools log-density (with the log-Jacobian of tau = exp(t)) and its gradient, in
/// plain Candle ops.
fn eight_schools_candle(data: &(Tensor, Tensor), x: &[f64], grad: &mut [f64]) -> Result<f64> {
    let (y, sigma) = data;
    let dev = y.device();
    let mu = Var::from_slice(&x[0..1], 1, dev)?;
    let t = Var::from_slice(&x[1..2], 1, dev)?;
    let tt = Var::from_slice(&x[2..10], 8, dev)?;
    let tau = t.exp()?;
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let lp_mu = ((mu.sqr()? * (-0.5 / 25.0))? - (5f64.ln() + half_log_2pi))?;
    let lp_tau = ((((tau.sqr()? / 25.0)? + 1.0)?.log()? * -1.0)? + (2.0 / (std::f64::consts::PI * 5.0)).ln())?;
    let lp_tt = ((tt.sqr()? * -0.5)? - half_log_2pi)?.sum_all()?;
    let theta = tt.broadcast_mul(&tau)?.broadcast_add(&mu)?;
    let z = ((y - theta)? / sigma)?;
    let lp_y = (((z.sqr()? * -0.5)? - sigma.log()?)? - half_log_2pi)?.sum_all()?;
    let total = (lp_mu.sum_all()? + lp_tau.sum_all()?)?;
    let total = ((total + t.sum_all()?)? + (lp_tt + lp_y)?)?;
    let g = total.backward()?;
    grad[0] = g.get(&mu).unwrap().to_vec1::<f64>()?[0];
    grad[1] = g.get(&t).unwrap().to_vec1::<f64>()?[0];
    grad[2..10].copy_from_slice(&g.get(&tt).unwrap().to_vec1::<f64>()?);
    Ok(total.to_scalar::<f64>()?)
}

fn logistic_data() -> Result<(Tensor, Tensor)> {
    let (n, d) = (1000, 25);
    let mut rng = ppl::Rng::seed_from_u64(20261130);
    let x = rng.normal_tensor(&[n, d], DType::F64, &Device::Cpu)?;
    let beta = (rng.normal_tensor(&[d, 1], DType::F64, &Device::Cpu)? * 0.5)?;
    let p = candle_nn::ops::sigmoid(&x.matmul(&beta)?.flatten_all()?)?;
    let u = rng.uniform_tensor(&[n], DType::F64, &Device::Cpu)?;
    let y = u.lt(&p)?.to_dtype(DType::F64)?;
    Ok((x, y))
}

fn logistic(data: &(Tensor, Tensor)) -> Result<()> {
    let (x, y) = data;
    let beta = ppl::sample("beta", Normal::new(0.0, 1.0)?.expand(&[x.dim(1)?])?.to_event(1)?)?;
    let logits = x.matmul(&beta.unsqueeze(1)?)?.squeeze(1)?;
    ppl::plate("data", x.dim(0)?, |_| ppl::observe("y", Bernoulli::from_logits(&logits)?, y).map(|_| ()))
}

fn logistic_candle(data: &(Tensor, Tensor), x: &[f64], grad: &mut [f64]) -> Result<f64> {
    let (xs, y) = data;
    let d = x.len();
    let beta = Var::from_slice(x, (d, 1), xs.device())?;
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let prior = ((beta.sqr()? * -0.5)? - half_log_2pi)?.sum_all()?;
    let z = xs.matmul(&beta)?.flatten_all()?;
    // y z - softplus(z), softplus(z) = max(z, 0) + log(1 + exp(-|z|))
    let softplus = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let lik = ((y * &z)? - softplus)?.sum_all()?;
    let total = (prior + lik)?;
    let g = total.backward()?;
    grad.copy_from_slice(&g.get(&beta).unwrap().flatten_all()?.to_vec1::<f64>()?);
    Ok(total.to_scalar::<f64>()?)
}

/// Median over rounds of the per-evaluation time (µs) of ppl's potential and of the hand-written
/// Candle function, interleaved, at the same points.
fn compare<F: FnMut(&[f64], &mut [f64]) -> Result<f64>>(
    pot: &mut impl Potential,
    mut hand: F,
    points: &[Vec<f64>],
) -> Result<(f64, f64)> {
    let d = pot.dim();
    let mut g1 = vec![0.0; d];
    let mut g2 = vec![0.0; d];
    // Same numbers first.
    for p in points.iter().take(5) {
        let a = pot.log_density(p, &mut g1)?;
        let b = hand(p, &mut g2)?;
        assert!((a - b).abs() < 1e-8 * a.abs().max(1.0), "log-densities differ: {a} vs {b}");
        for (x, y) in g1.iter().zip(&g2) {
            assert!((x - y).abs() < 1e-8 * x.abs().max(1.0), "gradients differ: {x} vs {y}");
        }
    }
    let (mut tp, mut th) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        for p in points {
            black_box(pot.log_density(p, &mut g1)?);
        }
        tp.push(t.elapsed().as_secs_f64() * 1e6 / points.len() as f64);
        let t = Instant::now();
        for p in points {
            black_box(hand(p, &mut g2)?);
        }
        th.push(t.elapsed().as_secs_f64() * 1e6 / points.len() as f64);
    }
    tp.sort_by(f64::total_cmp);
    th.sort_by(f64::total_cmp);
    Ok((tp[3], th[3]))
}

fn bench<A: Sync, M>(
    name: &str,
    model: impl ppl::infer::Program<A, M, Output = ()> + Sync + Copy,
    data: &A,
    warmup: usize,
    samples: usize,
    hand: impl FnMut(&[f64], &mut [f64]) -> Result<f64>,
) -> Result<()> {
    let cfg = McmcConfig {
        num_warmup: warmup,
        num_samples: samples,
        num_chains: 1,
        seed: 1,
        progress_bar: false,
        ..Default::default()
    };
    let t = Instant::now();
    let s = Mcmc::new(Nuts::new(model), cfg).run_uncast(data)?;
    let wall = t.elapsed().as_secs_f64();
    let grads = s.num_gradients();
    let summary = s.compute_summary()?;
    let min_ess = summary.rows.iter().map(|r| r.ess_bulk).fold(f64::INFINITY, f64::min);
    // The potential on 200 draws of the chain.
    let chain = &s.chains()[0];
    let d = s.layout().dim();
    let points: Vec<Vec<f64>> = (0..200).map(|i| chain.positions[i * d..(i + 1) * d].to_vec()).collect();
    let mut pot = ModelPotential::with_layout(&model, data, s.layout().clone(), DType::F64, &Device::Cpu);
    let (t_pot, t_hand) = compare(&mut pot, hand, &points)?;
    println!(
        "nuts {name}: wall {wall:.2} s, grads {grads}, us/grad {:.1}, min_ess {min_ess:.0}, ess/s {:.0}, potential/candle {:.2}",
        wall * 1e6 / grads as f64,
        min_ess / wall,
        t_pot / t_hand
    );
    eprintln!("  ({name}: potential {t_pot:.1} us, hand-written Candle {t_hand:.1} us per log-density + gradient)");
    Ok(())
}

fn main() -> Result<()> {
    let es = eight_schools_data()?;
    bench("eight_schools", eight_schools, &es, 1000, 1000, |x, g| eight_schools_candle(&es, x, g))?;
    let lr = logistic_data()?;
    bench("logistic", logistic, &lr, 500, 500, |x, g| logistic_candle(&lr, x, g))?;
    Ok(())
}
