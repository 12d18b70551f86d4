#!/usr/bin/env python3
"""Reference values for the continuous distributions of ppl (scipy 1.17 / mpmath).

Writes ppl-runtime/src/dist/tests/fixtures/continuous.json, loaded by
ppl-runtime/src/dist/tests/continuous.rs. Run from the repository root:

    python3 tools/fixtures_continuous.py

Each case has parameters (arrays of any broadcastable shapes), points `x` of shape
[n_points, *batch_shape] (quantiles near both ends of the support plus edge points) and the
scipy values of log_prob, cdf, icdf (at the quantiles `q`), mean, variance and entropy.
Non-finite numbers are written as the strings "nan", "inf", "-inf" (JSON has no NaN).
"""
import json
import math
import os

import mpmath
import numpy as np
from scipy import special, stats

Q = np.array([1e-6, 0.02, 0.3, 0.5, 0.8, 0.999])


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


def case(name, params, frozen, *, extra_x=None, has_icdf=True, has_cdf=True, moments=True,
         lp=None, mean=None, var=None, entropy=None, x=None):
    """params: dict name -> np.array; frozen: scipy frozen distribution with the same broadcasting."""
    batch = np.broadcast_shapes(*[np.shape(v) for v in params.values()])
    qb = Q.reshape((-1,) + (1,) * len(batch))
    if x is None:
        x = np.broadcast_to(frozen.ppf(qb), (len(Q),) + batch)
        if extra_x is not None:
            ex = np.broadcast_to(np.asarray(extra_x, dtype=np.float64).reshape((-1,) + (1,) * len(batch)),
                                 (len(extra_x),) + batch)
            x = np.concatenate([x, ex], axis=0)
    c = {"dist": name, "params": {k: enc(v) for k, v in params.items()}, "x": enc(x)}
    c["log_prob"] = enc(lp(x) if lp is not None else frozen.logpdf(x))
    if has_cdf:
        c["cdf"] = enc(frozen.cdf(x))
    if has_icdf:
        c["q"] = enc(np.broadcast_to(qb, (len(Q),) + batch))
        c["icdf"] = enc(np.broadcast_to(frozen.ppf(qb), (len(Q),) + batch))
    if moments:
        c["mean"] = enc(np.broadcast_to(mean if mean is not None else frozen.mean(), batch))
        c["variance"] = enc(np.broadcast_to(var if var is not None else frozen.var(), batch))
    c["entropy"] = enc(np.broadcast_to(entropy if entropy is not None else frozen.entropy(), batch))
    return c


def a(*v):
    """An array of the given numbers; a single number gives a rank-0 array (scalar parameter)."""
    return np.array(v[0] if len(v) == 1 else v, dtype=np.float64)


cases = []
# Normal: loc [3,1] x scale [2] -> batch [3,2]
for loc, scale in [(a(0.0), a(1.0)), (a(-2.0, 0.5, 3.0).reshape(3, 1), a(0.1, 4.0))]:
    cases.append(case("Normal", {"loc": loc, "scale": scale}, stats.norm(loc, scale)))
for loc, scale in [(a(0.0), a(1.0)), (a(-1.0, 0.3).reshape(2, 1), a(0.2, 1.5, 3.0))]:
    cases.append(case("LogNormal", {"loc": loc, "scale": scale}, stats.lognorm(s=scale, scale=np.exp(loc))))
for scale in [a(1.0), a(0.3, 2.0, 7.0)]:
    cases.append(case("HalfNormal", {"scale": scale}, stats.halfnorm(scale=scale), extra_x=[0.0]))
for loc, scale in [(a(0.0), a(1.0)), (a(-2.0, 5.0).reshape(2, 1), a(0.5, 3.0))]:
    cases.append(case("Cauchy", {"loc": loc, "scale": scale}, stats.cauchy(loc, scale), moments=False))
for scale in [a(1.0), a(0.2, 5.0)]:
    cases.append(case("HalfCauchy", {"scale": scale}, stats.halfcauchy(scale=scale), moments=False, extra_x=[0.0]))
# StudentT: df in (0,1], (1,2], > 2 to cover the nan / inf / finite moments of torch.
for df, loc, scale in [(a(3.0), a(0.0), a(1.0)),
                       (a(0.7, 1.5, 2.5, 30.0).reshape(4, 1), a(0.0, -1.0), a(2.0, 0.5))]:
    f = stats.t(df, loc, scale)
    m = np.where(df > 1, loc, np.nan) + 0 * scale
    v = np.where(df > 2, scale ** 2 * df / np.where(df > 2, df - 2, 1), np.where(df > 1, np.inf, np.nan)) + 0 * loc
    cases.append(case("StudentT", {"df": df, "loc": loc, "scale": scale}, f, has_icdf=False, mean=m, var=v))
for loc, scale in [(a(0.0), a(1.0)), (a(-1.0, 2.0, 10.0).reshape(3, 1), a(0.1, 3.0))]:
    cases.append(case("Laplace", {"loc": loc, "scale": scale}, stats.laplace(loc, scale)))
for rate in [a(1.0), a(0.05, 2.0, 40.0)]:
    cases.append(case("Exponential", {"rate": rate}, stats.expon(scale=1 / rate), extra_x=[0.0]))
for conc, rate in [(a(2.0), a(3.0)), (a(0.05, 0.7, 1.0, 5.0, 150.0).reshape(5, 1), a(0.5, 2.0))]:
    cases.append(case("Gamma", {"concentration": conc, "rate": rate}, stats.gamma(conc, scale=1 / rate),
                      has_icdf=False, extra_x=[0.0] if conc.size == 1 else None))
# Gamma at x = 0 with concentration 1: log_prob = log(rate) (xlogy convention).
cases.append(case("Gamma", {"concentration": a(1.0, 1.0), "rate": a(0.5, 2.0)},
                  stats.gamma(a(1.0, 1.0), scale=1 / a(0.5, 2.0)), has_icdf=False, extra_x=[0.0]))
for c1, c0 in [(a(2.0), a(3.0)), (a(0.3, 1.0, 4.0, 50.0).reshape(4, 1), a(0.5, 2.0, 9.0))]:
    cases.append(case("Beta", {"concentration1": c1, "concentration0": c0}, stats.beta(c1, c0), has_icdf=False))
cases.append(case("Beta", {"concentration1": a(1.0), "concentration0": a(2.0)}, stats.beta(1.0, 2.0),
                  has_icdf=False, extra_x=[0.0, 1.0 - 1e-9]))
for low, high in [(a(0.0), a(1.0)), (a(-3.0, 0.5).reshape(2, 1), a(1.0, 2.0, 8.0))]:
    cases.append(case("Uniform", {"low": low, "high": high}, stats.uniform(low, high - low)))
for scale, conc in [(a(1.0), a(1.5)), (a(0.5, 2.0, 10.0).reshape(3, 1), a(0.6, 1.0, 4.0))]:
    cases.append(case("Weibull", {"scale": scale, "concentration": conc},
                      stats.weibull_min(c=conc, scale=scale)))
for loc, scale in [(a(0.0), a(1.0)), (a(-4.0, 1.0).reshape(2, 1), a(0.2, 3.0))]:
    cases.append(case("Gumbel", {"loc": loc, "scale": scale}, stats.gumbel_r(loc, scale)))
for df in [a(3.0), a(0.5, 1.0, 2.0, 9.0, 100.0)]:
    cases.append(case("Chi2", {"df": df}, stats.chi2(df), has_icdf=False))


# VonMises: log_prob from its closed form with scipy's i0e; circular variance 1 - I1/I0
# (torch's convention); entropy from scipy.stats.vonmises.
def vm_case(loc, kappa):
    batch = np.broadcast_shapes(loc.shape, kappa.shape)
    x = np.broadcast_to(np.array([-math.pi + 1e-6, -2.0, -0.3, 0.0, 1.0, 3.0, math.pi - 1e-6]).reshape(-1, *(1,) * len(batch)),
                        (7,) + batch)
    lp = lambda x: kappa * np.cos(x - loc) - math.log(2 * math.pi) - np.log(special.i0e(kappa)) - kappa
    ent = np.vectorize(lambda k: stats.vonmises(k).entropy())(kappa)
    return case("VonMises", {"loc": loc, "concentration": kappa}, None, x=x, lp=lp, has_cdf=False, has_icdf=False,
                mean=loc + 0 * kappa, var=1 - special.i1e(kappa) / special.i0e(kappa) + 0 * loc, entropy=ent + 0 * loc)


cases.append(vm_case(a(0.0), a(1.0)))
cases.append(vm_case(a(-1.0, 2.5).reshape(2, 1), a(0.01, 0.5, 4.0, 60.0, 900.0)))


# Dirichlet: event dim 1; batches handled by looping over scipy's single-alpha distribution.
def dir_case(alpha, xs):
    batch = alpha.shape[:-1]
    xs = np.broadcast_to(xs, xs.shape[:1] + batch + alpha.shape[-1:])
    lp = np.empty(xs.shape[:-1])
    mean = np.empty(alpha.shape)
    var = np.empty(alpha.shape)
    ent = np.empty(batch)
    for idx in np.ndindex(*batch):
        d = stats.dirichlet(alpha[idx])
        mean[idx] = d.mean()
        var[idx] = d.var()
        ent[idx] = d.entropy()
        for i in range(xs.shape[0]):
            lp[(i,) + idx] = d.logpdf(xs[(i,) + idx])
    return {"dist": "Dirichlet", "params": {"concentration": enc(alpha)}, "x": enc(xs), "log_prob": enc(lp),
            "mean": enc(mean), "variance": enc(var), "entropy": enc(ent)}


xs3 = np.array([[0.2, 0.3, 0.5], [1e-6, 0.5, 0.5 - 1e-6], [0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3]])
cases.append(dir_case(a(1.5, 2.0, 3.0), xs3))
cases.append(dir_case(np.array([[0.5, 0.8, 4.0], [1.0, 1.0, 1.0], [20.0, 7.0, 0.3]]), xs3[:, None, :]))



# LogisticNormal (torch's definition): x ~ Normal(loc, scale) over K-1 coordinates, pushed onto the
# K-simplex by stick-breaking with offsets: z_i = sigmoid(x_i - log(K-1-i)), y_i = z_i prod_{j<i}
# (1 - z_j), y_K = prod_j (1 - z_j). Written out here with numpy (not ppl's transforms): the
# inverse is z_i = y_i / (1 - sum_{j<i} y_j), x_i = logit(z_i) + log(K-1-i); the Jacobian of
# x -> y[:K-1] is triangular with diagonal z_i (1 - z_i) prod_{j<i} (1 - z_j).
def logistic_normal_logpdf(y, loc, scale):
    n = y.shape[-1] - 1
    rest = 1 - np.concatenate([np.zeros(y.shape[:-1] + (1,)), np.cumsum(y[..., :-1], axis=-1)[..., :-1]], axis=-1)
    z = y[..., :-1] / rest
    x = special.logit(z) + np.log(n - np.arange(n))
    log_det = np.sum(np.log(z) + np.log1p(-z) + np.log(rest), axis=-1)
    return np.sum(stats.norm.logpdf(x, loc, scale), axis=-1) - log_det


def ln_case(loc, scale, ys):
    batch = np.broadcast_shapes(loc.shape[:-1], scale.shape[:-1])
    ys = np.broadcast_to(ys, ys.shape[:1] + batch + ys.shape[-1:])
    return {"dist": "LogisticNormal", "params": {"loc": enc(loc), "scale": enc(scale)}, "x": enc(ys),
            "log_prob": enc(logistic_normal_logpdf(ys, loc, scale))}


cases.append(ln_case(a(0.3, -1.2), a(0.7, 2.0), xs3))
cases.append(ln_case(np.array([[0.0, 0.0], [1.0, -2.0]]), a(0.5, 1.5), xs3[:, None, :]))
cases.append(ln_case(a(0.4).reshape(1), a(1.3).reshape(1), np.array([[0.2, 0.8], [0.999, 0.001], [0.5, 0.5]])))

# Implicit reparameterization of the standard gamma: dz/dalpha = -(dP/dalpha)/(dP/dz), with
# P the regularized lower incomplete gamma, computed to 30 digits with mpmath.
def dz_dalpha(al, z):
    mpmath.mp.dps = 30
    al, z = mpmath.mpf(al), mpmath.mpf(z)
    dpda = mpmath.diff(lambda s: mpmath.gammainc(s, 0, z, regularized=True), al)
    pdf = mpmath.exp((al - 1) * mpmath.log(z) - z - mpmath.loggamma(al))
    return float(-dpda / pdf)


grad_pts = []
for al in [0.01, 0.3, 1.0, 2.5, 10.0, 300.0]:
    for q in [1e-4, 0.1, 0.5, 0.9, 0.9999]:
        z = float(stats.gamma(al).ppf(q))
        if z <= 0:
            continue
        grad_pts.append([al, z, dz_dalpha(al, z)])

# Sample-moment references: mean, variance and 4th central moment (for the standard error of
# the sample variance), or quantiles for the heavy-tailed / circular ones.
moments = []


def mom(name, params, frozen):
    m, v, k = (float(t) for t in frozen.stats(moments="mvk"))
    moments.append({"dist": name, "params": params, "mean": m, "variance": v, "mu4": (k + 3.0) * v * v})


def quant(name, params, frozen):
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    moments.append({"dist": name, "params": params, "q": qs, "x": [float(frozen.ppf(q)) for q in qs]})


mom("Normal", {"loc": 1.5, "scale": 2.0}, stats.norm(1.5, 2.0))
mom("LogNormal", {"loc": -0.3, "scale": 0.5}, stats.lognorm(s=0.5, scale=math.exp(-0.3)))
mom("HalfNormal", {"scale": 1.7}, stats.halfnorm(scale=1.7))
quant("Cauchy", {"loc": -1.0, "scale": 0.7}, stats.cauchy(-1.0, 0.7))
quant("HalfCauchy", {"scale": 2.0}, stats.halfcauchy(scale=2.0))
mom("StudentT", {"df": 9.0, "loc": 0.5, "scale": 1.5}, stats.t(9.0, 0.5, 1.5))
quant("StudentT", {"df": 1.5, "loc": 0.5, "scale": 1.5}, stats.t(1.5, 0.5, 1.5))
mom("Laplace", {"loc": 2.0, "scale": 0.5}, stats.laplace(2.0, 0.5))
mom("Exponential", {"rate": 3.0}, stats.expon(scale=1 / 3.0))
for a_, b_ in [(0.2, 1.5), (1.0, 1.0), (3.5, 0.7), (40.0, 2.0)]:
    mom("Gamma", {"concentration": a_, "rate": b_}, stats.gamma(a_, scale=1 / b_))
for a_, b_ in [(0.3, 0.5), (2.0, 5.0), (20.0, 3.0)]:
    mom("Beta", {"concentration1": a_, "concentration0": b_}, stats.beta(a_, b_))
mom("Uniform", {"low": -2.0, "high": 5.0}, stats.uniform(-2.0, 7.0))
mom("Weibull", {"scale": 1.5, "concentration": 0.8}, stats.weibull_min(c=0.8, scale=1.5))
mom("Gumbel", {"loc": 1.0, "scale": 2.0}, stats.gumbel_r(1.0, 2.0))
mom("Chi2", {"df": 4.5}, stats.chi2(4.5))
quant("VonMises", {"loc": 0.0, "concentration": 2.0}, stats.vonmises(2.0))
quant("VonMises", {"loc": 0.0, "concentration": 0.05}, stats.vonmises(0.05))
# Dirichlet marginals are Beta(α_i, α0 - α_i).
alpha = [0.5, 2.0, 4.0]
for i, ai in enumerate(alpha):
    mom(f"Dirichlet[{i}]", {"concentration": alpha}, stats.beta(ai, sum(alpha) - ai))

out = {"cases": cases, "gamma_grad": grad_pts, "moments": moments}
path = os.path.join(os.path.dirname(__file__), "..", "ppl-runtime", "src", "dist", "tests", "fixtures", "continuous.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print(f"wrote {len(cases)} cases and {len(grad_pts)} gamma-gradient points to {os.path.normpath(path)}")
