//! Elementwise transforms: identity, exp, affine, sigmoid, softplus, power.

use super::{Transform, sum_rightmost};
use crate::dist::args::{Arg, broadcast_shapes};
use crate::dist::constraints::Constraint;
use crate::dist::special;
use crate::error::{Error, Result};
use candle_core::Tensor;

/// `y = x`.
#[derive(Clone, Debug, Default)]
pub struct IdentityTransform;

impl Transform for IdentityTransform {
    fn name(&self) -> &'static str {
        "IdentityTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        Ok(y.clone())
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(x.zeros_like()?)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::Real
    }
    fn sign(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// `y = exp(x)`.
#[derive(Clone, Debug, Default)]
pub struct ExpTransform;

impl Transform for ExpTransform {
    fn name(&self) -> &'static str {
        "ExpTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.exp()?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        Ok(y.log()?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::Positive
    }
    fn sign(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// `y = loc + scale · x`, with scalar or tensor `loc` and `scale` broadcast against `x`
/// (torch's `AffineTransform`); `event_dim` rightmost dims form one event.
#[derive(Clone, Debug)]
pub struct AffineTransform {
    loc: Arg,
    scale: Arg,
    event_dim: usize,
}

fn arg_dims(a: &Arg) -> &[usize] {
    match a {
        Arg::Scalar(_) => &[],
        Arg::Tensor(t) => t.dims(),
    }
}

impl AffineTransform {
    /// `y = loc + scale · x` elementwise; a scalar `scale` must be finite and non-zero, and
    /// tensor parameters must be floating point.
    pub fn new(loc: impl Into<Arg>, scale: impl Into<Arg>) -> Result<Self> {
        let (loc, scale) = (loc.into(), scale.into());
        if let Arg::Scalar(s) = scale
            && (s == 0.0 || !s.is_finite())
        {
            return Err(Error::invalid_arg("AffineTransform", "scale", format!("must be finite and non-zero, got {s}")));
        }
        if let Arg::Scalar(l) = loc
            && !l.is_finite()
        {
            return Err(Error::invalid_arg("AffineTransform", "loc", format!("must be finite, got {l}")));
        }
        for (name, a) in [("loc", &loc), ("scale", &scale)] {
            if let Arg::Tensor(t) = a
                && !t.dtype().is_float()
            {
                return Err(Error::invalid_arg("AffineTransform", name, format!("must be a floating point tensor, got {:?}", t.dtype())));
            }
        }
        Ok(AffineTransform { loc, scale, event_dim: 0 })
    }

    /// The same map acting on events of `event_dim` rightmost dims (the Jacobian term is summed
    /// over them).
    pub fn with_event_dim(mut self, event_dim: usize) -> Self {
        self.event_dim = event_dim;
        self
    }

    /// The offset.
    pub fn loc(&self) -> &Arg {
        &self.loc
    }

    /// The multiplier.
    pub fn scale(&self) -> &Arg {
        &self.scale
    }

    fn mul_scale(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.scale {
            Arg::Scalar(s) => x.affine(*s, 0.0)?,
            Arg::Tensor(s) => x.broadcast_mul(s)?,
        })
    }
}

impl Transform for AffineTransform {
    fn name(&self) -> &'static str {
        "AffineTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let (Arg::Scalar(l), Arg::Scalar(s)) = (&self.loc, &self.scale) {
            return Ok(x.affine(*s, *l)?);
        }
        let sx = self.mul_scale(x)?;
        Ok(match &self.loc {
            Arg::Scalar(l) => sx.affine(1.0, *l)?,
            Arg::Tensor(l) => sx.broadcast_add(l)?,
        })
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        if let (Arg::Scalar(l), Arg::Scalar(s)) = (&self.loc, &self.scale) {
            return Ok(y.affine(1.0 / s, -l / s)?);
        }
        let d = match &self.loc {
            Arg::Scalar(l) => y.affine(1.0, -l)?,
            Arg::Tensor(l) => y.broadcast_sub(l)?,
        };
        Ok(match &self.scale {
            Arg::Scalar(s) => d.affine(1.0 / s, 0.0)?,
            Arg::Tensor(s) => d.broadcast_div(s)?,
        })
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        let shape = broadcast_shapes(x.dims(), &self.forward_shape(x.dims())?).unwrap_or_else(|| x.dims().to_vec());
        let lad = match &self.scale {
            Arg::Scalar(s) => x.ones_like()?.affine(s.abs().ln(), 0.0)?.broadcast_as(shape.as_slice())?,
            Arg::Tensor(s) => s.abs()?.log()?.broadcast_as(shape.as_slice())?,
        };
        sum_rightmost(lad.contiguous()?, self.event_dim)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real.independent(self.event_dim)
    }
    fn codomain(&self) -> Constraint {
        Constraint::Real.independent(self.event_dim)
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let s = broadcast_shapes(shape, arg_dims(&self.loc)).and_then(|s| broadcast_shapes(&s, arg_dims(&self.scale)));
        s.ok_or_else(|| {
            Error::shape_mismatch("`AffineTransform`: input does not broadcast with `loc` and `scale`", arg_dims(&self.scale), shape)
        })
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.forward_shape(shape)
    }
    fn sign(&self) -> Option<f64> {
        match self.scale {
            Arg::Scalar(s) => Some(s.signum()),
            Arg::Tensor(_) => None,
        }
    }
}

/// `y = 1 / (1 + exp(-x))`.
#[derive(Clone, Debug, Default)]
pub struct SigmoidTransform;

impl Transform for SigmoidTransform {
    fn name(&self) -> &'static str {
        "SigmoidTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(x)?)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        special::logit(y)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        // log σ'(x) = -softplus(-x) - softplus(x)
        Ok((special::softplus(&x.neg()?)? + special::softplus(x)?)?.neg()?)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::UnitInterval
    }
    fn sign(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// `y = softplus(x) = log(1 + exp(x))` (torch's `SoftplusTransform`).
#[derive(Clone, Debug, Default)]
pub struct SoftplusTransform;

impl Transform for SoftplusTransform {
    fn name(&self) -> &'static str {
        "SoftplusTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        special::softplus(x)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        // x = y + log(1 - exp(-y)) = y + log(-expm1(-y))
        Ok((y + special::expm1(&y.neg()?)?.neg()?.log()?)?)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, _y: &Tensor) -> Result<Tensor> {
        // log σ(x) = -softplus(-x)
        special::log_sigmoid(x)
    }
    fn domain(&self) -> Constraint {
        Constraint::Real
    }
    fn codomain(&self) -> Constraint {
        Constraint::Positive
    }
    fn sign(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// `y = x^exponent` on the positive reals, with a scalar or tensor exponent (torch's `PowerTransform`).
#[derive(Clone, Debug)]
pub struct PowerTransform {
    exponent: Arg,
}

impl PowerTransform {
    /// `y = x^exponent`; a scalar exponent must be finite and non-zero.
    pub fn new(exponent: impl Into<Arg>) -> Result<Self> {
        let exponent = exponent.into();
        if let Arg::Scalar(e) = exponent
            && (e == 0.0 || !e.is_finite())
        {
            return Err(Error::invalid_arg("PowerTransform", "exponent", format!("must be finite and non-zero, got {e}")));
        }
        Ok(PowerTransform { exponent })
    }

    fn pow(x: &Tensor, e: &Arg, invert: bool) -> Result<Tensor> {
        Ok(match e {
            Arg::Scalar(e) => x.powf(if invert { 1.0 / e } else { *e })?,
            Arg::Tensor(e) => {
                let l = x.log()?;
                if invert { l.broadcast_div(e)?.exp()? } else { l.broadcast_mul(e)?.exp()? }
            }
        })
    }
}

impl Transform for PowerTransform {
    fn name(&self) -> &'static str {
        "PowerTransform"
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Self::pow(x, &self.exponent, false)
    }
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        Self::pow(y, &self.exponent, true)
    }
    fn log_abs_det_jacobian(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        // log |e y / x| = log|e| + log y - log x
        let r = (y.log()?.broadcast_sub(&x.log()?))?;
        Ok(match &self.exponent {
            Arg::Scalar(e) => r.affine(1.0, e.abs().ln())?,
            Arg::Tensor(e) => r.broadcast_add(&e.abs()?.log()?)?,
        })
    }
    fn domain(&self) -> Constraint {
        Constraint::Positive
    }
    fn codomain(&self) -> Constraint {
        Constraint::Positive
    }
    fn forward_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        broadcast_shapes(shape, arg_dims(&self.exponent)).ok_or_else(|| {
            Error::shape_mismatch("`PowerTransform`: input does not broadcast with `exponent`", arg_dims(&self.exponent), shape)
        })
    }
    fn inverse_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        self.forward_shape(shape)
    }
    fn sign(&self) -> Option<f64> {
        match self.exponent {
            Arg::Scalar(e) => Some(e.signum()),
            Arg::Tensor(_) => None,
        }
    }
}
