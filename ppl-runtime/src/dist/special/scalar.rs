//! Scalar (`f64`) special functions behind the tensor versions in [`special`](super).
//!
//! Where `libm` or `statrs` has an accurate routine it is used; the rest (polygamma
//! asymptotics, `log_beta` for large arguments, `log_ndtr` tails, modified Bessel functions)
//! are written here from their series, with the references given per function.

use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

/// `0.5 * ln(2π)`.
pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// `log |Γ(x)|` (libm).
pub fn lgamma(x: f64) -> f64 {
    libm::lgamma_r(x).0
}

/// Digamma `ψ(x)` (statrs: recurrence, then asymptotic series; reflection for `x < 0`).
pub fn digamma(x: f64) -> f64 {
    statrs::function::gamma::digamma(x)
}

/// Trigamma `ψ₁(x)`: recurrence up to `x ≥ 12`, then the asymptotic series; reflection for `x ≤ 0`.
pub fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x <= 0.0 {
        if x == x.floor() {
            return f64::INFINITY;
        }
        let s = (PI * x).sin();
        return -trigamma(1.0 - x) + PI * PI / (s * s);
    }
    let mut acc = 0.0;
    let mut x = x;
    while x < 12.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    // ψ₁(x) ~ 1/x + 1/(2x²) + Σ B₂ₖ / x^(2k+1), Bernoulli numbers B₂ … B₁₂.
    let z = 1.0 / (x * x);
    let series = z / x
        * (1.0 / 6.0 - z * (1.0 / 30.0 - z * (1.0 / 42.0 - z * (1.0 / 30.0 - z * (5.0 / 66.0 - z * 691.0 / 2730.0)))));
    acc + 1.0 / x + z / 2.0 + series
}

/// Tetragamma `ψ₂(x)`: recurrence up to `x ≥ 12`, then the asymptotic series; reflection
/// `ψ₂(x) = ψ₂(1 - x) - 2π³ cot(πx) / sin²(πx)` for `x ≤ 0` (NaN at the poles).
pub fn tetragamma(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x <= 0.0 {
        if x == x.floor() {
            return f64::NAN;
        }
        let (s, c) = (PI * x).sin_cos();
        return tetragamma(1.0 - x) - 2.0 * PI.powi(3) * c / (s * s * s);
    }
    let mut acc = 0.0;
    let mut x = x;
    while x < 12.0 {
        acc -= 2.0 / (x * x * x);
        x += 1.0;
    }
    // ψ₂(x) ~ -1/x² - 1/x³ - Σ (2k+1) B₂ₖ / x^(2k+2).
    let z = 1.0 / (x * x);
    let series =
        z * z * (-0.5 + z * (1.0 / 6.0 + z * (-1.0 / 6.0 + z * (0.3 + z * (-5.0 / 6.0 + z * 691.0 / 210.0)))));
    acc - z - z / x + series
}

/// `lgamma(x) - ((x - ½) ln x - x + ½ ln 2π)` for `x ≥ 10`: the Stirling series to `x⁻¹³`
/// (error below 1e-17 there).
fn lgamma_stirling_correction(x: f64) -> f64 {
    let z = 1.0 / (x * x);
    (1.0 / 12.0
        - z * (1.0 / 360.0
            - z * (1.0 / 1260.0 - z * (1.0 / 1680.0 - z * (1.0 / 1188.0 - z * (691.0 / 360_360.0 - z / 156.0))))))
        / x
}

/// `log |B(a, b)| = lgamma(a) + lgamma(b) - lgamma(a + b)`, without the cancellation of that
/// formula for large arguments (as R's `lbeta`: Stirling corrections once an argument is ≥ 10).
pub fn log_beta(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    let (p, q) = if a < b { (a, b) } else { (b, a) };
    if p <= 0.0 || q.is_infinite() {
        // Negative arguments (|B| through the sign of Γ) or infinities: the plain formula.
        return lgamma(p) + lgamma(q) - lgamma(p + q);
    }
    if p >= 10.0 {
        let corr = lgamma_stirling_correction(p) + lgamma_stirling_correction(q) - lgamma_stirling_correction(p + q);
        -0.5 * q.ln() + LN_SQRT_2PI + corr + (p - 0.5) * (p / (p + q)).ln() + q * (-p / (p + q)).ln_1p()
    } else if q >= 10.0 {
        let corr = lgamma_stirling_correction(q) - lgamma_stirling_correction(p + q);
        lgamma(p) + corr + p - p * (p + q).ln() + (q - 0.5) * (-p / (p + q)).ln_1p()
    } else {
        lgamma(p) + lgamma(q) - lgamma(p + q)
    }
}

/// `log(1 + exp(x))` without overflow.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The error function (libm).
pub fn erf(x: f64) -> f64 {
    libm::erf(x)
}

/// `1 - erf(x)`, accurate in the right tail (libm).
pub fn erfc(x: f64) -> f64 {
    libm::erfc(x)
}

/// The inverse error function on `(-1, 1)` (statrs, from Boost).
pub fn erfinv(y: f64) -> f64 {
    if y.is_nan() || !(-1.0..=1.0).contains(&y) {
        return f64::NAN;
    }
    statrs::function::erf::erf_inv(y)
}

/// The standard normal cdf `Φ(x) = ½ erfc(-x/√2)`, accurate in the left tail.
pub fn ndtr(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// `log Φ(x)`: `log1p(-Φ(-x))` for `x > 0`, `ln Φ(x)` in the middle and the asymptotic
/// series `-x²/2 - ln(-x) - ½ln 2π + ln(1 - 1/x² + 3/x⁴ - …)` below `x = -20`.
pub fn log_ndtr(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x > 0.0 {
        (-ndtr(-x)).ln_1p()
    } else if x > -20.0 {
        ndtr(x).ln()
    } else if x == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else {
        let z = 1.0 / (x * x);
        let (mut term, mut sum) = (1.0, 1.0);
        for k in 1..=12 {
            term *= -((2 * k - 1) as f64) * z;
            sum += term;
        }
        -0.5 * x * x - (-x).ln() - LN_SQRT_2PI + sum.ln()
    }
}

/// The standard normal quantile `Φ⁻¹(p)` (statrs' `erfc_inv`, from Boost, on the nearer
/// tail; then one Newton step on `Φ`, which keeps full relative accuracy in both tails).
pub fn ndtri(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let x = if p > 0.5 {
        SQRT_2 * statrs::function::erf::erfc_inv(2.0 * (1.0 - p))
    } else {
        -SQRT_2 * statrs::function::erf::erfc_inv(2.0 * p)
    };
    // Newton on the nearer tail probability, in relative terms: δ = (Φ(x) - p) / φ(x).
    let (tail, target, sign) = if p > 0.5 { (ndtr(-x), 1.0 - p, -1.0) } else { (ndtr(x), p, 1.0) };
    let pdf = (-0.5 * x * x - LN_SQRT_2PI).exp();
    if pdf > 0.0 && tail.is_finite() {
        let step = sign * (tail - target) / pdf;
        if step.is_finite() && step.abs() < 1e-3 * (1.0 + x.abs()) {
            return x - step;
        }
    }
    x
}

/// `e^{-|x|} I_ν(x)` for ν ∈ {0, 1}: the power series for `|x| ≤ 20` (positive terms, no
/// cancellation), Hankel's asymptotic expansion beyond (its smallest term is below e^{-2|x|}).
/// Reference: Abramowitz & Stegun 9.6.10 and 9.7.1.
fn bessel_ie(nu: u32, x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let ax = x.abs();
    let sign = if nu == 1 && x < 0.0 { -1.0 } else { 1.0 };
    if ax.is_infinite() {
        return 0.0;
    }
    let v = if ax <= 20.0 {
        let q = 0.25 * ax * ax;
        let mut term = if nu == 0 { 1.0 } else { 0.5 * ax };
        let mut sum = term;
        for k in 1..500 {
            let k = k as f64;
            term *= q / (k * (k + nu as f64));
            sum += term;
            if term < 1e-17 * sum {
                break;
            }
        }
        sum * (-ax).exp()
    } else {
        let mu = 4.0 * (nu * nu) as f64;
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..200 {
            let odd = (2 * k - 1) as f64;
            let next = -term * (mu - odd * odd) / (k as f64 * 8.0 * ax);
            if next.abs() >= term.abs() {
                break;
            }
            term = next;
            sum += term;
            if term.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum / (2.0 * PI * ax).sqrt()
    };
    sign * v
}

/// `e^{-|x|} I₀(x)`, the exponentially scaled modified Bessel function of order 0.
pub fn i0e(x: f64) -> f64 {
    bessel_ie(0, x)
}

/// `e^{-|x|} I₁(x)`, the exponentially scaled modified Bessel function of order 1.
pub fn i1e(x: f64) -> f64 {
    bessel_ie(1, x)
}

/// `d/dx i1e(x) = i0e(x) - i1e(x) (sign(x) + 1/x)`, with its limit ½ at `x = 0`.
pub fn i1e_grad(x: f64) -> f64 {
    if x == 0.0 {
        return 0.5;
    }
    i0e(x) - i1e(x) * (x.signum() + 1.0 / x)
}

/// The regularized lower incomplete gamma function `P(a, x)` (statrs); NaN outside `a > 0, x ≥ 0`.
pub fn gammainc(a: f64, x: f64) -> f64 {
    if a > 0.0 && x == f64::INFINITY {
        return 1.0;
    }
    if a > 0.0 && x == 0.0 {
        return 0.0;
    }
    statrs::function::gamma::checked_gamma_lr(a, x).unwrap_or(f64::NAN)
}

/// The regularized upper incomplete gamma function `Q(a, x) = 1 - P(a, x)` (statrs).
pub fn gammaincc(a: f64, x: f64) -> f64 {
    if a > 0.0 && x == f64::INFINITY {
        return 0.0;
    }
    if a > 0.0 && x == 0.0 {
        return 1.0;
    }
    statrs::function::gamma::checked_gamma_ur(a, x).unwrap_or(f64::NAN)
}

/// The regularized incomplete beta function `I_x(a, b)` (statrs); NaN outside `a, b > 0, 0 ≤ x ≤ 1`.
pub fn betainc(a: f64, b: f64, x: f64) -> f64 {
    statrs::function::beta::checked_beta_reg(a, b, x).unwrap_or(f64::NAN)
}
