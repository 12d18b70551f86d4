//! The Deep Markov Model's pieces: the shipped JSB chorales and their mini-batches, the GRU
//! (against the equations written out independently, and finite differences), and a smoke run
//! of examples/dmm.rs (the ELBO rises; a resumed run repeats the uninterrupted one).

use clap::Parser;
use ppl::datasets::{Chorale, JsbChorales, PIANO_KEYS, SequenceBatch};
use ppl::nn::{Direction, Gru, GruWeights, gru};
use ppl::prelude::*;
use ppl::rng::Rng;

#[path = "../examples/dmm.rs"]
mod example;

/// Counts written by `tools/jsb_chorales.py` when it built the file (406 distinct SATB chorales
/// of the music21 10.5 corpus, split 60/20/20), and the time steps per split, counted from the
/// file with Python (`zcat | split`), not with the loader under test.
#[test]
fn jsb_chorales_have_the_fixed_split_and_four_voices() -> ppl::Result<()> {
    let d = JsbChorales::load()?;
    assert_eq!((d.train.len(), d.valid.len(), d.test.len()), (244, 81, 81));
    let steps = |s: &[Chorale]| s.iter().map(Chorale::len).sum::<usize>();
    assert_eq!((steps(&d.train), steps(&d.valid), steps(&d.test)), (13503, 4325, 5107));
    let lens: Vec<usize> = d.train.iter().map(Chorale::len).collect();
    assert_eq!((lens.iter().min(), lens.iter().max()), (Some(&24), Some(&218)));
    // Four voices: never more than 4 keys at once, and most steps have exactly 4 (a voice rests
    // or two voices share a pitch only occasionally).
    let all: Vec<&Vec<u8>> = d.train.iter().chain(&d.valid).chain(&d.test).flat_map(|c| &c.steps).collect();
    assert!(all.iter().all(|s| s.len() <= 4));
    let four = all.iter().filter(|s| s.len() == 4).count() as f64 / all.len() as f64;
    assert!(four > 0.85, "only {four:.3} of the steps have four sounding keys");
    // Vocal ranges: bass down to C2 (MIDI 36, key 15), soprano up to A5 (MIDI 81, key 60).
    let keys: Vec<u8> = all.iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!((keys.iter().min(), keys.iter().max()), (Some(&15), Some(&60)));
    // The splits do not share chorales.
    let mut names: Vec<&str> = d.train.iter().chain(&d.valid).chain(&d.test).map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 406);
    Ok(())
}

fn chorale(steps: &[&[u8]]) -> Chorale {
    Chorale { name: "t".into(), steps: steps.iter().map(|s| s.to_vec()).collect() }
}

/// Padding, reversal within each length and the mask on sequences of lengths 3 and 1.
#[test]
fn sequence_batch_pads_masks_and_reverses_unequal_lengths() -> ppl::Result<()> {
    let a = chorale(&[&[0, 87], &[5], &[]]);
    let b = chorale(&[&[40, 41, 42, 43]]);
    let batch = SequenceBatch::new(&[&a, &b], &Device::Cpu)?;
    assert_eq!(batch.x.dims(), &[2, 3, PIANO_KEYS]);
    assert_eq!(batch.lengths, vec![3, 1]);
    assert_eq!(batch.mask.dtype(), DType::U8);
    assert_eq!(batch.mask.to_vec2::<u8>()?, vec![vec![1, 1, 1], vec![1, 0, 0]]);
    let on = |x: &Tensor| -> ppl::Result<Vec<Vec<Vec<usize>>>> {
        let v = x.to_vec3::<f32>()?;
        Ok(v.iter().map(|s| s.iter().map(|k| (0..PIANO_KEYS).filter(|&i| k[i] == 1.0).collect()).collect()).collect())
    };
    assert_eq!(on(&batch.x)?, vec![vec![vec![0, 87], vec![5], vec![]], vec![vec![40, 41, 42, 43], vec![], vec![]]]);
    assert_eq!(on(&batch.x_reversed)?, vec![vec![vec![], vec![5], vec![0, 87]], vec![vec![40, 41, 42, 43], vec![], vec![]]]);
    let total: f32 = batch.x.sum_all()?.to_scalar()?;
    assert_eq!(total, 7.0, "nothing but the listed keys is set");
    assert!(SequenceBatch::new(&[], &Device::Cpu).is_err());
    let bad = chorale(&[&[88]]);
    let err = SequenceBatch::new(&[&bad], &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("key 88"), "{err}");
    Ok(())
}

/// A malformed file is an error naming the line.
#[test]
fn jsb_loader_rejects_bad_pitches_with_the_line() {
    let dir = std::env::temp_dir().join(format!("ppl-jsb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.txt");
    std::fs::write(&path, "train\ta\t60,64 -\ntest\tb\t60,200\n").unwrap();
    let err = JsbChorales::load_from(&path).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("200"), "{err}");
    std::fs::write(&path, "train\ta\t60,64 - 21,108\n").unwrap();
    let d = JsbChorales::load_from(&path).unwrap();
    assert_eq!(d.train[0].steps, vec![vec![39, 43], vec![], vec![0, 87]]);
    std::fs::remove_dir_all(&dir).ok();
}

fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    rng.normal_tensor(shape, DType::F64, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// One GRU step written out from PyTorch's documented equations with plain loops:
/// r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
/// n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 − z) n + z h.
/// Weights are indexed `[input, gate * H + unit]` (ppl's `[in, 3H]` layout).
fn reference_step(x: &[f64], h: &[f64], w: &[Vec<f64>; 4], hd: usize) -> Vec<f64> {
    let (w_ih, w_hh, b_ih, b_hh) = (&w[0], &w[1], &w[2], &w[3]);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let proj = |g: usize, j: usize| -> (f64, f64) {
        let col = g * hd + j;
        let xi: f64 = x.iter().enumerate().map(|(i, xv)| xv * w_ih[i * 3 * hd + col]).sum::<f64>() + b_ih[col];
        let hh: f64 = h.iter().enumerate().map(|(i, hv)| hv * w_hh[i * 3 * hd + col]).sum::<f64>() + b_hh[col];
        (xi, hh)
    };
    (0..hd)
        .map(|j| {
            let (xr, hr) = proj(0, j);
            let (xz, hz) = proj(1, j);
            let (xn, hn) = proj(2, j);
            let r = sig(xr + hr);
            let z = sig(xz + hz);
            let n = (xn + r * hn).tanh();
            (1.0 - z) * n + z * h[j]
        })
        .collect()
}

fn weights(rng: &mut Rng, d: usize, h: usize) -> GruWeights {
    GruWeights {
        w_ih: randn(rng, &[d, 3 * h]),
        w_hh: randn(rng, &[h, 3 * h]),
        b_ih: randn(rng, &[3 * h]),
        b_hh: randn(rng, &[3 * h]),
    }
}

/// Forwards and backwards over 3 steps, and the masked backward run over a padded sequence,
/// against the loop reference (on the CPU kernels and on the device-generic path).
#[test]
fn gru_matches_the_equations_step_by_step() -> ppl::Result<()> {
    let (b, t_len, d, h) = (2, 3, 2, 3);
    let mut rng = Rng::seed_from_u64(5);
    let w = weights(&mut rng, d, h);
    let wv = [flat(&w.w_ih), flat(&w.w_hh), flat(&w.b_ih), flat(&w.b_hh)];
    let x = randn(&mut rng, &[b, t_len, d]);
    let h0 = randn(&mut rng, &[h]);
    let xv = x.to_vec3::<f64>()?;
    let h0v = flat(&h0);
    for generic in [false, true] {
        let run = |dir, mask: Option<&Tensor>| {
            if generic { ppl::dist::kernels::with_generic(|| gru(&x, &h0, &w, dir, mask)) } else { gru(&x, &h0, &w, dir, mask) }
        };
        let fwd = run(Direction::Forward, None)?.to_vec3::<f64>()?;
        let bwd = run(Direction::Backward, None)?.to_vec3::<f64>()?;
        let mask = Tensor::new(&[[1u8, 1, 1], [1, 0, 0]], &Device::Cpu)?;
        let masked = run(Direction::Backward, Some(&mask))?.to_vec3::<f64>()?;
        for s in 0..b {
            let mut state = h0v.clone();
            for t in 0..t_len {
                state = reference_step(&xv[s][t], &state, &wv, h);
                close(&fwd[s][t], &state, "forward");
            }
            let mut state = h0v.clone();
            for t in (0..t_len).rev() {
                state = reference_step(&xv[s][t], &state, &wv, h);
                close(&bwd[s][t], &state, "backward");
            }
        }
        // Sequence 1 has length 1: its step 0 is one step from h0, its padding reports h0.
        close(&masked[1][0], &reference_step(&xv[1][0], &h0v, &wv, h), "masked step 0");
        close(&masked[1][1], &h0v, "masked padding");
        close(&masked[1][2], &h0v, "masked padding");
        close(&masked[0][0], &bwd[0][0], "unmasked sequence");
    }
    Ok(())
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-12, "{what}: {a:?} vs {b:?}");
    }
}

/// Gradients of a weighted sum of the outputs (masked backward run) with respect to every weight,
/// the initial state and the input, against central finite differences in f64.
#[test]
fn gru_gradients_match_finite_differences() -> ppl::Result<()> {
    let (b, t_len, d, h) = (2, 3, 2, 3);
    let mut rng = Rng::seed_from_u64(9);
    let w = weights(&mut rng, d, h);
    let inputs = [w.w_ih.clone(), w.w_hh.clone(), w.b_ih.clone(), w.b_hh.clone(), randn(&mut rng, &[h]), randn(&mut rng, &[b, t_len, d])];
    let coef = randn(&mut rng, &[b, t_len, h]);
    let mask = Tensor::new(&[[1u8, 1, 1], [1, 1, 0]], &Device::Cpu)?;
    let f = |a: &[Tensor]| -> ppl::Result<Tensor> {
        let w = GruWeights { w_ih: a[0].clone(), w_hh: a[1].clone(), b_ih: a[2].clone(), b_hh: a[3].clone() };
        Ok(gru(&a[5], &a[4], &w, Direction::Backward, Some(&mask))?.mul(&coef)?.sum_all()?)
    };
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = f(&ts)?.backward()?;
    let eps = 1e-6;
    for (k, input) in inputs.iter().enumerate() {
        let g = flat(&grads.get(vars[k].as_tensor()).expect("a gradient for every input").clone());
        let base = flat(input);
        for i in 0..base.len() {
            let at = |delta: f64| -> f64 {
                let mut v = base.clone();
                v[i] += delta;
                let mut a = inputs.to_vec();
                a[k] = Tensor::from_vec(v, input.dims(), &Device::Cpu).unwrap();
                f(&a).unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!((g[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()), "input {k} element {i}: autodiff {} vs finite differences {fd}", g[i]);
        }
    }
    Ok(())
}

/// The layer's parameters: four in the store, PyTorch's init bound 1/√H, reproducible from a seed.
#[test]
fn gru_layer_registers_seeded_parameters() -> ppl::Result<()> {
    let rnn = Gru::new("rnn", 5, 4);
    let x = Tensor::zeros((2, 3, 5), DType::F32, &Device::Cpu)?;
    let h0 = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
    let draw = |s| -> ppl::Result<(Vec<String>, Vec<f32>)> {
        let store = ParamStore::new();
        store.scope(|| handlers::seed(s, || rnn.forward(&x, &h0, Direction::Forward, None)))?;
        let w = store.get("rnn.weight_hh")?.expect("created");
        assert_eq!(w.dims(), &[4, 12]);
        Ok((store.names(), w.flatten_all()?.to_vec1()?))
    };
    let (names, w) = draw(3)?;
    assert_eq!(names, ["rnn.weight_ih", "rnn.weight_hh", "rnn.bias_ih", "rnn.bias_hh"]);
    assert!(w.iter().all(|v| v.abs() <= 0.5) && w.iter().any(|v| v.abs() > 0.25), "Uniform(-1/2, 1/2): {w:?}");
    assert_eq!(draw(3)?.1, w);
    assert_ne!(draw(4)?.1, w);
    let bad = Tensor::zeros((2, 3, 6), DType::F32, &Device::Cpu)?;
    let err = ParamStore::new().scope(|| handlers::seed(0, || rnn.forward(&bad, &h0, Direction::Forward, None))).unwrap_err();
    assert!(err.to_string().contains("w_ih"), "{err}");
    Ok(())
}

/// A few chorales, a few steps: the training ELBO rises well above the initial ~ −88·log 2 =
/// −61 nats per step (random emission logits), and the test ELBO is finite, with and without IAFs.
#[test]
fn dmm_smoke_elbo_rises() {
    for iafs in ["0", "1"] {
        let args = example::Args::parse_from(["dmm", "--smoke", "--num-iafs", iafs, "--eval-every", "10"]);
        let r = example::run(&args).unwrap();
        let (first, last) = (r.train_elbo[0], *r.train_elbo.last().unwrap());
        assert!(first < -40.0 && last > first + 15.0, "{iafs} IAF(s): train ELBO {first} -> {last}");
        let (_, test) = *r.test_elbo.last().unwrap();
        assert!(test.is_finite() && test > -61.0, "{iafs} IAF(s): test ELBO {test}");
    }
}

/// Stopping after 3 epochs and resuming from the checkpoint gives the same epochs 4–6 as one run.
#[test]
fn dmm_resume_repeats_the_uninterrupted_run() {
    let path = std::env::temp_dir().join(format!("ppl-dmm-{}.safetensors", std::process::id()));
    let p = path.to_str().unwrap();
    let whole = example::run(&example::Args::parse_from(["dmm", "--smoke", "--epochs", "6", "--num-iafs", "1"])).unwrap();
    example::run(&example::Args::parse_from(["dmm", "--smoke", "--epochs", "3", "--num-iafs", "1", "--checkpoint", p])).unwrap();
    let rest =
        example::run(&example::Args::parse_from(["dmm", "--smoke", "--epochs", "6", "--num-iafs", "1", "--checkpoint", p, "--resume"]))
            .unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(rest.start_epoch, 3);
    assert_eq!(rest.train_elbo, whole.train_elbo[3..].to_vec());
}

/// Bad flags are errors, not panics.
#[test]
fn dmm_rejects_bad_flags() {
    let err = example::run(&example::Args::parse_from(["dmm", "--num-iafs", "3"])).unwrap_err().to_string();
    assert!(err.contains("--num-iafs") && err.contains('3'), "{err}");
    let err = example::run(&example::Args::parse_from(["dmm", "--resume"])).unwrap_err().to_string();
    assert!(err.contains("--checkpoint"), "{err}");
}
