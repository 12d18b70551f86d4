//! The von Mises distribution, a circular analogue of the normal.

use crate::dist::args::{self, Arg};
use crate::dist::constraints::Constraint;
use crate::dist::distribution::{DistRef, Distribution};
use crate::dist::ops;
use crate::dist::special::{i0e, i1e, log_i0};
use crate::error::Result;
use crate::rng::Rng;
use candle_core::{DType, Device, Tensor};
use std::f64::consts::PI;
use std::sync::Arc;

/// Von Mises distribution with mean direction `loc` and `concentration` κ (torch's
/// `VonMises`): density `exp(κ cos(x - loc)) / (2π I₀(κ))`. Samples lie in `[-π, π)`;
/// `log_prob` accepts any real angle (it is 2π-periodic), as in torch.
///
/// `variance` is the circular variance `1 - I₁(κ)/I₀(κ)`, as in torch. Sampling is by
/// rejection (Best & Fisher 1979) and is not reparameterized.
///
/// ```
/// use ppl_runtime::dist::{Distribution, VonMises};
/// let d = VonMises::new(0.5, 2.0)?;
/// assert_eq!(d.mean()?.to_scalar::<f32>()?, 0.5);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct VonMises {
    loc: Tensor,
    concentration: Tensor,
    batch_shape: Vec<usize>,
}

impl VonMises {
    /// A von Mises with mean direction `loc` and `concentration > 0` (scalars or tensors).
    pub fn new(loc: impl Into<Arg>, concentration: impl Into<Arg>) -> Result<Self> {
        let r = args::resolve("VonMises", vec![("loc", loc.into()), ("concentration", concentration.into())])?;
        args::validate_param("VonMises", "loc", &r.tensors[0], &Constraint::Real)?;
        args::validate_param("VonMises", "concentration", &r.tensors[1], &Constraint::Positive)?;
        let [loc, concentration] = ops::take(r.tensors);
        Ok(VonMises { loc, concentration, batch_shape: r.shape })
    }

    /// The mean direction.
    pub fn loc(&self) -> &Tensor {
        &self.loc
    }

    /// The concentration κ.
    pub fn concentration(&self) -> &Tensor {
        &self.concentration
    }

    /// `I₁(κ)/I₀(κ)`, the mean resultant length.
    fn bessel_ratio(&self) -> Result<Tensor> {
        Ok((i1e(&self.concentration)? / i0e(&self.concentration)?)?)
    }
}

/// One draw from a von Mises centred at 0 (Best & Fisher's wrapped-Cauchy rejection sampler).
fn sample_centred(rng: &mut Rng, kappa: f64) -> f64 {
    let r = if kappa < 1e-5 {
        1.0 / kappa + kappa
    } else {
        let tau = 1.0 + (1.0 + 4.0 * kappa * kappa).sqrt();
        let rho = (tau - (2.0 * tau).sqrt()) / (2.0 * kappa);
        (1.0 + rho * rho) / (2.0 * rho)
    };
    loop {
        let (u1, u2, u3) = (rng.uniform_open01(), rng.uniform_open01(), rng.uniform_open01());
        let z = (PI * u1).cos();
        let f = ((1.0 + r * z) / (r + z)).clamp(-1.0, 1.0);
        let c = kappa * (r - f);
        if c * (2.0 - c) - u2 > 0.0 || (c / u2).ln() + 1.0 - c >= 0.0 {
            return if u3 < 0.5 { -f.acos() } else { f.acos() };
        }
    }
}

impl Distribution for VonMises {
    fn name(&self) -> &'static str {
        "VonMises"
    }
    fn batch_shape(&self) -> &[usize] {
        &self.batch_shape
    }
    fn event_shape(&self) -> &[usize] {
        &[]
    }
    fn dtype(&self) -> DType {
        self.loc.dtype()
    }
    fn device(&self) -> &Device {
        self.loc.device()
    }
    fn sample(&self, rng: &mut Rng, sample_shape: &[usize]) -> Result<Tensor> {
        let shape = args::concat_shapes(sample_shape, &self.batch_shape);
        let host = |t: &Tensor| -> Result<Vec<f64>> {
            Ok(t.detach().broadcast_as(shape.as_slice())?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
        };
        let (loc, kappa) = (host(&self.loc)?, host(&self.concentration)?);
        let v: Vec<f64> = loc
            .iter()
            .zip(&kappa)
            .map(|(&l, &k)| (sample_centred(rng, k) + l + PI).rem_euclid(2.0 * PI) - PI)
            .collect();
        Ok(Tensor::from_vec(v, shape, self.device())?.to_dtype(self.dtype())?)
    }
    fn log_prob(&self, value: &Tensor) -> Result<Tensor> {
        args::check_value_shape("VonMises", value, &self.batch_shape, &[], self.dtype())?;
        args::validate_value("VonMises", value, &Constraint::Real)?;
        let c = value.broadcast_sub(&self.loc)?.cos()?.broadcast_mul(&self.concentration)?;
        Ok(c.broadcast_sub(&log_i0(&self.concentration)?.affine(1.0, (2.0 * PI).ln())?)?)
    }
    fn support(&self) -> Constraint {
        Constraint::Real
    }
    fn mean(&self) -> Result<Tensor> {
        Ok(self.loc.clone())
    }
    fn variance(&self) -> Result<Tensor> {
        Ok(self.bessel_ratio()?.affine(-1.0, 1.0)?)
    }
    fn entropy(&self) -> Result<Tensor> {
        // log(2π I₀(κ)) - κ I₁(κ)/I₀(κ)
        let t = (&self.concentration * self.bessel_ratio()?)?;
        Ok((log_i0(&self.concentration)?.affine(1.0, (2.0 * PI).ln())? - t)?)
    }
    fn expand(&self, batch_shape: &[usize]) -> Result<DistRef> {
        Ok(Arc::new(VonMises {
            loc: args::expand_param("VonMises", &self.loc, &self.batch_shape, batch_shape)?,
            concentration: args::expand_param("VonMises", &self.concentration, &self.batch_shape, batch_shape)?,
            batch_shape: batch_shape.to_vec(),
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
