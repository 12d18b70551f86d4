//! Neural-network layers and fused kernels for deep probabilistic models.
//!
//! - [`Linear`] and [`Mlp`]: layers whose weights are ordinary parameters of the current
//!   [`ParamStore`](crate::params::ParamStore) (`{layer}.weight` stored `[in, out]`,
//!   `{layer}.bias`), created on first use with PyTorch's initialisation drawn from ppl's seeded
//!   generator, so they save, load and train like any `param`.
//! - [`linear`] and the activations ([`softplus`], [`relu`], [`sigmoid`], [`tanh`], [`elu`]):
//!   one fused custom op each on the CPU, with a hand-written backward pass; the linear op
//!   computes the input's gradient only when the input carries one (never for data).
//! - [`fused`]: likelihood kernels for the hot path (Bernoulli-logits, Normal, Normal–Normal KL,
//!   Categorical-logits log-densities, summed over the event in the same pass).
//! - [`init`]: seeded initialisation, including a candle-nn `VarBuilder` backend so that
//!   `candle_nn` layers are reproducible from one seed too.
//!
//! Every op runs on any device: CUDA and Metal tensors (and the CPU when the environment
//! variable `PPL_GENERIC_KERNELS=1` is set, see [`crate::dist::kernels`]) take a composition of
//! Candle ops, available directly as the `*_generic` functions.
//!
//! With the cargo feature `openblas`, the linear layer's matrix products go through the system
//! OpenBLAS (cblas) instead of Candle's pure-Rust gemm.
//!
//! ## Allocation
//!
//! A training step allocates and frees the same large buffers over and over. glibc's `malloc`
//! serves buffers above its mmap threshold with fresh pages from the kernel, so every step pays
//! page faults for them. Binaries that train networks should use a caching allocator; ppl's
//! benches use mimalloc:
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
//! ```
//!
//! (or, without a code change, raise glibc's thresholds:
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=268435456`).
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use ppl_runtime::{ParamStore, handlers::seed, nn::{self, Activation, Mlp}};
//! let decoder = Mlp::new("decoder", &[10, 400, 784])?.hidden_activation(Activation::Softplus);
//! let z = Tensor::zeros((128, 10), DType::F32, &Device::Cpu)?;
//! let x = Tensor::zeros((128, 784), DType::F32, &Device::Cpu)?;
//! let store = ParamStore::new();
//! let logits = store.scope(|| seed(0, || decoder.forward(&z)))?;
//! let log_lik = nn::fused::bernoulli_logits_log_prob(&logits, &x, 1)?; // [128]
//! assert_eq!(log_lik.dims(), &[128]);
//! # Ok::<(), ppl_runtime::Error>(())
//! ```

mod activation;
#[cfg(feature = "openblas")]
mod blas;
pub(crate) mod cpu;
pub mod fused;
pub mod init;
mod linear;
mod mlp;
mod rnn;

pub use activation::{Activation, elu, relu, sigmoid, softplus, tanh};
pub use linear::{Linear, linear, linear_generic};
pub use mlp::Mlp;
pub use rnn::{Direction, Gru, GruWeights, gru};
