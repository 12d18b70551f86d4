//! The GRU of `ppl::nn` (forward + backward over a `[B, T, D]` batch, the DMM guide's shape:
//! B = 20, T = 100, D = 88, H = 600, f32, masked backwards walk) against the same GRU written
//! with plain Candle ops (matmul, broadcast_add, candle-nn's sigmoid, tanh), measured in the
//! same run. Prints one line per size: `gru B=.. T=.. D=.. H=..: ppl X ms, candle Y ms, ppl/candle R`.

use ppl::candle_core::{DType, Device, Tensor, Var};
use ppl::nn::{Direction, GruWeights, gru};
use ppl::{Result, Rng};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The baseline: PyTorch's GRU equations in plain Candle ops, walking backwards with the mask.
fn candle_gru(x: &Tensor, h0: &Tensor, w: &GruWeights, mask: &Tensor) -> Result<Tensor> {
    let (b, t_len, _) = x.dims3()?;
    let h = w.w_hh.dim(0)?;
    let gx = x.broadcast_matmul(&w.w_ih)?.broadcast_add(&w.b_ih)?;
    let h0 = h0.unsqueeze(0)?.broadcast_as((b, h))?.contiguous()?;
    let m = mask.to_dtype(x.dtype())?.unsqueeze(2)?;
    let mut state = h0.clone();
    let mut outs = Vec::with_capacity(t_len);
    for t in (0..t_len).rev() {
        let gx_t = gx.narrow(1, t, 1)?.squeeze(1)?;
        let gh = state.matmul(&w.w_hh)?.broadcast_add(&w.b_hh)?;
        let r = candle_nn::ops::sigmoid(&(gx_t.narrow(1, 0, h)? + gh.narrow(1, 0, h)?)?)?;
        let z = candle_nn::ops::sigmoid(&(gx_t.narrow(1, h, h)? + gh.narrow(1, h, h)?)?)?;
        let n = (gx_t.narrow(1, 2 * h, h)? + r.mul(&gh.narrow(1, 2 * h, h)?)?)?.tanh()?;
        let next = ((z.affine(-1.0, 1.0)?.mul(&n))? + z.mul(&state)?)?;
        let m_t = m.narrow(1, t, 1)?.squeeze(1)?;
        state = (&h0 + m_t.broadcast_mul(&(next - &h0)?)?)?;
        outs.push(state.clone());
    }
    outs.reverse();
    Ok(Tensor::stack(&outs, 1)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    for &(b, t_len, d, h) in &[(20usize, 100usize, 88usize, 600usize), (20, 100, 88, 100)] {
        let mut rng = Rng::seed_from_u64(0);
        let mut var = |shape: &[usize]| -> Result<Var> { Ok(Var::from_tensor(&(rng.normal_tensor(shape, DType::F32, &dev)? * 0.05)?)?) };
        let vars = [var(&[d, 3 * h])?, var(&[h, 3 * h])?, var(&[3 * h])?, var(&[3 * h])?, var(&[h])?];
        let w = GruWeights {
            w_ih: vars[0].as_tensor().clone(),
            w_hh: vars[1].as_tensor().clone(),
            b_ih: vars[2].as_tensor().clone(),
            b_hh: vars[3].as_tensor().clone(),
        };
        let h0 = vars[4].as_tensor().clone();
        let x = rng.uniform_tensor(&[b, t_len, d], DType::F32, &dev)?.lt(0.05)?.to_dtype(DType::F32)?;
        // Half the sequences end at T/2, as padded mini-batches do.
        let mask: Vec<u8> = (0..b).flat_map(|i| (0..t_len).map(move |t| u8::from(i % 2 == 0 || t < t_len / 2))).collect();
        let mask = Tensor::from_vec(mask, (b, t_len), &dev)?;
        let time = |f: &dyn Fn() -> Result<Tensor>| -> Result<f64> {
            let mut v = Vec::new();
            for _ in 0..7 {
                let start = Instant::now();
                let grads = f()?.sum_all()?.backward()?;
                std::hint::black_box(grads.get(&vars[1]));
                v.push(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok(median(v))
        };
        let diff = (gru(&x, &h0, &w, Direction::Backward, Some(&mask))? - candle_gru(&x, &h0, &w, &mask)?)?.abs()?.max_all()?;
        let diff: f32 = diff.to_scalar()?;
        assert!(diff < 1e-4, "the two GRUs disagree by {diff}");
        let ppl_ms = time(&|| gru(&x, &h0, &w, Direction::Backward, Some(&mask)))?;
        let candle_ms = time(&|| candle_gru(&x, &h0, &w, &mask))?;
        println!("gru B={b} T={t_len} D={d} H={h}: ppl {ppl_ms:.1} ms, candle {candle_ms:.1} ms, ppl/candle {:.2}", ppl_ms / candle_ms);
    }
    Ok(())
}
