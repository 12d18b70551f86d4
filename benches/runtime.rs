//! Runtime overhead per sample site under `trace`, beyond the Candle ops themselves.
//!
//! Baseline: the same distribution construction, draw and log-density written directly against
//! the distribution API (no handlers, no messages). Measured: a model with `K` sample sites run
//! under `seed` + `trace`, then `log_prob_sum`. The difference divided by `K` is the cost of the
//! effect-handler machinery per site. Run with `cargo bench --bench runtime`.

use ppl::dist::{Distribution, Normal};
use ppl::prelude::*;
use std::hint::black_box;
use std::time::Instant;

const K: usize = 200;

fn names() -> Vec<&'static str> {
    (0..K).map(|i| &*Box::leak(format!("z{i}").into_boxed_str())).collect()
}

fn baseline(rng: &mut ppl::Rng) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for _ in 0..K {
        let d = Normal::new(0.0, 1.0)?;
        let v = d.rsample(rng, &[])?;
        let lp = d.log_prob(&v)?.sum_all()?;
        total = Some(match total {
            None => lp,
            Some(t) => (t + lp)?,
        });
    }
    Ok(total.unwrap())
}

fn with_runtime(names: &[&'static str], seed: u64) -> Result<Tensor> {
    let (_, tr) = handlers::seed(seed, || {
        handlers::trace(|| {
            for n in names {
                ppl::sample(*n, Normal::new(0.0, 1.0)?)?;
            }
            Ok(())
        })
    })?;
    tr.log_prob_sum()
}

fn us(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> Result<()> {
    // Validation copies each parameter to the host; measure with it off (as a speed-minded user
    // would run) and on (the default).
    let names = names();
    for validate in [false, true] {
        let _g = ppl::defaults::set_validation(validate);
        let mut rng = ppl::Rng::seed_from_u64(0);
        // Warm up.
        for _ in 0..20 {
            black_box(baseline(&mut rng)?);
            black_box(with_runtime(&names, 0)?);
        }
        // Interleaved, so that drifts in machine load hit both sides alike; the median of the
        // per-repeat differences is the overhead.
        let reps = 401;
        let (mut tb, mut tr, mut diff) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let b = us(|| drop(black_box(baseline(&mut rng).unwrap())));
            let r = us(|| drop(black_box(with_runtime(&names, 1).unwrap())));
            tb.push(b);
            tr.push(r);
            diff.push(r - b);
        }
        let (base, rt) = (median(tb), median(tr));
        println!(
            "validation {:>3}: {K} sites: baseline {base:7.1} us, under trace {rt:7.1} us (medians of {reps}); \
             ratio {:.2}; overhead per site {:.2} us",
            if validate { "on" } else { "off" },
            rt / base,
            median(diff) / K as f64,
        );
    }
    Ok(())
}
