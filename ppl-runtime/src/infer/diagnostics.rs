//! MCMC convergence diagnostics, as Stan and ArviZ compute them: rank-normalized split R-hat,
//! bulk and tail effective sample sizes (Geyer's initial monotone sequence over FFT
//! autocovariances), autocorrelation and the Monte Carlo standard error of the mean.
//!
//! Every function takes the draws of one scalar quantity as one slice per chain (all chains of
//! equal length).
//!
//! ```
//! use ppl_runtime::infer::{ess_bulk, split_rhat};
//! // Two chains of independent-looking draws: R-hat near 1, ESS near the number of draws.
//! let a: Vec<f64> = (0..500).map(|i| ((i * 7919) % 1000) as f64).collect();
//! let b: Vec<f64> = (0..500).map(|i| ((i * 104729 + 13) % 1000) as f64).collect();
//! let chains = [a, b];
//! assert!((split_rhat(&chains) - 1.0).abs() < 0.02);
//! assert!(ess_bulk(&chains) > 500.0);
//! ```
//!
//! References: Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021), *Rank-normalization,
//! folding, and localization: an improved R-hat for assessing convergence of MCMC*, Bayesian
//! Analysis 16(2); Geyer (1992), *Practical Markov chain Monte Carlo*, Statistical Science 7(4);
//! ArviZ `arviz/stats/diagnostics.py`.

/// Autocovariance at lags `0..n` of one chain (divided by `n`, as ArviZ and Stan do), by FFT.
pub fn autocovariance(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let m = (2 * n).next_power_of_two();
    let mut re: Vec<f64> = x.iter().map(|v| v - mean).chain(std::iter::repeat_n(0.0, m - n)).collect();
    let mut im = vec![0.0; m];
    fft(&mut re, &mut im, false);
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        *r = *r * *r + *i * *i;
        *i = 0.0;
    }
    fft(&mut re, &mut im, true);
    re.truncate(n);
    let scale = 1.0 / (m as f64 * n as f64);
    re.iter_mut().for_each(|v| *v *= scale);
    re
}

/// Autocorrelation at lags `0..n` of one chain (autocovariance over the lag-0 variance).
pub fn autocorrelation(x: &[f64]) -> Vec<f64> {
    let mut c = autocovariance(x);
    if let Some(&c0) = c.first()
        && c0 > 0.0
    {
        c.iter_mut().for_each(|v| *v /= c0);
    }
    c
}

/// In-place radix-2 complex FFT (`re.len()` a power of two); `inverse` leaves out the `1/n`.
fn fft(re: &mut [f64], im: &mut [f64], inverse: bool) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let ang = sign * 2.0 * std::f64::consts::PI / len as f64;
        let (wr, wi) = (ang.cos(), ang.sin());
        for start in (0..n).step_by(len) {
            let (mut cr, mut ci) = (1.0, 0.0);
            for k in 0..len / 2 {
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * cr - im[b] * ci;
                let ti = re[b] * ci + im[b] * cr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
                let ncr = cr * wr - ci * wi;
                ci = cr * wi + ci * wr;
                cr = ncr;
            }
        }
        len <<= 1;
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance with `ddof` degrees of freedom removed.
fn var(x: &[f64], ddof: f64) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - ddof)
}

/// Splits each chain into its first and last halves (dropping the middle draw of an odd length).
fn split<C: AsRef<[f64]>>(chains: &[C]) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(2 * chains.len());
    for c in chains {
        let c = c.as_ref();
        let half = c.len() / 2;
        out.push(c[..half].to_vec());
        out.push(c[c.len() - half..].to_vec());
    }
    out
}

/// Normal scores of the pooled ranks (average ranks for ties): `Φ⁻¹((r - 3/8) / (S + 1/4))`.
fn z_scale(chains: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let flat: Vec<f64> = chains.iter().flatten().copied().collect();
    let size = flat.len();
    let mut order: Vec<usize> = (0..size).collect();
    order.sort_by(|&a, &b| flat[a].total_cmp(&flat[b]));
    let mut rank = vec![0.0; size];
    let mut i = 0;
    while i < size {
        let mut j = i;
        while j + 1 < size && flat[order[j + 1]] == flat[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            rank[k] = avg;
        }
        i = j + 1;
    }
    let z: Vec<f64> = rank.iter().map(|r| normal_ppf((r - 0.375) / (size as f64 + 0.25))).collect();
    let mut out = Vec::with_capacity(chains.len());
    let mut off = 0;
    for c in chains {
        out.push(z[off..off + c.len()].to_vec());
        off += c.len();
    }
    out
}

/// The standard normal quantile function.
fn normal_ppf(p: f64) -> f64 {
    std::f64::consts::SQRT_2 * statrs::function::erf::erf_inv(2.0 * p - 1.0)
}

/// Whether the chains can be diagnosed: at least 4 draws each, equal lengths, all finite.
fn valid<C: AsRef<[f64]>>(chains: &[C], min_draws: usize) -> bool {
    let Some(first) = chains.first() else { return false };
    let n = first.as_ref().len();
    n >= min_draws && chains.iter().all(|c| c.as_ref().len() == n && c.as_ref().iter().all(|v| v.is_finite()))
}

/// The (non-split, non-ranked) effective sample size of the draws as given: Geyer's initial
/// monotone sequence over the multi-chain autocorrelation (Stan's and ArviZ's `_ess`). NaN for
/// fewer than 4 draws per chain or non-finite draws.
pub fn effective_sample_size<C: AsRef<[f64]>>(chains: &[C]) -> f64 {
    if !valid(chains, 4) {
        return f64::NAN;
    }
    let n_chain = chains.len();
    let n_draw = chains[0].as_ref().len();
    let total = (n_chain * n_draw) as f64;
    let (lo, hi) = chains
        .iter()
        .flat_map(|c| c.as_ref().iter())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if hi - lo < 1e-15 {
        return total;
    }
    let acov: Vec<Vec<f64>> = chains.iter().map(|c| autocovariance(c.as_ref())).collect();
    let nd = n_draw as f64;
    let mean_acov = |t: usize| acov.iter().map(|a| a[t]).sum::<f64>() / n_chain as f64;
    let chain_means: Vec<f64> = chains.iter().map(|c| mean(c.as_ref())).collect();
    let mean_var = mean_acov(0) * nd / (nd - 1.0);
    let mut var_plus = mean_var * (nd - 1.0) / nd;
    if n_chain > 1 {
        var_plus += var(&chain_means, 1.0);
    }
    let mut rho = vec![0.0; n_draw];
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = 1.0 - (mean_var - mean_acov(1)) / var_plus;
    rho[1] = rho_odd;
    // Geyer's initial positive sequence.
    let mut t = 1;
    while t < n_draw - 3 && rho_even + rho_odd > 0.0 {
        rho_even = 1.0 - (mean_var - mean_acov(t + 1)) / var_plus;
        rho_odd = 1.0 - (mean_var - mean_acov(t + 2)) / var_plus;
        if rho_even + rho_odd >= 0.0 {
            rho[t + 1] = rho_even;
            rho[t + 2] = rho_odd;
        }
        t += 2;
    }
    let max_t = t - 2;
    if rho_even > 0.0 {
        rho[max_t + 1] = rho_even;
    }
    // Geyer's initial monotone sequence.
    let mut t = 1;
    while t + 2 <= max_t {
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t] {
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0;
            rho[t + 2] = rho[t + 1];
        }
        t += 2;
    }
    let tau =
        -1.0 + 2.0 * rho[..=max_t].iter().sum::<f64>() + rho[max_t + 1..(max_t + 2).min(n_draw)].iter().sum::<f64>();
    let tau = tau.max(1.0 / total.log10());
    if rho.iter().any(|r| r.is_nan()) { f64::NAN } else { total / tau }
}

/// Bulk effective sample size: the ESS of the rank-normalized split chains (Vehtari et al.
/// 2021; ArviZ `ess(method="bulk")`).
pub fn ess_bulk<C: AsRef<[f64]>>(chains: &[C]) -> f64 {
    if !valid(chains, 4) {
        return f64::NAN;
    }
    effective_sample_size(&z_scale(&split(chains)))
}

/// Tail effective sample size: the smaller ESS of the indicators of the 5% and 95% quantiles
/// over the split chains (ArviZ `ess(method="tail")`).
pub fn ess_tail<C: AsRef<[f64]>>(chains: &[C]) -> f64 {
    if !valid(chains, 4) {
        return f64::NAN;
    }
    let flat: Vec<f64> = chains.iter().flat_map(|c| c.as_ref().iter().copied()).collect();
    let q = quantiles(&flat, &[0.05, 0.95]);
    let ind = |cut: f64| -> Vec<Vec<f64>> {
        chains.iter().map(|c| c.as_ref().iter().map(|&v| if v <= cut { 1.0 } else { 0.0 }).collect()).collect()
    };
    let lo = effective_sample_size(&split(&ind(q[0])));
    let hi = effective_sample_size(&split(&ind(q[1])));
    lo.min(hi)
}

/// ESS for the mean: the ESS of the split (not ranked) chains (ArviZ `ess(method="mean")`).
pub fn ess_mean<C: AsRef<[f64]>>(chains: &[C]) -> f64 {
    if !valid(chains, 4) {
        return f64::NAN;
    }
    effective_sample_size(&split(chains))
}

/// Monte Carlo standard error of the mean: `sd / sqrt(ess_mean)` (ArviZ `mcse(method="mean")`).
pub fn mcse_mean<C: AsRef<[f64]>>(chains: &[C]) -> f64 {
    let flat: Vec<f64> = chains.iter().flat_map(|c| c.as_ref().iter().copied()).collect();
    if flat.len() < 2 {
        return f64::NAN;
    }
    var(&flat, 1.0).sqrt() / ess_mean(chains).sqrt()
}

/// Classic (Gelman–Rubin) R-hat of the chains as given.
fn rhat_basic(chains: &[Vec<f64>]) -> f64 {
    let n = chains[0].len() as f64;
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let between = n * var(&means, 1.0);
    let within = chains.iter().map(|c| var(c, 1.0)).sum::<f64>() / chains.len() as f64;
    ((between / within + n - 1.0) / n).sqrt()
}

/// Rank-normalized split R-hat: the larger of the bulk R-hat (ranks of the split chains) and the
/// tail R-hat (ranks of the split chains folded around their median), as Stan ≥ 2.26 and ArviZ
/// `rhat(method="rank")` compute it. NaN for fewer than 4 draws per chain.
pub fn split_rhat<C: AsRef<[f64]>>(chains: &[C]) -> f64 {
    if !valid(chains, 4) {
        return f64::NAN;
    }
    let s = split(chains);
    let bulk = rhat_basic(&z_scale(&s));
    let flat: Vec<f64> = s.iter().flatten().copied().collect();
    let med = quantiles(&flat, &[0.5])[0];
    let folded: Vec<Vec<f64>> = s.iter().map(|c| c.iter().map(|v| (v - med).abs()).collect()).collect();
    let tail = rhat_basic(&z_scale(&folded));
    bulk.max(tail)
}

/// Quantiles with linear interpolation between order statistics (numpy's default).
pub fn quantiles(x: &[f64], probs: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    probs
        .iter()
        .map(|&p| {
            if n == 0 {
                return f64::NAN;
            }
            let h = (n - 1) as f64 * p;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            v[lo] + (h - lo as f64) * (v[hi] - v[lo])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_autocovariance_equals_the_direct_sum() {
        let x: Vec<f64> = (0..37).map(|i| ((i * i * 31 + 7) % 17) as f64 * 0.3 - 1.0).collect();
        let n = x.len();
        let m = mean(&x);
        let got = autocovariance(&x);
        for k in 0..n {
            let direct: f64 = (0..n - k).map(|t| (x[t] - m) * (x[t + k] - m)).sum::<f64>() / n as f64;
            assert!((got[k] - direct).abs() < 1e-12, "lag {k}: {} vs {direct}", got[k]);
        }
    }

    #[test]
    fn normal_ppf_matches_known_quantiles() {
        // scipy.stats.norm.ppf(0.975) = 1.959963984540054; norm.ppf(0.01) = -2.3263478740408408
        assert!((normal_ppf(0.975) - 1.959963984540054).abs() < 1e-12);
        assert!((normal_ppf(0.01) + 2.3263478740408408).abs() < 1e-12);
    }
}
