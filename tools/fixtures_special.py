#!/usr/bin/env python3
"""Reference values for ppl's special functions and transformed distributions, from scipy.

Writes ppl-runtime/src/dist/tests/fixtures/special.json, loaded by the tests in
ppl-runtime/src/dist/tests/{special,transforms}.rs with include_str!. Run from the repo root:
    python3 tools/fixtures_special.py
Every value is finite (JSON has no inf/NaN); non-finite cases are checked in Rust directly.
"""
import json
import os

import mpmath
import numpy as np
import scipy
from scipy import special as sp
from scipy import stats

GAMMA_X = [1e-300, 1e-10, 1e-5, 0.1, 0.5, 1.0, 1.0 - 1e-9, 1.4616321449683622, 1.5, 2.0,
           2.0 + 1e-9, 2.5, 3.0, 5.0, 7.5, 10.0, 11.9, 12.3, 50.0, 100.0, 1e5, 1e10, 1e15,
           -1e-8, -0.5, -0.999999, -1.5, -2.3, -10.7, -100.5]
POLY_X = [1e-5, 0.1, 0.5, 1.0, 1.5, 2.0, 3.7, 5.0, 6.2, 10.0, 11.9, 12.3, 50.0, 1e3, 1e6,
          -0.5, -1.5, -2.3, -10.7]
BETA_AB = [(0.5, 0.5), (1.0, 1.0), (2.0, 3.0), (1e-5, 1e-5), (1e-5, 1e5), (10.0, 10.0),
           (100.0, 0.1), (1e5, 1e5), (1e10, 1.0), (12.5, 3.2), (0.1, 50.0), (1e8, 1e8),
           (9.9, 10.1), (3.0, 1e12), (1e-3, 0.7)]
LOG1P_X = [-0.999, -0.5, -1e-10, 1e-20, 1e-10, 1e-5, 0.5, 1.0, 10.0, 1e10]
EXPM1_X = [-50.0, -1.0, -1e-10, 1e-20, 1e-10, 1e-5, 0.5, 1.0, 10.0, 100.0]
SOFTPLUS_X = [-800.0, -50.0, -10.0, -1.0, 0.0, 1e-10, 1.0, 10.0, 50.0, 800.0]
ERF_X = [-6.0, -3.0, -1.0, -0.5, -1e-10, 0.0, 1e-10, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 26.0]
ERFINV_Y = [-0.999999, -0.9, -0.5, -1e-10, 0.0, 1e-10, 0.3, 0.5, 0.9, 0.99, 0.999999, 1 - 1e-12]
NDTR_X = [-37.0, -20.0, -10.0, -5.0, -1.0, 0.0, 1.0, 5.0, 8.0, 10.0]
LOG_NDTR_X = [-1e5, -100.0, -40.0, -20.5, -19.5, -10.0, -5.0, -1.0, 0.0, 1.0, 5.0, 5.9, 6.1,
              10.0, 20.0, 37.0]
NDTRI_P = [1e-300, 1e-100, 1e-20, 1e-10, 1e-5, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-5,
           1 - 1e-10, 1 - 1e-15]
BESSEL_X = [-50.0, -20.5, -5.0, -1.0, -1e-5, 0.0, 1e-5, 0.5, 1.0, 5.0, 10.0, 19.9, 20.1, 50.0,
            100.0, 1e4, 1e8]
XLOGY = [(0.0, 0.0), (0.0, 5.0), (2.0, 3.0), (1.5, 0.1), (-2.0, 7.0), (1e-300, 1e-300), (3.0, 1.0)]
XLOG1PY = [(0.0, -1.0), (0.0, 5.0), (2.0, 3.0), (1.5, 1e-12), (-2.0, -0.5)]
MVLGAMMA = [(2.5, 1), (2.5, 3), (10.0, 5), (1.6, 2), (100.0, 4)]
GAMMAINC = [(0.5, 0.1), (1.0, 1.0), (2.0, 0.5), (5.0, 10.0), (100.0, 90.0), (100.0, 110.0),
            (1e-3, 1e-3), (10.0, 1e-5), (0.5, 50.0), (30.0, 5.0), (3.0, 0.0)]
BETAINC = [(0.5, 0.5, 0.3), (1.0, 1.0, 0.5), (2.0, 3.0, 0.2), (10.0, 20.0, 0.4),
           (100.0, 200.0, 0.33), (0.1, 5.0, 0.01), (5.0, 0.1, 0.99), (50.0, 50.0, 0.5),
           (2.0, 2.0, 0.0), (2.0, 2.0, 1.0)]
LSE_ROWS = [[0.0, 1.0, 2.0], [-1000.0, -1000.5, -999.0], [1000.0, 3.0, -5.0], [1e-3, 2e-3, -1e-3]]
# LogNormal as Normal(mu, sigma) pushed through exp: scipy's lognorm(s=sigma, scale=exp(mu)).
LOGNORMAL = [(0.0, 1.0, 0.5), (0.0, 1.0, 1.0), (0.3, 0.5, 2.0), (-1.0, 2.0, 0.01), (2.0, 0.1, 7.0),
             (1.5, 0.7, 30.0)]


def col(xs):
    return [float(x) for x in xs]


def unary(f, xs):
    return {"x": col(xs), "y": col(f(np.array(xs, dtype=np.float64)))}


def main():
    mpmath.mp.dps = 40
    out = {
        "_generator": "tools/fixtures_special.py",
        "_versions": {"scipy": scipy.__version__, "numpy": np.__version__, "mpmath": mpmath.__version__},
        "lgamma": unary(sp.gammaln, GAMMA_X),
        "digamma": unary(sp.digamma, GAMMA_X[:-1] + [-100.3]),
        "trigamma": unary(lambda x: sp.polygamma(1, x), POLY_X),
        "tetragamma": unary(lambda x: sp.polygamma(2, x), POLY_X),
        "log1p": unary(np.log1p, LOG1P_X),
        "expm1": unary(np.expm1, EXPM1_X),
        "softplus": unary(lambda x: np.logaddexp(0.0, x), SOFTPLUS_X),
        "log_sigmoid": unary(sp.log_expit, SOFTPLUS_X),
        "erf": unary(sp.erf, ERF_X),
        "erfc": unary(sp.erfc, ERF_X),
        "erfinv": unary(sp.erfinv, ERFINV_Y),
        "ndtr": unary(sp.ndtr, NDTR_X),
        "log_ndtr": unary(sp.log_ndtr, LOG_NDTR_X),
        "ndtri": unary(sp.ndtri, NDTRI_P),
        "i0e": unary(sp.i0e, BESSEL_X),
        "i1e": unary(sp.i1e, BESSEL_X),
        "log_i0": unary(lambda x: np.log(sp.i0e(x)) + np.abs(x), BESSEL_X),
        "i0": unary(sp.i0, BESSEL_X[1:-3]),
        "i1": unary(sp.i1, BESSEL_X[1:-3]),
        "logit": unary(sp.logit, [1e-10, 0.1, 0.5, 0.9, 1 - 1e-10]),
        # mpmath at 40 digits: scipy.special.betaln is off by 6e-12 (relative) at (1e-5, 1e5).
        "log_beta": {"a": col(a for a, _ in BETA_AB), "b": col(b for _, b in BETA_AB),
                     "y": col(float(mpmath.log(mpmath.beta(mpmath.mpf(a), mpmath.mpf(b))))
                              for a, b in BETA_AB)},
        "xlogy": {"a": col(a for a, _ in XLOGY), "b": col(b for _, b in XLOGY),
                  "y": col(sp.xlogy(a, b) for a, b in XLOGY)},
        "xlog1py": {"a": col(a for a, _ in XLOG1PY), "b": col(b for _, b in XLOG1PY),
                    "y": col(sp.xlog1py(a, b) for a, b in XLOG1PY)},
        "mvlgamma": {"a": col(a for a, _ in MVLGAMMA), "p": [p for _, p in MVLGAMMA],
                     "y": col(sp.multigammaln(a, p) for a, p in MVLGAMMA)},
        "gammainc": {"a": col(a for a, _ in GAMMAINC), "b": col(x for _, x in GAMMAINC),
                     "y": col(sp.gammainc(a, x) for a, x in GAMMAINC)},
        "gammaincc": {"a": col(a for a, _ in GAMMAINC), "b": col(x for _, x in GAMMAINC),
                      "y": col(sp.gammaincc(a, x) for a, x in GAMMAINC)},
        "betainc": {"a": col(a for a, _, _ in BETAINC), "b": col(b for _, b, _ in BETAINC),
                    "x": col(x for _, _, x in BETAINC),
                    "y": col(sp.betainc(a, b, x) for a, b, x in BETAINC)},
        "log_sum_exp": {"rows": LSE_ROWS, "y": col(sp.logsumexp(r) for r in LSE_ROWS)},
        "lognormal": {
            "loc": col(m for m, _, _ in LOGNORMAL), "scale": col(s for _, s, _ in LOGNORMAL),
            "x": col(x for _, _, x in LOGNORMAL),
            "log_prob": col(stats.lognorm(s, scale=np.exp(m)).logpdf(x) for m, s, x in LOGNORMAL),
            "cdf": col(stats.lognorm(s, scale=np.exp(m)).cdf(x) for m, s, x in LOGNORMAL),
        },
    }
    path = os.path.join(os.path.dirname(__file__), "..", "ppl-runtime", "src", "dist", "tests",
                        "fixtures", "special.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
