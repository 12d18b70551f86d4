#!/usr/bin/env python3
"""Reference values for the multivariate distributions, their linear algebra and the KL registry.

Writes ppl-runtime/src/dist/tests/fixtures/multivariate.json, loaded by
ppl-runtime/src/dist/tests/multivariate.rs. References are numpy / scipy (no torch):
  - linalg: numpy.linalg.cholesky / inv / slogdet, scipy.linalg.solve_triangular
  - MultivariateNormal, LowRankMultivariateNormal: scipy.stats.multivariate_normal
  - LKJCholesky: the torch/NumPyro formula re-implemented with numpy + scipy.special.multigammaln,
    checked here, for dim = 2, against scipy.stats.beta(eta, eta) on (r + 1) / 2 with Jacobian 1/2
  - KL: closed forms (Normal, MVN, Dirichlet), scipy.integrate.quad (Beta, Gamma), direct sums
    (Bernoulli, Categorical)
Run: python3 tools/fixtures_multivariate.py
"""
import json
import math
import os

import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.special
import scipy.stats

rng = np.random.default_rng(20240611)
OUT = os.path.join(os.path.dirname(__file__), "..", "ppl-runtime", "src", "dist", "tests", "fixtures", "multivariate.json")


def flat(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": a.ravel().tolist()}


def random_spd(n, batch=()):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * 0.5 * np.eye(n)


def linalg_fixture():
    a = random_spd(3, (2,))
    l = np.linalg.cholesky(a)
    u = np.swapaxes(l, -1, -2)
    b = rng.normal(size=(2, 3, 2))
    br = rng.normal(size=(2, 2, 3))
    st = scipy.linalg.solve_triangular
    big = random_spd(6)
    return {
        "a": flat(a),
        "chol": flat(l),
        "b": flat(b),
        "b_right": flat(br),
        "solve_lower_left": flat(np.stack([st(l[i], b[i], lower=True) for i in range(2)])),
        "solve_upper_left": flat(np.stack([st(u[i], b[i], lower=False) for i in range(2)])),
        # X L = B  <=>  L^T X^T = B^T
        "solve_lower_right": flat(np.stack([st(l[i].T, br[i].T, lower=False).T for i in range(2)])),
        "solve_upper_right": flat(np.stack([st(u[i].T, br[i].T, lower=True).T for i in range(2)])),
        "cholesky_solve": flat(np.linalg.solve(a, b)),
        "inverse": flat(np.linalg.inv(a)),
        "logdet": flat(np.linalg.slogdet(a)[1]),
        "big": flat(big),
        "big_chol": flat(np.linalg.cholesky(big)),
    }


def mvn_fixture():
    loc = rng.normal(size=(2, 3))
    cov = random_spd(3, (2,))
    x = rng.normal(size=(4, 2, 3)) * 2.0
    logp = np.zeros((4, 2))
    for j in range(2):
        logp[:, j] = scipy.stats.multivariate_normal(loc[j], cov[j]).logpdf(x[:, j])
    ent = np.array([scipy.stats.multivariate_normal(loc[j], cov[j]).entropy() for j in range(2)])
    return {
        "loc": flat(loc),
        "cov": flat(cov),
        "scale_tril": flat(np.linalg.cholesky(cov)),
        "precision": flat(np.linalg.inv(cov)),
        "x": flat(x),
        "log_prob": flat(logp),
        "entropy": flat(ent),
    }


def lowrank_fixture():
    n, r = 4, 2
    loc = rng.normal(size=(2, n))
    w = rng.normal(size=(2, n, r))
    d = rng.uniform(0.3, 2.0, size=(2, n))
    x = rng.normal(size=(5, 2, n)) * 2.0
    cov = w @ np.swapaxes(w, -1, -2) + np.stack([np.diag(d[j]) for j in range(2)])
    logp = np.zeros((5, 2))
    for j in range(2):
        logp[:, j] = scipy.stats.multivariate_normal(loc[j], cov[j]).logpdf(x[:, j])
    ent = np.array([scipy.stats.multivariate_normal(loc[j], cov[j]).entropy() for j in range(2)])
    return {
        "loc": flat(loc),
        "cov_factor": flat(w),
        "cov_diag": flat(d),
        "cov": flat(cov),
        "x": flat(x),
        "log_prob": flat(logp),
        "entropy": flat(ent),
    }


def lkj_log_prob(l, eta):
    """torch.distributions.LKJCholesky.log_prob (same as numpyro's 'onion' normaliser)."""
    dim = l.shape[-1]
    diag = np.diagonal(l, axis1=-2, axis2=-1)[..., 1:]
    order = np.arange(2, dim + 1)
    order = 2 * (eta - 1) + dim - order
    unnorm = np.sum(order * np.log(diag), axis=-1)
    dm1 = dim - 1
    alpha = eta + 0.5 * dm1
    denominator = scipy.special.gammaln(alpha) * dm1
    numerator = scipy.special.multigammaln(alpha - 0.5, dm1)
    pi_constant = 0.5 * dm1 * math.log(math.pi)
    return unnorm - (pi_constant + numerator - denominator)


def random_corr_cholesky(dim, m):
    out = []
    for _ in range(m):
        a = rng.normal(size=(dim, dim + 1))
        c = a @ a.T
        s = np.sqrt(np.diag(c))
        c = c / s[:, None] / s[None, :]
        out.append(np.linalg.cholesky(c))
    return np.stack(out)


def lkj_fixture():
    cases = []
    for dim, eta in [(2, 0.7), (2, 3.0), (3, 1.0), (3, 2.5), (4, 0.5), (5, 1.7)]:
        l = random_corr_cholesky(dim, 4)
        cases.append({"dim": dim, "eta": eta, "value": flat(l), "log_prob": flat(lkj_log_prob(l, eta))})
    # dim = 2: L = [[1, 0], [r, sqrt(1 - r^2)]]; density of r is Beta(eta, eta) on (r + 1) / 2, times 1/2.
    beta_checks = []
    for eta in [0.6, 1.0, 2.5]:
        r = np.array([-0.9, -0.3, 0.0, 0.45, 0.8])
        l = np.zeros((len(r), 2, 2))
        l[:, 0, 0] = 1.0
        l[:, 1, 0] = r
        l[:, 1, 1] = np.sqrt(1 - r**2)
        ref = scipy.stats.beta(eta, eta).logpdf((r + 1) / 2) + math.log(0.5)
        mine = lkj_log_prob(l, eta)
        assert np.allclose(ref, mine, rtol=1e-12, atol=1e-12), (eta, ref, mine)
        beta_checks.append({"eta": eta, "r": flat(r), "log_prob": flat(ref)})
    return {"cases": cases, "beta_dim2": beta_checks}


def kl_fixture():
    out = {}
    # Normal-Normal, closed form.
    nn = []
    for m1, s1, m2, s2 in [(0.3, 1.2, -0.5, 0.7), (1.0, 0.5, 1.0, 2.0)]:
        kl = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
        # independent check by quadrature
        f = lambda x: scipy.stats.norm(m1, s1).pdf(x) * (scipy.stats.norm(m1, s1).logpdf(x) - scipy.stats.norm(m2, s2).logpdf(x))
        q = scipy.integrate.quad(f, -30, 30, limit=200)[0]
        assert abs(q - kl) < 1e-8
        nn.append({"p": [m1, s1], "q": [m2, s2], "kl": kl})
    out["normal"] = nn
    # MVN-MVN, closed form.
    n = 3
    lp, lq = rng.normal(size=n), rng.normal(size=n)
    cp, cq = random_spd(n), random_spd(n)
    iq = np.linalg.inv(cq)
    d = lq - lp
    kl = 0.5 * (np.trace(iq @ cp) + d @ iq @ d - n + np.linalg.slogdet(cq)[1] - np.linalg.slogdet(cp)[1])
    out["mvn"] = {"loc_p": flat(lp), "cov_p": flat(cp), "loc_q": flat(lq), "cov_q": flat(cq), "kl": kl}
    # Beta-Beta by quadrature.
    (a1, b1), (a2, b2) = (2.0, 3.5), (1.2, 0.9)
    p, q = scipy.stats.beta(a1, b1), scipy.stats.beta(a2, b2)
    out["beta"] = {"p": [a1, b1], "q": [a2, b2], "kl": scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), 0, 1, limit=200)[0]}
    # Gamma-Gamma (concentration, rate) by quadrature.
    (a1, r1), (a2, r2) = (2.5, 1.5), (1.3, 0.6)
    p, q = scipy.stats.gamma(a1, scale=1 / r1), scipy.stats.gamma(a2, scale=1 / r2)
    out["gamma"] = {"p": [a1, r1], "q": [a2, r2], "kl": scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), 0, np.inf, limit=200)[0]}
    # Dirichlet-Dirichlet, closed form.
    ap, aq = np.array([1.5, 2.0, 0.7]), np.array([0.9, 1.1, 3.0])
    s = ap.sum()
    g = scipy.special.gammaln
    ps = scipy.special.digamma
    kl = g(s) - g(ap).sum() - g(aq.sum()) + g(aq).sum() + ((ap - aq) * (ps(ap) - ps(s))).sum()
    out["dirichlet"] = {"p": ap.tolist(), "q": aq.tolist(), "kl": kl}
    # Bernoulli, Categorical: direct sums.
    bp, bq = 0.3, 0.8
    out["bernoulli"] = {"p": bp, "q": bq, "kl": bp * math.log(bp / bq) + (1 - bp) * math.log((1 - bp) / (1 - bq))}
    cp, cq = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.4, 0.2])
    out["categorical"] = {"p": cp.tolist(), "q": cq.tolist(), "kl": float((cp * np.log(cp / cq)).sum())}
    return out


def main():
    fixture = {
        "linalg": linalg_fixture(),
        "mvn": mvn_fixture(),
        "lowrank": lowrank_fixture(),
        "lkj": lkj_fixture(),
        "kl": kl_fixture(),
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
