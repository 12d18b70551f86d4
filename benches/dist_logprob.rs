//! Benchmark: `log_prob` of `Normal` and `Gamma` on 1e6 f32 elements against the same formula
//! written directly in Candle ops, in the same run (median and best of N interleaved repeats).
//!
//! Run with `cargo bench --bench dist_logprob`. Each distribution timing includes building the
//! distribution (as a model does on every step) and is reported with validation on (a host copy
//! and check of every value) and off.

use candle_core::{DType, Device, Tensor};
use ppl_runtime::defaults::set_validation;
use ppl_runtime::dist::special::lgamma;
use ppl_runtime::dist::{Distribution, Gamma, Normal};
use ppl_runtime::rng::Rng;
use std::time::Instant;

const N: usize = 1_000_000;
const REPEATS: usize = 31;
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

type R = ppl_runtime::Result<Tensor>;

/// Median and best seconds of `REPEATS` runs of `f` and of `g`, interleaved (f, g, f, g, ...)
/// so that both see the same machine load, after two warm-up runs of each.
fn time2(mut f: impl FnMut() -> R, mut g: impl FnMut() -> R) -> [(f64, f64); 2] {
    let run = |h: &mut dyn FnMut() -> R| {
        let s = Instant::now();
        std::hint::black_box(h().expect("benchmark body"));
        s.elapsed().as_secs_f64()
    };
    for _ in 0..2 {
        run(&mut f);
        run(&mut g);
    }
    let (mut tf, mut tg) = (vec![], vec![]);
    for _ in 0..REPEATS {
        tf.push(run(&mut f));
        tg.push(run(&mut g));
    }
    [tf, tg].map(|mut t| {
        t.sort_by(f64::total_cmp);
        (t[REPEATS / 2], t[0])
    })
}

fn report(name: &str, dist: impl FnMut() -> R, direct: impl FnMut() -> R) {
    let [(dm, db), (cm, cb)] = time2(dist, direct);
    println!(
        "{name:<48} dist {:>7.3} ms (best {:>7.3})   direct {:>7.3} ms (best {:>7.3})   ratio {:>5.2} (best {:>5.2})",
        dm * 1e3,
        db * 1e3,
        cm * 1e3,
        cb * 1e3,
        dm / cm,
        db / cb
    );
}

fn check_same(a: &Tensor, b: &Tensor) {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap();
    let d = d.to_scalar::<f64>().unwrap();
    assert!(d < 1e-3, "dist and direct formula disagree by {d}");
}

fn main() -> ppl_runtime::Result<()> {
    let dev = Device::Cpu;
    let mut rng = Rng::seed_from_u64(0);
    let x_n = rng.normal_tensor(&[N], DType::F32, &dev)?;
    let x_g = rng.uniform_tensor(&[N], DType::F32, &dev)?.affine(5.0, 0.01)?;
    let (loc, scale) = (0.5f64, 2.0f64);
    let (a, b) = (2.5f64, 1.5f64);
    let loc_t = Tensor::new(loc as f32, &dev)?;
    let scale_t = Tensor::new(scale as f32, &dev)?;
    // Per-element parameters (batch shape [N]).
    let loc_v = rng.normal_tensor(&[N], DType::F32, &dev)?;
    let scale_v = rng.uniform_tensor(&[N], DType::F32, &dev)?.affine(2.0, 0.5)?;
    let a_v = rng.uniform_tensor(&[N], DType::F32, &dev)?.affine(3.0, 0.5)?;
    let b_v = rng.uniform_tensor(&[N], DType::F32, &dev)?.affine(2.0, 0.5)?;

    // Direct formulas.
    let normal_direct = || -> R { Ok(x_n.affine(1.0 / scale, -loc / scale)?.sqr()?.affine(-0.5, -HALF_LN_2PI - scale.ln())?) };
    let normal_direct_t = || -> R {
        let z = x_n.broadcast_sub(&loc_t)?.broadcast_div(&scale_t)?;
        Ok(z.sqr()?.affine(-0.5, -HALF_LN_2PI)?.broadcast_sub(&scale_t.log()?)?)
    };
    let normal_direct_v = || -> R {
        let z = ((&x_n - &loc_v)? / &scale_v)?;
        Ok((z.sqr()?.affine(-0.5, -HALF_LN_2PI)? - scale_v.log()?)?)
    };
    let gamma_c = a * b.ln() - ppl_runtime::dist::special::scalar::lgamma(a);
    let gamma_direct = || -> R { Ok((x_g.log()?.affine(a - 1.0, gamma_c)? - x_g.affine(b, 0.0)?)?) };
    let gamma_direct_v = || -> R {
        let t = (a_v.affine(1.0, -1.0)? * x_g.log()?)?;
        let norm = ((&a_v * b_v.log()?)? - lgamma(&a_v)?)?;
        Ok(((t - (&x_g * &b_v)?)? + norm)?)
    };

    println!("log_prob on {N} f32 elements, {REPEATS} repeats (times include building the distribution)");
    check_same(&Normal::new(loc, scale)?.log_prob(&x_n)?, &normal_direct()?);
    check_same(&Normal::new(&loc_v, &scale_v)?.log_prob(&x_n)?, &normal_direct_v()?);
    check_same(&Gamma::new(a, b)?.log_prob(&x_g)?, &gamma_direct()?);
    check_same(&Gamma::new(&a_v, &b_v)?.log_prob(&x_g)?, &gamma_direct_v()?);
    for validate in [true, false] {
        let _g = set_validation(validate);
        let v = if validate { "validation on" } else { "validation off" };
        report(&format!("Normal(0.5, 2.0) vs affine formula [{v}]"), || Normal::new(loc, scale)?.log_prob(&x_n), normal_direct);
        report(&format!("Normal(0.5, 2.0) vs 0-d tensor formula [{v}]"), || Normal::new(loc, scale)?.log_prob(&x_n), normal_direct_t);
        report(&format!("Normal(loc[N], scale[N]) [{v}]"), || Normal::new(&loc_v, &scale_v)?.log_prob(&x_n), normal_direct_v);
        report(&format!("Gamma(2.5, 1.5) vs affine formula [{v}]"), || Gamma::new(a, b)?.log_prob(&x_g), gamma_direct);
        report(&format!("Gamma(conc[N], rate[N]) [{v}]"), || Gamma::new(&a_v, &b_v)?.log_prob(&x_g), gamma_direct_v);
    }
    Ok(())
}
