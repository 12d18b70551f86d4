//! A multi-layer perceptron of [`Linear`] layers.

use crate::error::{Error, Result};
use crate::nn::{Activation, Linear};
use candle_core::Tensor;

/// A stack of [`Linear`] layers with an activation after each hidden layer and another after
/// the last. Layer `i` is named `{name}.{i}`, so its parameters are `{name}.{i}.weight` and
/// `{name}.{i}.bias` in the current parameter store.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use ppl_runtime::{ParamStore, handlers::seed, nn::{Activation, Mlp}};
/// // 784 -> 400 -> 20, softplus hidden layer, raw output.
/// let encoder = Mlp::new("encoder", &[784, 400, 20])?.hidden_activation(Activation::Softplus);
/// let x = Tensor::zeros((8, 784), DType::F32, &Device::Cpu)?;
/// let store = ParamStore::new();
/// let h = store.scope(|| seed(0, || encoder.forward(&x)))?;
/// assert_eq!(h.dims(), &[8, 20]);
/// assert_eq!(store.len(), 4);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Mlp {
    name: String,
    layers: Vec<Linear>,
    hidden: Activation,
    output: Activation,
}

impl Mlp {
    /// Layers mapping `sizes[0] -> sizes[1] -> ... -> sizes[last]` (at least two sizes), with
    /// ReLU after hidden layers and no activation after the last (change either with
    /// [`hidden_activation`](Mlp::hidden_activation) / [`output_activation`](Mlp::output_activation)).
    pub fn new(name: impl Into<String>, sizes: &[usize]) -> Result<Mlp> {
        let name = name.into();
        if sizes.len() < 2 {
            return Err(Error::invalid_arg(
                format!("Mlp `{name}`"),
                "sizes",
                format!("needs at least an input and an output size, got {sizes:?}"),
            ));
        }
        let layers = sizes.windows(2).enumerate().map(|(i, w)| Linear::new(format!("{name}.{i}"), w[0], w[1])).collect();
        Ok(Mlp { name, layers, hidden: Activation::Relu, output: Activation::Identity })
    }

    /// The activation after each hidden layer (default ReLU).
    pub fn hidden_activation(mut self, a: Activation) -> Mlp {
        self.hidden = a;
        self
    }

    /// The activation after the last layer (default none).
    pub fn output_activation(mut self, a: Activation) -> Mlp {
        self.output = a;
        self
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// Runs the network on `x` (features in the last dim).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            h = if i == last { self.output.apply(&h)? } else { self.hidden.apply(&h)? };
        }
        Ok(h)
    }
}
