//! Helpers shared by the distribution tests.
#![allow(dead_code)]

use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};

/// A CPU f64 tensor from a slice and shape.
pub fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

/// All elements as f64.
pub fn vec64(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

/// A fixed-seed generator for tests.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Asserts |a - b| <= atol + rtol * |b| elementwise, with a message naming `what`.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs() || (g == w);
        assert!(ok, "{what}[{i}]: got {g}, want {w} (rtol {rtol}, atol {atol})");
    }
}
