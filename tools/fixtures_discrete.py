#!/usr/bin/env python3
"""Reference values for the discrete distributions of ppl (scipy 1.17 / numpy), plus
MixtureSameFamily and ZeroInflatedPoisson built by hand from scipy densities.

Writes ppl-runtime/src/dist/tests/fixtures/discrete.json, loaded by
ppl-runtime/src/dist/tests/discrete.rs. Run from the repository root:

    python3 tools/fixtures_discrete.py

Each case names the distribution and its constructor (`probs` or `logits` form), gives the
parameters (arrays of broadcastable shapes), points `x` of shape [n_points, *batch, *event]
(including support edges such as 0 and total_count), and scipy's log_prob there; where ppl
implements them also mean, variance, entropy, cdf (at `cdf_x`) and the 4th central moment
`mu4` (by direct summation over the support, or by quadrature) used for sample-variance tests.
`f32` says whether the case is also checked in f32 (not for probabilities within 1e-6 of 0 or
1, which f32 cannot represent to the needed accuracy). Non-finite numbers are written as the
strings "nan", "inf", "-inf" (JSON has no NaN).
"""
import itertools
import json
import math
import os

import mpmath
import numpy as np
from scipy import integrate, special, stats


def enc(a):
    a = np.asarray(a, dtype=np.float64)
    out = []
    for v in a.reshape(-1):
        if math.isnan(v):
            out.append("nan")
        elif math.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(float(v))
    return {"shape": list(a.shape), "data": out}


def arr(x):
    return np.asarray(x, dtype=np.float64)


def case(dist, ctor, params, x, log_prob, *, batch, f32=True, **extra):
    c = {"dist": dist, "ctor": ctor, "f32": f32, "params": {k: enc(v) for k, v in params.items()},
         "x": enc(x), "log_prob": enc(log_prob)}
    for k, v in extra.items():
        if v is not None:
            stat = k in ("mean", "variance", "mu4") or (k == "entropy" and np.ndim(v) == 0)
            c[k] = enc(np.broadcast_to(v, batch) if stat and np.ndim(v) <= len(batch) else v)
    return c


def central4_pmf(pmf, mean, support):
    """4th central moment by direct summation of a pmf over a finite support grid."""
    k = support.reshape((-1,) + (1,) * np.ndim(mean))
    return np.sum(pmf(k) * (k - mean) ** 4, axis=0)


def checked_entropy(frozen, kmax):
    """scipy's entropy, checked against direct summation of -p log p over 0..kmax (to 1e-8: numpy's
    logpmf loses ~1e-9 at n = 250000, where mpmath confirms scipy's 4.17883573956915)."""
    h = np.asarray(frozen.entropy(), dtype=np.float64)
    k = np.arange(0, kmax + 1.0).reshape((-1,) + (1,) * h.ndim)
    lp = frozen.logpmf(k)
    with np.errstate(invalid="ignore"):
        direct = -np.sum(np.where(np.isfinite(lp), np.exp(lp) * lp, 0.0), axis=0)
    assert np.allclose(h, direct, rtol=1e-8, atol=1e-10), (h, direct)
    return h


def checked_multinomial_entropy(n, probs):
    """scipy's multinomial entropy, checked against summation over all count vectors (small n)
    or against its formula with direct binomial sums (large n)."""
    h = np.asarray(stats.multinomial.entropy(n, probs), dtype=np.float64)
    rows = probs.reshape(-1, probs.shape[-1])
    want = []
    for row in rows:
        if n <= 10:
            tot = 0.0
            for c in itertools.product(range(n + 1), repeat=len(row)):
                if sum(c) == n:
                    lp = stats.multinomial.logpmf(c, n, row)
                    if np.isfinite(lp):
                        tot -= np.exp(lp) * lp
            want.append(tot)
        else:
            k = np.arange(1, n + 1.0)
            t = n * np.sum(special.entr(row)) - special.gammaln(n + 1)
            t += sum(np.sum(stats.binom.pmf(k, n, pi) * special.gammaln(k + 1)) for pi in row)
            want.append(t)
    assert np.allclose(h.reshape(-1), want, rtol=1e-10, atol=1e-10), (h, want)
    return h


cases = []

# ---------------------------------------------------------------- Bernoulli
p = arr([0.1, 0.5, 0.9, 1e-6, 1 - 1e-6])
x = np.broadcast_to(arr([0, 1]).reshape(2, 1), (2, 5))
cdf_x = np.broadcast_to(arr([-1, 0, 0.5, 1, 2.5]).reshape(5, 1), (5, 5))
cases.append(case("Bernoulli", "probs", {"probs": p}, x, stats.bernoulli.logpmf(x, p), batch=(5,), f32=False,
                  mean=stats.bernoulli.mean(p), variance=stats.bernoulli.var(p), entropy=stats.bernoulli.entropy(p),
                  cdf_x=cdf_x, cdf=stats.bernoulli.cdf(cdf_x, p)))
lg = arr([[-3.0, 0.0], [1.5, 12.0]])
pl = special.expit(lg)
x = np.broadcast_to(arr([0, 1]).reshape(2, 1, 1), (2, 2, 2))
cdf_x = np.broadcast_to(arr([-0.5, 0, 0.99, 1]).reshape(4, 1, 1), (4, 2, 2))
cases.append(case("Bernoulli", "logits", {"logits": lg}, x, stats.bernoulli.logpmf(x, pl), batch=(2, 2),
                  mean=pl, variance=pl * (1 - pl), entropy=stats.bernoulli.entropy(pl),
                  cdf_x=cdf_x, cdf=stats.bernoulli.cdf(cdf_x, pl)))

# ---------------------------------------------------------------- Binomial
n = arr([0, 1, 5, 20])
p = arr([[0.3], [0.05], [0.97]])
N, P = np.broadcast_arrays(n, p)
x = np.stack([np.zeros_like(N), N, np.floor(N / 2), np.minimum(1, N), np.maximum(N - 1, 0)])
mean, var = stats.binom.mean(N, P), stats.binom.var(N, P)
mu4 = central4_pmf(lambda k: stats.binom.pmf(k, N, P), mean, np.arange(0, 21.0))
cdf_x = np.stack([np.full_like(N, -1.0), np.zeros_like(N), N / 2 + 0.3, N - 1, N, N + 2.5])
cases.append(case("Binomial", "probs", {"total_count": n, "probs": p}, x, stats.binom.logpmf(x, N, P), batch=(3, 4),
                  mean=mean, variance=var, mu4=mu4, entropy=checked_entropy(stats.binom(N, P), 20),
                  cdf_x=cdf_x, cdf=stats.binom.cdf(cdf_x, N, P)))
p = arr([1e-6, 1 - 1e-6, 0.5])
x = np.broadcast_to(arr([0, 1, 7, 8]).reshape(4, 1), (4, 3))
cdf_x = np.broadcast_to(arr([0, 3.5, 7, 8]).reshape(4, 1), (4, 3))
cases.append(case("Binomial", "probs", {"total_count": arr(8), "probs": p}, x, stats.binom.logpmf(x, 8, p),
                  batch=(3,), f32=False, mean=8 * p, variance=8 * p * (1 - p),
                  entropy=checked_entropy(stats.binom(8, p), 8), cdf_x=cdf_x, cdf=stats.binom.cdf(cdf_x, 8, p)))
# Large counts: the entropy sums over a wide support.
n = arr([1000.0, 250000.0])
p = arr([0.3, 0.999])
x = np.broadcast_to(arr([0, 280]).reshape(2, 1), (2, 2))
cdf_x = np.stack([n * p - 10, n * p, n * p + 40])
cases.append(case("Binomial", "probs", {"total_count": n, "probs": p}, x, stats.binom.logpmf(x, n, p), batch=(2,),
                  f32=False, entropy=checked_entropy(stats.binom(n, p), 250000), cdf_x=cdf_x,
                  cdf=stats.binom.cdf(cdf_x, n, p)))
lg = arr([-3.0, 0.0, 2.5])
pl = special.expit(lg)
x = np.broadcast_to(arr([0, 3, 10]).reshape(3, 1), (3, 3))
cdf_x = np.broadcast_to(arr([-2, 2.5, 9]).reshape(3, 1), (3, 3))
cases.append(case("Binomial", "logits", {"total_count": arr(10), "logits": lg}, x, stats.binom.logpmf(x, 10, pl),
                  batch=(3,), mean=10 * pl, variance=10 * pl * (1 - pl), entropy=checked_entropy(stats.binom(10, pl), 10),
                  cdf_x=cdf_x, cdf=stats.binom.cdf(cdf_x, 10, pl)))

# ---------------------------------------------------------------- Categorical / OneHotCategorical
probs = arr([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.25, 0.25]])
idx = np.stack([np.full(2, j) for j in range(4)]).astype(np.float64)  # [4, 2]
with np.errstate(divide="ignore"):
    lp = np.log(np.take_along_axis(probs, idx.T.astype(int), axis=-1).T)  # [4, 2]
ent = stats.entropy(probs, axis=-1)
cases.append(case("Categorical", "probs", {"probs": probs}, idx, lp, batch=(2,), entropy=ent))
onehot = np.eye(4)[idx.astype(int)]  # [4, 2, 4]
cases.append(case("OneHotCategorical", "probs", {"probs": probs}, onehot, lp, batch=(2,),
                  mean=probs, variance=probs * (1 - probs), entropy=ent))
lg = arr([[1.0, -2.0, 0.5], [0.0, -np.inf, 2.0]])
pl = special.softmax(lg, axis=-1)
idx = np.stack([np.full(2, j) for j in range(3)]).astype(np.float64)
with np.errstate(divide="ignore"):
    lp = np.log(np.take_along_axis(pl, idx.T.astype(int), axis=-1).T)
ent = stats.entropy(pl, axis=-1)
cases.append(case("Categorical", "logits", {"logits": lg}, idx, lp, batch=(2,), entropy=ent))
cases.append(case("OneHotCategorical", "logits", {"logits": lg}, np.eye(3)[idx.astype(int)], lp, batch=(2,),
                  mean=pl, variance=pl * (1 - pl), entropy=ent))

# ---------------------------------------------------------------- Poisson
rate = arr([0.0, 0.5, 3.0, 50.0])
x = np.broadcast_to(arr([0, 1, 2, 10, 60]).reshape(5, 1), (5, 4))
cdf_x = np.broadcast_to(arr([-1, 0, 2.5, 10, 60]).reshape(5, 1), (5, 4))
mu4 = central4_pmf(lambda k: stats.poisson.pmf(k, rate), rate, np.arange(0, 200.0))
cases.append(case("Poisson", "rate", {"rate": rate}, x, stats.poisson.logpmf(x, rate), batch=(4,),
                  mean=rate, variance=rate, mu4=mu4, cdf_x=cdf_x, cdf=stats.poisson.cdf(cdf_x, rate),
                  entropy=checked_entropy(stats.poisson(rate), 400)))
# scipy 1.17's Poisson entropy is wrong for large rates ("sum did not converge": 6.0216 at rate
# 1e4, against 6.0241), so those use the asymptotic series H = ½ log(2πeλ) - 1/(12λ) - 1/(24λ²)
# - 19/(360λ³) + O(λ⁻⁴), checked here against a 30-digit mpmath summation at λ = 1000 (1e-12).


def poisson_entropy_series(lam):
    return 0.5 * np.log(2 * np.pi * np.e * lam) - 1 / (12 * lam) - 1 / (24 * lam**2) - 19 / (360 * lam**3)


mpmath.mp.dps = 30
_direct = -mpmath.fsum(mpmath.exp(lp) * lp for lp in (k * mpmath.log(1000) - 1000 - mpmath.loggamma(k + 1)
                                                         for k in range(0, 1400)))
assert abs(poisson_entropy_series(1000.0) - float(_direct)) < 1e-12
rate = arr([1e-6, 1e4, 3e6])
x = np.broadcast_to(arr([0, 10000]).reshape(2, 1), (2, 3))
ent = np.array([float(checked_entropy(stats.poisson(1e-6), 20)), poisson_entropy_series(1e4), poisson_entropy_series(3e6)])
cases.append(case("Poisson", "rate", {"rate": rate}, x, stats.poisson.logpmf(x, rate), batch=(3,), f32=False,
                  entropy=ent))

# ---------------------------------------------------------------- Geometric (failures before first success)
p = arr([0.01, 0.3, 0.9, 1 - 1e-6])
x = np.broadcast_to(arr([0, 1, 5, 300]).reshape(4, 1), (4, 4))
cdf_x = np.broadcast_to(arr([-1, 0, 2.5, 40]).reshape(4, 1), (4, 4))
g = stats.geom(p, loc=-1)
mu4 = central4_pmf(g.pmf, g.mean(), np.arange(0, 6000.0))
cases.append(case("Geometric", "probs", {"probs": p}, x, g.logpmf(x), batch=(4,), f32=False,
                  mean=g.mean(), variance=g.var(), entropy=g.entropy(), mu4=mu4, cdf_x=cdf_x, cdf=g.cdf(cdf_x)))
lg = arr([[-2.0], [0.5]])
g = stats.geom(special.expit(lg), loc=-1)
x = np.broadcast_to(arr([0, 3, 17]).reshape(3, 1, 1), (3, 2, 1))
cases.append(case("Geometric", "logits", {"logits": lg}, x, g.logpmf(x), batch=(2, 1),
                  mean=g.mean(), variance=g.var(), entropy=g.entropy(), cdf_x=x, cdf=g.cdf(x)))

# ---------------------------------------------------------------- NegativeBinomial (torch: successes before r failures)
r = arr([0.5, 3.0, 10.5])
p = arr([[0.2], [0.7], [1e-6]])
R, P = np.broadcast_arrays(r, p)
nb = stats.nbinom(R, 1 - P)
x = np.broadcast_to(arr([0, 1, 5, 30]).reshape(4, 1, 1), (4, 3, 3))
mu4 = central4_pmf(nb.pmf, nb.mean(), np.arange(0, 3000.0))
cdf_x = np.broadcast_to(arr([-1, 0, 2.5, 30]).reshape(4, 1, 1), (4, 3, 3))
cases.append(case("NegativeBinomial", "probs", {"total_count": r, "probs": p}, x, nb.logpmf(x), batch=(3, 3),
                  f32=False, mean=nb.mean(), variance=nb.var(), mu4=mu4, entropy=checked_entropy(nb, 3000),
                  cdf_x=cdf_x, cdf=nb.cdf(cdf_x)))
# Heavy tails: small total_count, probs near 1.
r = arr([0.05, 0.7, 40.0])
p = arr([0.999, 0.99, 0.9])
nb = stats.nbinom(r, 1 - p)
x = np.broadcast_to(arr([0, 7, 500]).reshape(3, 1), (3, 3))
# scipy 1.17's generic entropy does not converge on these tails either (2.0335 for the first,
# against 2.1669): the reference is a 20-digit mpmath summation to k = 120000 (p^k < e^-120).


def nb_entropy_mp(r, p, kmax):
    mpmath.mp.dps = 20
    r, p = mpmath.mpf(r), mpmath.mpf(p)
    c = r * mpmath.log(1 - p) - mpmath.loggamma(r)
    lp = (mpmath.loggamma(k + r) - mpmath.loggamma(k + 1) + k * mpmath.log(p) + c for k in range(kmax + 1))
    return float(-mpmath.fsum(mpmath.exp(v) * v for v in lp))


ent = np.array([nb_entropy_mp(ri, pi, 120000) for ri, pi in zip(r, p)])
cases.append(case("NegativeBinomial", "probs", {"total_count": r, "probs": p}, x, nb.logpmf(x), batch=(3,), f32=False,
                  entropy=ent, cdf_x=x, cdf=nb.cdf(x)))
lg = arr([-1.0, 0.0, 1.5])
nb = stats.nbinom(2.5, 1 - special.expit(lg))
x = np.broadcast_to(arr([0, 2, 9]).reshape(3, 1), (3, 3))
mu4 = central4_pmf(nb.pmf, nb.mean(), np.arange(0, 3000.0))
cases.append(case("NegativeBinomial", "logits", {"total_count": arr(2.5), "logits": lg}, x, nb.logpmf(x), batch=(3,),
                  mean=nb.mean(), variance=nb.var(), mu4=mu4, entropy=checked_entropy(nb, 3000), cdf_x=x + 0.5,
                  cdf=nb.cdf(x + 0.5)))

# ---------------------------------------------------------------- Multinomial
probs = arr([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]])
ev = arr([[6, 0, 0], [0, 6, 0], [0, 0, 6], [1, 2, 3], [2, 2, 2]])
x = np.broadcast_to(ev[:, None, :], (5, 2, 3))
with np.errstate(divide="ignore"):
    lp = np.array([[stats.multinomial.logpmf(x[i, b], 6, probs[b]) for b in range(2)] for i in range(5)])
mu4 = central4_pmf(lambda k: stats.binom.pmf(k, 6, probs), 6 * probs, np.arange(0, 7.0))
cases.append(case("Multinomial", "probs", {"total_count": arr(6), "probs": probs}, x, lp, batch=(2, 3),
                  mean=6 * probs, variance=6 * probs * (1 - probs), mu4=mu4,
                  entropy=checked_multinomial_entropy(6, probs)))
lg = arr([[0.3, -1.0, 2.0, 0.0]])
pl = special.softmax(lg, axis=-1)
ev = arr([[4, 0, 0, 0], [0, 0, 0, 4], [1, 1, 1, 1], [0, 1, 3, 0]])
x = ev[:, None, :]
lp = np.array([[stats.multinomial.logpmf(x[i, 0], 4, pl[0])] for i in range(4)])
cases.append(case("Multinomial", "logits", {"total_count": arr(4), "logits": lg}, x, lp, batch=(1, 4),
                  mean=4 * pl, variance=4 * pl * (1 - pl), entropy=checked_multinomial_entropy(4, pl)))
probs = arr([[0.2, 0.3, 0.5]])
x = arr([[[300, 300, 400]]])
cases.append(case("Multinomial", "probs", {"total_count": arr(1000), "probs": probs}, x,
                  arr([[stats.multinomial.logpmf(x[0, 0], 1000, probs[0])]]), batch=(1, 3), f32=False,
                  entropy=checked_multinomial_entropy(1000, probs)))

# ---------------------------------------------------------------- ZeroInflatedPoisson (hand mixture of scipy pmfs)
gate = arr([0.0, 0.3, 1.0])
rate = arr([[0.5], [4.0]])
G, Rt = np.broadcast_arrays(gate, rate)
x = np.broadcast_to(arr([0, 1, 3, 12]).reshape(4, 1, 1), (4, 2, 3))


def zip_pmf(k):
    return np.where(k == 0, G + (1 - G) * stats.poisson.pmf(0, Rt), (1 - G) * stats.poisson.pmf(k, Rt))


with np.errstate(divide="ignore"):
    lp = np.log(zip_pmf(x))
ks = np.arange(0, 200.0).reshape(-1, 1, 1)
mean = np.sum(ks * zip_pmf(ks), axis=0)
var = np.sum((ks - mean) ** 2 * zip_pmf(ks), axis=0)
mu4 = np.sum((ks - mean) ** 4 * zip_pmf(ks), axis=0)
cases.append(case("ZeroInflatedPoisson", "gate", {"gate": gate, "rate": rate}, x, lp, batch=(2, 3),
                  mean=mean, variance=var, mu4=mu4))

# ---------------------------------------------------------------- MixtureSameFamily (hand mixtures)
# Normal components: mixing probs [B, K], component loc/scale [B, K].
w = arr([[0.3, 0.7], [0.5, 0.5]])
loc = arr([[-1.0, 2.0], [0.0, 0.5]])
scale = arr([[0.5, 1.5], [1.0, 2.0]])
x = np.broadcast_to(arr([-3.0, -1.0, 0.0, 1.7, 6.0, 40.0]).reshape(6, 1), (6, 2))
lp = special.logsumexp(np.log(w)[None] + stats.norm.logpdf(x[..., None], loc[None], scale[None]), axis=-1)
moments = []
for b in range(2):
    pdf = lambda t: np.sum(w[b] * stats.norm.pdf(t, loc[b], scale[b]))
    m = integrate.quad(lambda t: t * pdf(t), -np.inf, np.inf, epsabs=1e-13)[0]
    v = integrate.quad(lambda t: (t - m) ** 2 * pdf(t), -np.inf, np.inf, epsabs=1e-13)[0]
    m4 = integrate.quad(lambda t: (t - m) ** 4 * pdf(t), -np.inf, np.inf, epsabs=1e-12)[0]
    moments.append((m, v, m4))
moments = arr(moments)
cases.append(case("MixtureSameFamily", "normal", {"mixing_probs": w, "loc": loc, "scale": scale}, x, lp, batch=(2,),
                  mean=moments[:, 0], variance=moments[:, 1], mu4=moments[:, 2]))
# Poisson components, including a batch row whose components both have rate 0 (all -inf at x > 0).
w = arr([[0.4, 0.6], [0.5, 0.5]])
rate = arr([[1.0, 10.0], [0.0, 0.0]])
x = np.broadcast_to(arr([0, 1, 4, 10, 25]).reshape(5, 1), (5, 2))
with np.errstate(divide="ignore"):
    lp = special.logsumexp(np.log(w)[None] + stats.poisson.logpmf(x[..., None], rate[None]), axis=-1)
ks = np.arange(0, 200.0).reshape(-1, 1)
pmf = np.sum(w[None] * stats.poisson.pmf(ks[..., None], rate[None]), axis=-1)  # [200, 2]
mean = np.sum(ks * pmf, axis=0)
var = np.sum((ks - mean) ** 2 * pmf, axis=0)
mu4 = np.sum((ks - mean) ** 4 * pmf, axis=0)
cases.append(case("MixtureSameFamily", "poisson", {"mixing_probs": w, "rate": rate}, x, lp, batch=(2,),
                  mean=mean, variance=var, mu4=mu4))

out = os.path.join(os.path.dirname(__file__), "..", "ppl-runtime", "src", "dist", "tests", "fixtures", "discrete.json")
with open(out, "w") as f:
    json.dump({"generator": "tools/fixtures_discrete.py", "scipy": __import__("scipy").__version__, "cases": cases},
              f, separators=(",", ":"))
print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")
