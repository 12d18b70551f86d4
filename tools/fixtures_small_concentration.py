#!/usr/bin/env python3
"""Reference values for sampling Beta and Dirichlet at tiny concentrations (mpmath 1.3, 40 digits).

Writes ppl-runtime/src/dist/tests/fixtures/small_concentration.json, loaded by
ppl-runtime/src/dist/tests/small_concentration.rs. Run from the repository root:

    python3 tools/fixtures_small_concentration.py

- "tails": P(X < x) for X ~ Beta(a, b) at x far below the smallest f32/f64 numbers a naive
  sampler can produce (the regularized incomplete beta I_x(a, b)); a Dirichlet marginal is
  Beta(alpha_i, alpha_0 - alpha_i).
- "log_grad": d log z / d alpha for z ~ Gamma(alpha, 1) at log z = lz, where z may underflow
  f64: -(dP/dalpha)(alpha, z) / (z p(z; alpha)), P the regularized lower incomplete gamma.
"""
import json
import os

import mpmath

mpmath.mp.dps = 40


def beta_cdf(a, b, x):
    return float(mpmath.betainc(a, b, 0, x, regularized=True))


tails = []
for a, b in [(1e-3, 1e-3), (1e-8, 1e-8), (0.01, 0.02), (0.05, 0.1)]:
    for x in ["1e-300", "1e-100", "1e-30", "1e-10", "0.5"]:
        tails.append([a, b, float(x), beta_cdf(mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(x))])


def dlogz_dalpha(al, lz):
    al, lz = mpmath.mpf(al), mpmath.mpf(lz)
    z = mpmath.exp(lz)
    dpda = mpmath.diff(lambda s: mpmath.gammainc(s, 0, z, regularized=True), al)
    zpdf = mpmath.exp(al * lz - z - mpmath.loggamma(al))
    return float(-dpda / zpdf)


log_grad = []
for al, lz in [(1e-3, -2000.0), (1e-3, -1.0), (0.01, -900.0), (0.05, -30.0), (0.3, -3.0), (2.5, 1.2), (40.0, 3.8)]:
    log_grad.append([al, lz, dlogz_dalpha(al, lz)])

out = {"generator": "tools/fixtures_small_concentration.py", "mpmath": mpmath.__version__, "tails": tails,
       "log_grad": log_grad}
path = os.path.join(os.path.dirname(__file__), "..", "ppl-runtime", "src", "dist", "tests", "fixtures",
                    "small_concentration.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(f"wrote {len(tails)} tail probabilities and {len(log_grad)} gradients to {os.path.normpath(path)}")
