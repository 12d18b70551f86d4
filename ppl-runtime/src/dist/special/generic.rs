//! Device-generic special functions: compositions of Candle ops, for tensors off the CPU (or on
//! it when [`kernels::force_generic`](crate::dist::kernels::force_generic) asks).
//!
//! Values are computed in the input's dtype (f32 or f64; Metal has no f64) from a detached copy
//! of the input, with the same algorithms as the scalar routines where they exist: recurrence
//! shifts plus asymptotic series for the gamma family, fdlibm's rational approximations for the
//! erfc tail, Acklam's rational approximation plus Newton steps on `log Φ` for the quantiles,
//! power and Hankel series for the Bessel functions. The gradient is attached by a
//! straight-through term `y = f(x̂) + (x - x̂) · f'(x̂)` (`x̂` the detached input, `x - x̂ = 0`),
//! with `f'` the same formula the CPU kernel's backward uses, evaluated by this module. So
//! first-order gradients match the CPU path; second-order gradients do not flow through the
//! generic path (they need `CANDLE_GRAD_DO_NOT_DETACH=1` on the CPU path anyway).
//!
//! Accuracy against the CPU kernels (which are within about 1 ulp of scipy), measured by
//! `dist::tests::generic` on grids over the domains the distributions use and their tails:
//! in f64, relative errors below 6e-16 for log1p, expm1, softplus, erf (identical), erfc, ndtr,
//! log_ndtr, erfinv, i0e, i1e, atan and tan; below 3e-15 for ndtri and logit (near ½); below
//! 3e-14 for lgamma, digamma, trigamma and tetragamma (absolute 3e-14 near the zeros of lgamma
//! and digamma, none elsewhere). In f32 (computed in f32), relative errors below 4e-7 for most,
//! below 4e-6 for the tails of erfc/ndtr/log_ndtr (where `exp(-x²)` amplifies the error of
//! `x²`) and for the gamma family (lgamma absolute 5e-7 near its zeros).

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};

use super::scalar::LN_SQRT_2PI;
use super::{Grad1, Grad2};

/// Errors unless `x` is f32 or f64 (as the CPU kernels do).
pub(super) fn check_float(what: &str, x: &Tensor) -> Result<()> {
    match x.dtype() {
        DType::F32 | DType::F64 => Ok(()),
        d => Err(Error::invalid_arg(format!("`special::{what}`"), "x", format!("needs an f32 or f64 tensor, got {d:?}"))),
    }
}

/// A tensor shaped like `x` filled with `v`.
fn full(x: &Tensor, v: f64) -> Result<Tensor> {
    Ok(x.zeros_like()?.affine(1.0, v)?)
}

/// `cond ? a : b` with `a` a constant.
fn set_where(cond: &Tensor, v: f64, b: &Tensor) -> Result<Tensor> {
    Ok(cond.where_cond(&full(b, v)?, b)?)
}

/// Keeps NaN inputs NaN in the output (comparisons and min/max may lose them).
fn keep_nan(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(x.ne(x)?.where_cond(x, y)?)
}

/// Horner evaluation of `Σ c[i] x^(n-1-i)` (highest degree first).
fn horner(x: &Tensor, c: &[f64]) -> Result<Tensor> {
    let mut acc = full(x, c[0])?;
    for &ci in &c[1..] {
        acc = (acc * x)?.affine(1.0, ci)?;
    }
    Ok(acc)
}

/// Attaches first-order gradients to `value`, computed from detached inputs: for each
/// `(x, dy/dx)` adds `(x - x̂) · dy/dx`, which is zero in value. Elements where that product is
/// not exactly zero (infinite inputs, poles of the derivative) keep their value, and get a NaN
/// gradient.
fn attach(value: Tensor, parts: &[(&Tensor, Tensor)]) -> Result<Tensor> {
    let mut y = value;
    for (x, grad) in parts {
        let eg = (*x - x.detach())?.mul(grad)?;
        let zero = eg.detach().eq(0.0)?;
        y = (y + zero.where_cond(&eg, &grad.zeros_like()?)?)?;
    }
    Ok(y)
}

/// A unary function: `value` of the detached input; when `x` is tracked, the gradient
/// `grad(x̂, y)` (the CPU kernel's backward formula) is attached. Without a formula (`None`), a
/// tracked input is an error, as differentiating the CPU kernel would be.
pub(super) fn unary(what: &str, x: &Tensor, value: fn(&Tensor) -> Result<Tensor>, grad: Option<Grad1>) -> Result<Tensor> {
    check_float(what, x)?;
    let xd = x.detach();
    let y = value(&xd)?;
    if !x.track_op() {
        return Ok(y);
    }
    let Some(grad) = grad else {
        return Err(Error::invalid_arg(
            format!("`special::{what}`"),
            "x",
            "has no gradient here; pass a detached tensor (`Tensor::detach`)",
        ));
    };
    let g = grad(&xd, &y)?;
    attach(y, &[(x, g)])
}

/// A binary function of same-shape `a`, `b`, with the partial derivatives `grad(â, b̂, y)`
/// attached when an input is tracked.
pub(super) fn binary(
    what: &str,
    a: &Tensor,
    b: &Tensor,
    value: fn(&Tensor, &Tensor) -> Result<Tensor>,
    grad: Grad2,
) -> Result<Tensor> {
    check_float(what, a)?;
    let (ad, bd) = (a.detach(), b.detach());
    let y = value(&ad, &bd)?;
    if !a.track_op() && !b.track_op() {
        return Ok(y);
    }
    let (ga, gb) = grad(&ad, &bd, &y)?;
    attach(y, &[(a, ga), (b, gb)])
}

/// `x - round(x)` in `[-½, ½]`: exact argument reduction for the period-1 reflection terms.
fn frac(x: &Tensor) -> Result<Tensor> {
    Ok((x - x.round()?)?)
}

// ---------------------------------------------------------------------------------------------
// Gamma family

/// Shift for the recurrences: arguments below this are moved up by this much.
const GAMMA_SHIFT: usize = 10;

/// `(x - ½) ln x - x + ½ ln 2π + Stirling correction`, accurate to 3e-17 for `x ≥ 10`.
fn stirling(x: &Tensor) -> Result<Tensor> {
    // (x - ½)(ln x - 1) - ½ = (x - ½) ln x - x, written to give +inf (not NaN) at x = +inf.
    let main = (x.affine(1.0, -0.5)? * x.log()?.affine(1.0, -1.0)?)?.affine(1.0, LN_SQRT_2PI - 0.5)?;
    Ok((main + stirling_correction(x)?)?)
}

/// `lgamma(x) - stirling main part` for `x ≥ 10`: `Σ B₂ₖ / (2k(2k-1) x^(2k-1))`, k ≤ 7.
fn stirling_correction(x: &Tensor) -> Result<Tensor> {
    let r = x.recip()?;
    let z = r.sqr()?;
    let c = [1.0 / 156.0, -691.0 / 360_360.0, 1.0 / 1188.0, -1.0 / 1680.0, 1.0 / 1260.0, -1.0 / 360.0, 1.0 / 12.0];
    Ok((horner(&z, &c)? * r)?)
}

/// `ζ(k) - 1` for `k ≥ 2`: Euler–Maclaurin with 28 terms and 4 corrections (error below 1e-18).
fn zeta_minus_1(k: i32) -> f64 {
    if k == 2 {
        return PI * PI / 6.0 - 1.0;
    }
    let n = 30f64;
    let kf = k as f64;
    let head: f64 = (2..30).rev().map(|j| (j as f64).powi(-k)).sum();
    // Σ_{j≥N} j^-k = N^(1-k)/(k-1) + N^-k/2 + Σ B₂ᵢ/(2i)! · k(k+1)…(k+2i-2) · N^(-k-2i+1).
    let mut tail = n.powi(1 - k) / (kf - 1.0) + 0.5 * n.powi(-k);
    let bern = [1.0 / 6.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0];
    let (mut rising, mut fact) = (kf, 2.0);
    for (i, b) in bern.iter().enumerate() {
        let i = i as i32 + 1;
        tail += b / fact * rising * n.powi(-k - 2 * i + 1);
        rising *= (kf + 2.0 * i as f64 - 1.0) * (kf + 2.0 * i as f64);
        fact *= (2 * i + 1) as f64 * (2 * i + 2) as f64;
    }
    head + tail
}

/// `lgamma(2 + z)` for `|z| ≤ ½`: `(1 - γ) z + Σ_{k≥2} (-1)^k (ζ(k) - 1) z^k / k`, 30 terms in f64
/// (error below 1e-18), 14 in f32. No cancellation at the zeros of lgamma (z = 0, z = -1 via
/// `lgamma(1 + z) = lgamma(2 + z) - log1p(z)`).
fn lgamma_2_plus(z: &Tensor) -> Result<Tensor> {
    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;
    let terms = if z.dtype() == DType::F64 { 30 } else { 14 };
    let mut c: Vec<f64> = (2..=terms).rev().map(|k| if k % 2 == 0 { 1.0 } else { -1.0 } * zeta_minus_1(k) / k as f64).collect();
    c.push(1.0 - EULER_GAMMA);
    Ok((horner(z, &c)? * z)?)
}

/// `lgamma` for `t ≥ 0` (and `+inf`): below ½, `lgamma(2 + t) - log1p(t) - ln t`; on [½, 3½)
/// [`lgamma_2_plus`] at `z = t - round(t)` with the recurrence to `round(t)` ∈ {1, 2, 3};
/// beyond, `stirling(t + 10) - ln Π_{k<10} (t + k)` below 10, `stirling(t)` above.
fn lgamma_nonneg(t: &Tensor) -> Result<Tensor> {
    let nearest = t.round()?;
    let tiny = t.lt(0.5)?;
    let z = tiny.where_cond(t, &(t - &nearest)?)?;
    let s = lgamma_2_plus(&z)?;
    let low = (&s - log1p(&z)?)?; // lgamma(1 + z)
    let high = (&s + z.affine(1.0, 2.0)?.log()?)?; // lgamma(3 + z)
    let near = nearest.eq(1.0)?.where_cond(&low, &nearest.eq(3.0)?.where_cond(&high, &s)?)?;
    let near = tiny.where_cond(&(&low - t.log()?)?, &near)?;
    let far = lgamma_far(t)?;
    Ok(t.lt(3.5)?.where_cond(&near, &far)?)
}

/// `lgamma(t)` for `t ≥ 3.5` by the shifted Stirling series.
fn lgamma_far(t: &Tensor) -> Result<Tensor> {
    let small = t.lt(GAMMA_SHIFT as f64)?;
    let shifted = small.where_cond(&t.affine(1.0, GAMMA_SHIFT as f64)?, t)?;
    let mut p = t.clone();
    for k in 1..GAMMA_SHIFT {
        p = (p * t.affine(1.0, k as f64)?)?;
    }
    let corr = small.where_cond(&p.log()?, &t.zeros_like()?)?;
    Ok((stirling(&shifted)? - corr)?)
}

/// `log |Γ(x)|`; reflection `ln π - ln |sin πx| - lgamma(1 - x)` for `x < 0`.
pub(super) fn lgamma(x: &Tensor) -> Result<Tensor> {
    let (neg, t, ..) = reflect_and_shift(x, false, 0.0)?;
    let direct = lgamma_nonneg(&t)?;
    let sin = (frac(x)? * PI)?.sin()?.abs()?;
    let reflected = (sin.log()?.affine(-1.0, PI.ln())? - &direct)?;
    let y = neg.where_cond(&reflected, &direct)?;
    set_where(&x.eq(f64::NEG_INFINITY)?, f64::INFINITY, &y)
}

/// The polygamma recurrences' set-up: `neg` (where the reflection applies: `x < 0`, or `x ≤ 0`
/// if `at_zero`), `t` (`1 - x` there, else `x`), `small` (`t < n`) and `shifted` (`t + n` there).
fn reflect_and_shift(x: &Tensor, at_zero: bool, n: f64) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let neg = if at_zero { x.le(0.0)? } else { x.lt(0.0)? };
    let t = neg.where_cond(&x.affine(-1.0, 1.0)?, x)?;
    let small = t.lt(n)?;
    let shifted = small.where_cond(&t.affine(1.0, n)?, &t)?;
    Ok((neg, t, small, shifted))
}

/// `Σ_{k<n} (t + k)^-p` where `small`, else 0: what the recurrence moves past.
fn recurrence_sum(t: &Tensor, small: &Tensor, n: usize, p: i32) -> Result<Tensor> {
    let mut acc = t.zeros_like()?;
    for k in 0..n {
        let tk = t.affine(1.0, k as f64)?;
        let pow = match p {
            1 => tk,
            2 => tk.sqr()?,
            _ => (tk.sqr()? * &tk)?,
        };
        acc = (acc + pow.recip()?)?;
    }
    Ok(small.where_cond(&acc, &t.zeros_like()?)?)
}

/// `ψ(x)`: `asym(t + 10) - Σ_{k<10} 1/(t + k)` below 10; reflection `ψ(1 - x) - π cot πx` for
/// `x < 0`; `-inf` at the poles (as statrs).
pub(super) fn digamma(x: &Tensor) -> Result<Tensor> {
    let (neg, t, small, shifted) = reflect_and_shift(x, false, GAMMA_SHIFT as f64)?;
    // ψ(x) ~ ln x - 1/(2x) - Σ B₂ₖ / (2k x^(2k)), k ≤ 7.
    let r = shifted.recip()?;
    let z = r.sqr()?;
    let c = [1.0 / 12.0, -691.0 / 32760.0, 1.0 / 132.0, -1.0 / 240.0, 1.0 / 252.0, -1.0 / 120.0, 1.0 / 12.0];
    let asym = ((shifted.log()? - (r * 0.5)?)? - (horner(&z, &c)? * z)?)?;
    let direct = (asym - recurrence_sum(&t, &small, GAMMA_SHIFT, 1)?)?;
    let pr = (frac(x)? * PI)?;
    let cot = (pr.cos()? / pr.sin()?)?;
    let reflected = (&direct - (cot * PI)?)?;
    let y = neg.where_cond(&reflected, &direct)?;
    let pole = (x.le(0.0)? * x.eq(&x.round()?)?)?;
    let y = set_where(&pole, f64::NEG_INFINITY, &y)?;
    set_where(&x.eq(f64::NEG_INFINITY)?, f64::NAN, &y)
}

/// `ψ₁(x)`: recurrence to `x ≥ 12`, asymptotic series; reflection `π²/sin²(πx) - ψ₁(1 - x)` for
/// `x ≤ 0` (`+inf` at the poles, NaN at `-inf`).
pub(super) fn trigamma(x: &Tensor) -> Result<Tensor> {
    let (neg, t, small, shifted) = reflect_and_shift(x, true, 12.0)?;
    let r = shifted.recip()?;
    let z = r.sqr()?;
    // ψ₁(x) ~ 1/x + 1/(2x²) + Σ B₂ₖ / x^(2k+1), k ≤ 6.
    let c = [-691.0 / 2730.0, 5.0 / 66.0, -1.0 / 30.0, 1.0 / 42.0, -1.0 / 30.0, 1.0 / 6.0];
    let series = ((horner(&z, &c)? * &z)? * &r)?;
    let asym = ((&r + (&z * 0.5)?)? + series)?;
    let direct = (asym + recurrence_sum(&t, &small, 12, 2)?)?;
    let s = (frac(x)? * PI)?.sin()?;
    let reflected = (s.sqr()?.recip()?.affine(PI * PI, 0.0)? - &direct)?;
    let y = neg.where_cond(&reflected, &direct)?;
    set_where(&x.eq(f64::NEG_INFINITY)?, f64::NAN, &y)
}

/// `ψ₂(x)`: recurrence to `x ≥ 12`, asymptotic series; reflection
/// `ψ₂(1 - x) - 2π³ cot(πx) / sin²(πx)` for `x ≤ 0` (NaN at the poles and at `-inf`).
pub(super) fn tetragamma(x: &Tensor) -> Result<Tensor> {
    let (neg, t, small, shifted) = reflect_and_shift(x, true, 12.0)?;
    let r = shifted.recip()?;
    let z = r.sqr()?;
    // ψ₂(x) ~ -1/x² - 1/x³ - Σ (2k+1) B₂ₖ / x^(2k+2), k ≤ 6.
    let c = [691.0 / 210.0, -5.0 / 6.0, 0.3, -1.0 / 6.0, 1.0 / 6.0, -0.5];
    let series = (horner(&z, &c)? * z.sqr()?)?;
    let asym = ((series - &z)? - (&z * &r)?)?;
    let direct = (asym - (recurrence_sum(&t, &small, 12, 3)? * 2.0)?)?;
    let pr = (frac(x)? * PI)?;
    let (s, c) = (pr.sin()?, pr.cos()?);
    let reflected = (&direct - (c / (s.sqr()? * &s)?)?.affine(2.0 * PI.powi(3), 0.0)?)?;
    let y = neg.where_cond(&reflected, &direct)?;
    let pole = (x.le(0.0)? * x.eq(&x.round()?)?)?;
    let bad = pole.maximum(&x.eq(f64::NEG_INFINITY)?)?;
    set_where(&bad, f64::NAN, &y)
}

/// `log |B(a, b)|` as [`scalar::log_beta`](super::scalar::log_beta): Stirling corrections once an
/// argument is ≥ 10, so no cancellation for large arguments.
pub(super) fn log_beta(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let p = a.minimum(b)?;
    let q = a.maximum(b)?;
    let pq = (&p + &q)?;
    let lg_p = lgamma(&p)?;
    let plain = ((&lg_p + lgamma(&q)?)? - lgamma(&pq)?)?;
    let ratio = (&p / &pq)?;
    let l1p = log1p(&ratio.neg()?)?;
    let (cp, cq, cpq) = (stirling_correction(&p)?, stirling_correction(&q)?, stirling_correction(&pq)?);
    // p ≥ 10: -½ ln q + ½ ln 2π + corr + (p - ½) ln(p/(p+q)) + q ln(1 - p/(p+q)).
    let big = (q.log()?.affine(-0.5, LN_SQRT_2PI)? + ((&cp + &cq)? - &cpq)?)?;
    let big = ((big + (p.affine(1.0, -0.5)? * ratio.log()?)?)? + (&q * &l1p)?)?;
    // q ≥ 10 > p: lgamma(p) + corr + p - p ln(p+q) + (q - ½) ln(1 - p/(p+q)).
    let mid = ((lg_p + (cq - cpq)?)? + &p)?;
    let mid = ((mid - (&p * pq.log()?)?)? + (q.affine(1.0, -0.5)? * l1p)?)?;
    let y = q.ge(10.0)?.where_cond(&mid, &plain)?;
    let y = p.ge(10.0)?.where_cond(&big, &y)?;
    let odd = p.le(0.0)?.maximum(&q.eq(f64::INFINITY)?)?;
    let y = odd.where_cond(&plain, &y)?;
    let y = keep_nan(a, &y)?;
    keep_nan(b, &y)
}

// ---------------------------------------------------------------------------------------------
// log1p, expm1, softplus

/// `log(1 + x)` by Kahan's trick `ln(u) · x / (u - 1)`, `u = 1 + x` (a few ulp).
pub(super) fn log1p(x: &Tensor) -> Result<Tensor> {
    let u = x.affine(1.0, 1.0)?;
    let d = u.affine(1.0, -1.0)?;
    let y = ((u.log()? * x)? / &d)?;
    let y = d.eq(0.0)?.where_cond(x, &y)?;
    set_where(&u.eq(f64::INFINITY)?, f64::INFINITY, &y)
}

/// `exp(x) - 1` by Kahan's trick `(u - 1) · x / ln u`, `u = eˣ` (a few ulp).
pub(super) fn expm1(x: &Tensor) -> Result<Tensor> {
    let u = x.exp()?;
    let d = u.affine(1.0, -1.0)?;
    let y = ((&d * x)? / u.log()?)?;
    let y = u.eq(1.0)?.where_cond(x, &y)?;
    let y = set_where(&d.eq(-1.0)?, -1.0, &y)?;
    set_where(&u.eq(f64::INFINITY)?, f64::INFINITY, &y)
}

/// `log(1 + eˣ) = max(x, 0) + log1p(e^{-|x|})`.
pub(super) fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + log1p(&x.abs()?.neg()?.exp()?)?)?)
}

// ---------------------------------------------------------------------------------------------
// Error function family

/// fdlibm's tail of `erfc` for `u = clamp(x, 1.25, 30)`:
/// `erfc(u) = exp(-z² - 0.5625) · exp((z - u)(z + u) + R(1/u²)/S(1/u²)) / u`, with `z` the
/// leading bits of `u` so that `z²` is exact. Returns `(u, -z² - 0.5625, (z - u)(z + u) + R/S)`.
#[allow(clippy::excessive_precision)] // fdlibm's coefficients, verbatim
fn erfc_tail_terms(x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    const RA: [f64; 8] = [
        -9.81432934416914548592e+00,
        -8.12874355063065934246e+01,
        -1.84605092906711035994e+02,
        -1.62396669462573470355e+02,
        -6.23753324503260060396e+01,
        -1.05586262253232909814e+01,
        -6.93858572707181764372e-01,
        -9.86494403484714822705e-03,
    ];
    const SA: [f64; 9] = [
        -6.04244152148580987438e-02,
        6.57024977031928170135e+00,
        1.08635005541779435134e+02,
        4.29008140027567833386e+02,
        6.45387271733267880336e+02,
        4.34565877475229228821e+02,
        1.37657754143519042600e+02,
        1.96512716674392571292e+01,
        1.0,
    ];
    const RB: [f64; 7] = [
        -4.83519191608651397019e+02,
        -1.02509513161107724954e+03,
        -6.37566443368389627722e+02,
        -1.60636384855821916062e+02,
        -1.77579549177547519889e+01,
        -7.99283237680523006574e-01,
        -9.86494292470009928597e-03,
    ];
    const SB: [f64; 8] = [
        -2.24409524465858183362e+01,
        4.74528541206955367215e+02,
        2.55305040643316442583e+03,
        3.19985821950859553908e+03,
        1.53672958608443695994e+03,
        3.25792512996573918826e+02,
        3.03380607434824582924e+01,
        1.0,
    ];
    let u = x.clamp(1.25, 30.0)?;
    let s = u.sqr()?.recip()?;
    let ra = (horner(&s, &RA)? / horner(&s, &SA)?)?;
    let rb = (horner(&s, &RB)? / horner(&s, &SB)?)?;
    let r = u.lt(1.0 / 0.35)?.where_cond(&ra, &rb)?;
    // z: x truncated so that z² is exact (21 significant bits in f64, 11 in f32).
    let scale = if x.dtype() == DType::F64 { 65536.0 } else { 64.0 };
    let z = (&u * scale)?.floor()?.affine(1.0 / scale, 0.0)?;
    let big = z.sqr()?.affine(-1.0, -0.5625)?;
    let small = (((&z - &u)? * (&z + &u)?)? + r)?;
    Ok((u, big, small))
}

/// `erfc(x)`: `1 - erf(x)` below 1.25 (Candle's `erf` is libm's on the CPU), fdlibm's tail
/// ([`erfc_tail_terms`]) above; 0 from 30 on.
pub(super) fn erfc(x: &Tensor) -> Result<Tensor> {
    let near = x.erf()?.affine(-1.0, 1.0)?;
    let (u, big, small) = erfc_tail_terms(x)?;
    let tail = ((big.exp()? * small.exp()?)? / u)?;
    let tail = set_where(&x.ge(30.0)?, 0.0, &tail)?;
    let y = x.lt(1.25)?.where_cond(&near, &tail)?;
    keep_nan(x, &y)
}

/// `Φ(x) = ½ erfc(-x/√2)`.
pub(super) fn ndtr(x: &Tensor) -> Result<Tensor> {
    Ok((erfc(&x.affine(-FRAC_1_SQRT_2, 0.0)?)? * 0.5)?)
}

/// `log Φ(x)`: `log1p(-Φ(-x))` for `x > 0`, `ln Φ(x)` down to `-1.25√2`, then the logarithm of
/// fdlibm's erfc tail (no underflow, also in f32) down to -20, the asymptotic series below (as
/// [`scalar::log_ndtr`](super::scalar::log_ndtr), which uses `ln Φ(x)` down to -20).
pub(super) fn log_ndtr(x: &Tensor) -> Result<Tensor> {
    let right = log1p(&ndtr(&x.neg()?)?.neg()?)?;
    let near = ndtr(x)?.log()?;
    let (u, big, small) = erfc_tail_terms(&x.affine(-FRAC_1_SQRT_2, 0.0)?)?;
    let tail = ((big + small)? - u.log()?)?.affine(1.0, -std::f64::consts::LN_2)?;
    let middle = x.gt(-1.25 * std::f64::consts::SQRT_2)?.where_cond(&near, &tail)?;
    let z = x.sqr()?.recip()?;
    let (mut term, mut sum) = (z.ones_like()?, z.ones_like()?);
    for k in 1..=12 {
        term = (term * z.affine(-((2 * k - 1) as f64), 0.0)?)?;
        sum = (sum + &term)?;
    }
    let left = ((x.sqr()?.affine(-0.5, -LN_SQRT_2PI)? - x.neg()?.log()?)? + sum.log()?)?;
    let y = x.gt(-20.0)?.where_cond(&middle, &left)?;
    let y = x.gt(0.0)?.where_cond(&right, &y)?;
    keep_nan(x, &y)
}

/// Acklam's rational approximation to `Φ⁻¹(q)` for `q ≤ ½` (relative error below 1.2e-9),
/// given `q - ½` for the central region (so that callers can pass it exactly).
#[allow(clippy::excessive_precision)] // Acklam's coefficients, verbatim
fn acklam_lower(q: &Tensor, q_minus_half: &Tensor) -> Result<Tensor> {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383577518672690e+02,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 6] = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01, 1.0];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 5] = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00, 1.0];
    let central = acklam_central(q_minus_half, &A, &B)?;
    let r = q.clamp(f64::MIN_POSITIVE, 0.5)?.log()?.affine(-2.0, 0.0)?.sqrt()?;
    let tail = (horner(&r, &C)? / horner(&r, &D)?)?;
    Ok(q.lt(0.02425)?.where_cond(&tail, &central)?)
}

fn acklam_central(u: &Tensor, a: &[f64], b: &[f64]) -> Result<Tensor> {
    let v = u.sqr()?;
    Ok(((horner(&v, a)? * u)? / horner(&v, b)?)?)
}

/// `Φ⁻¹(q)` for `q ∈ [0, ½]` (`-inf` at 0): Acklam, then two Newton steps on `log Φ`, which keep
/// full relative accuracy in the tail.
fn ndtri_lower(q: &Tensor) -> Result<Tensor> {
    let mut x = acklam_lower(q, &q.affine(1.0, -0.5)?)?;
    let lq = q.log()?;
    for _ in 0..2 {
        let lp = log_ndtr(&x)?;
        let ratio = (&lp - x.sqr()?.affine(-0.5, -LN_SQRT_2PI)?)?.exp()?; // Φ(x) / φ(x)
        x = (&x - ((lp - &lq)? * ratio)?)?;
    }
    set_where(&q.eq(0.0)?, f64::NEG_INFINITY, &x)
}

/// `Φ⁻¹(p)`: [`ndtri_lower`] on the nearer tail `min(p, 1 - p)` (exact), mirrored for `p > ½`.
pub(super) fn ndtri(p: &Tensor) -> Result<Tensor> {
    let upper = p.gt(0.5)?;
    let q = upper.where_cond(&p.affine(-1.0, 1.0)?, p)?;
    let xl = ndtri_lower(&q.clamp(0.0, 0.5)?)?;
    let y = upper.where_cond(&xl.neg()?, &xl)?;
    let outside = p.lt(0.0)?.maximum(&p.gt(1.0)?)?;
    let y = set_where(&outside, f64::NAN, &y)?;
    keep_nan(p, &y)
}

/// `erfinv(y)`: for `|y| ≤ ½` Acklam's central form at `q - ½ = y/2`, scaled by `1/√2`, then two
/// Newton steps on `erf`; beyond, `-sign(y) Φ⁻¹((1 - |y|)/2) / √2` (exact tail argument).
pub(super) fn erfinv(y: &Tensor) -> Result<Tensor> {
    let a = y.abs()?;
    let half = y.affine(0.5, 0.0)?;
    let mut x = acklam_lower(&half.affine(1.0, 0.5)?, &half)?.affine(FRAC_1_SQRT_2, 0.0)?;
    for _ in 0..2 {
        let d = x.sqr()?.neg()?.exp()?.affine(FRAC_2_SQRT_PI, 0.0)?;
        x = (&x - ((x.erf()? - y)? / d)?)?;
    }
    let t = a.affine(-1.0, 1.0)?.clamp(0.0, 0.5)?;
    let tail = (ndtri_lower(&t.affine(0.5, 0.0)?)? * y.sign()?)?.affine(-FRAC_1_SQRT_2, 0.0)?;
    let x = a.gt(0.5)?.where_cond(&tail, &x)?;
    let x = set_where(&a.gt(1.0)?, f64::NAN, &x)?;
    keep_nan(y, &x)
}

// ---------------------------------------------------------------------------------------------
// Bessel functions

/// `e^{-|x|} I_ν(x)` for ν ∈ {0, 1} as [`scalar::i0e`](super::scalar::i0e): 40 terms of the power
/// series for `|x| ≤ 20`, 40 terms of Hankel's expansion beyond (decreasing there).
fn bessel_ie(nu: u32, x: &Tensor) -> Result<Tensor> {
    let ax = x.abs()?;
    let a = ax.clamp(0.0, 20.0)?;
    let q = (a.sqr()? * 0.25)?;
    let mut term = if nu == 0 { a.ones_like()? } else { (&a * 0.5)? };
    let mut sum = term.clone();
    for k in 1..=40 {
        let k = k as f64;
        term = (term * q.affine(1.0 / (k * (k + nu as f64)), 0.0)?)?;
        sum = (sum + &term)?;
    }
    let series = (sum * a.neg()?.exp()?)?;
    let b = ax.clamp(20.0, f64::INFINITY)?;
    let rb = b.recip()?;
    let mu = 4.0 * (nu * nu) as f64;
    let (mut term, mut sum) = (b.ones_like()?, b.ones_like()?);
    for k in 1..=40 {
        let odd = (2 * k - 1) as f64;
        term = (term * rb.affine(-(mu - odd * odd) / (k as f64 * 8.0), 0.0)?)?;
        sum = (sum + &term)?;
    }
    let asym = (sum / b.affine(2.0 * PI, 0.0)?.sqrt()?)?;
    let asym = set_where(&b.eq(f64::INFINITY)?, 0.0, &asym)?;
    let v = ax.le(20.0)?.where_cond(&series, &asym)?;
    let v = if nu == 1 { set_where(&x.lt(0.0)?, -1.0, &x.ones_like()?)?.mul(&v)? } else { v };
    keep_nan(x, &v)
}

/// `e^{-|x|} I₀(x)`.
pub(super) fn i0e(x: &Tensor) -> Result<Tensor> {
    bessel_ie(0, x)
}

/// `e^{-|x|} I₁(x)`.
pub(super) fn i1e(x: &Tensor) -> Result<Tensor> {
    bessel_ie(1, x)
}

/// `d/dx i1e(x) = i0e(x) - i1e(x) (sign(x) + 1/x)`, ½ at 0.
pub(super) fn i1e_grad(x: &Tensor) -> Result<Tensor> {
    let g = (i0e(x)? - (i1e(x)? * (x.sign()? + x.recip()?)?)?)?;
    set_where(&x.eq(0.0)?, 0.5, &g)
}

// ---------------------------------------------------------------------------------------------
// Trigonometry

/// `atan(x)`: `π/2 - atan(1/|x|)` above 1, two half-angle steps `t/(1 + √(1 + t²))` to
/// `|t| ≤ tan(π/16)`, then 12 terms of the Taylor series (a few ulp).
pub(super) fn atan(x: &Tensor) -> Result<Tensor> {
    let a = x.abs()?;
    let inv = a.gt(1.0)?;
    let mut t = inv.where_cond(&a.recip()?, &a)?;
    for _ in 0..2 {
        t = (&t / t.sqr()?.affine(1.0, 1.0)?.sqrt()?.affine(1.0, 1.0)?)?;
    }
    let c: Vec<f64> = (0..12).rev().map(|k| if k % 2 == 0 { 1.0 } else { -1.0 } / (2 * k + 1) as f64).collect();
    let r = (horner(&t.sqr()?, &c)? * t)?.affine(4.0, 0.0)?;
    let r = inv.where_cond(&r.affine(-1.0, PI / 2.0)?, &r)?;
    let y = (r * x.sign()?)?;
    keep_nan(x, &y)
}

/// `tan(x) = sin(x) / cos(x)`.
pub(super) fn tan(x: &Tensor) -> Result<Tensor> {
    Ok((x.sin()? / x.cos()?)?)
}

#[cfg(test)]
mod tests {
    use super::zeta_minus_1;
    use std::f64::consts::PI;

    #[test]
    #[allow(clippy::excessive_precision)]
    fn zeta_minus_1_matches_published_values() {
        // ζ(3) (Apéry's constant, OEIS A002117), ζ(4) = π⁴/90 (A013662), ζ(5) (A013663),
        // ζ(10) = π¹⁰/93555 (A013668), ζ(20) (A013678), to 20 digits.
        let want = [
            (3, 0.202_056_903_159_594_285_4),
            (4, 0.082_323_233_711_138_191_52),
            (5, 0.036_927_755_143_369_926_3),
            (10, 0.000_994_575_127_818_085_337),
            (20, 9.539_620_338_727_961e-7),
        ];
        for (k, z) in want {
            let got = zeta_minus_1(k);
            assert!((got - z).abs() <= 1e-15 * z, "ζ({k}) - 1: got {got:e}, want {z:e}");
        }
        assert!((zeta_minus_1(2) - (PI * PI / 6.0 - 1.0)).abs() < 1e-16);
    }
}
