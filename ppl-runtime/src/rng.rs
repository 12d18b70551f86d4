//! ppl's own seedable random number generator.
//!
//! Candle's CPU device cannot be seeded, so every random draw in ppl comes from an [`Rng`]
//! (xoshiro256++): the same seed gives the same numbers. Draws are made on the host and copied
//! to the target device.

use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng as _, RngExt, SeedableRng};
use rand_distr::{Distribution as _, StandardNormal};

/// A seedable random number generator (xoshiro256++).
#[derive(Clone, Debug)]
pub struct Rng {
    inner: Xoshiro256PlusPlus,
}

impl Rng {
    /// A generator seeded with `seed`: the same seed gives the same stream.
    pub fn seed_from_u64(seed: u64) -> Self {
        Rng { inner: Xoshiro256PlusPlus::seed_from_u64(seed) }
    }

    /// A generator seeded from the operating system's entropy.
    pub fn from_entropy() -> Self {
        let mut os = rand::rng();
        Rng::seed_from_u64(os.next_u64())
    }

    /// A new generator whose stream is independent of this one's (for a chain or a thread).
    pub fn split(&mut self) -> Rng {
        // Seeding xoshiro from 256 fresh bits of the parent gives a stream that overlaps the
        // parent's with negligible probability.
        let mut seed = [0u8; 32];
        self.inner.fill_bytes(&mut seed);
        Rng { inner: Xoshiro256PlusPlus::from_seed(seed) }
    }

    /// The underlying `rand` generator, for `rand_distr` samplers.
    pub fn inner(&mut self) -> &mut Xoshiro256PlusPlus {
        &mut self.inner
    }

    /// A uniform draw in the open interval (0, 1).
    pub fn uniform_open01(&mut self) -> f64 {
        loop {
            let u: f64 = self.inner.random();
            if u > 0.0 {
                return u;
            }
        }
    }

    /// A standard normal draw.
    pub fn standard_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.inner)
    }

    /// A tensor of standard normal draws.
    pub fn normal_tensor(&mut self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        match dtype {
            DType::F32 => {
                let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut self.inner)).collect();
                Ok(Tensor::from_vec(v, shape, device)?)
            }
            _ => {
                let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut self.inner)).collect();
                Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
            }
        }
    }

    /// A tensor of uniform draws in the open interval (0, 1).
    pub fn uniform_tensor(&mut self, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| self.uniform_open01()).collect();
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }

    /// A tensor made by mapping each element of `params` (host copies of per-element
    /// parameters, one `Vec` per parameter, all of length `n`) through `draw`.
    pub fn map_tensor(
        &mut self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
        mut draw: impl FnMut(&mut Xoshiro256PlusPlus, usize) -> f64,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|i| draw(&mut self.inner, i)).collect();
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }
}
