//! Smoke tests of the enumeration examples (examples/gmm.rs, examples/hmm.rs), each checked
//! against the generating parameters or a plain forward algorithm.

use clap::Parser;

#[path = "../examples/gmm.rs"]
mod gmm;
#[path = "../examples/hmm.rs"]
mod hmm;

/// Three unit-scale clusters 5 apart, 60 points: the fitted means are within 0.6 of the true
/// ones (the MLE's standard error with ~20 points per cluster is ~0.22, plus the small-sample
/// spread of the cluster means), the scale within 0.3 of 1, and the MAP assignments agree with
/// the true components for at least 90% of the points (the Bayes error at this spacing is ~1%).
#[test]
fn gmm_recovers_the_components_and_assignments() {
    let args = gmm::Args::parse_from(["gmm", "--smoke", "--seed", "2"]);
    let r = gmm::run(&args).unwrap();
    for (l, t) in r.locs.iter().zip(&r.true_locs) {
        assert!((l - t).abs() < 0.6, "fitted {:?} vs true {:?}", r.locs, r.true_locs);
    }
    assert!((r.scale - 1.0).abs() < 0.3, "scale {}", r.scale);
    let right = r.map.iter().zip(&r.truth).filter(|(a, b)| a == b).count();
    assert!(right as f64 >= 0.9 * r.x.len() as f64, "{right} of {}", r.x.len());
    assert!(r.p_map.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(r.loss_last < r.loss_first);
}

/// The example's enumerated log-likelihood under the true parameters equals its plain forward
/// algorithm; the fitted model's is within 0.03 nats per step of the true parameters' (gradient
/// maximum likelihood from a few random starts in the smoke settings; the uniform emission
/// baseline is ln 4 = 1.39 nats below), the model used 2 enum dims, and the recovered
/// transition diagonal is within 0.2 of the true one (640 symbols); `vectorized_markov` (the
/// default) and `--markov` agree.
#[test]
fn hmm_enumeration_is_the_forward_algorithm_and_the_fit_is_close_to_the_truth() {
    let args = hmm::Args::parse_from(["hmm", "--smoke", "--seed", "0"]);
    let r = hmm::run(&args).unwrap();
    assert!((r.loglik_true_enum - r.loglik_true).abs() < 1e-5, "{} vs {}", r.loglik_true_enum, r.loglik_true);
    assert!(r.loglik_fitted > r.loglik_true - 0.03, "fitted {} vs true {}", r.loglik_fitted, r.loglik_true);
    assert_eq!(r.enum_dims, 2);
    for i in 0..hmm::S {
        assert!((r.trans[i][i] - hmm::TRANS[i][i]).abs() < 0.2, "{:?}", r.trans);
    }
    // The sequential `markov` form (variable elimination, one site per step) fits the same
    // parameters from the same starts: same log-likelihoods to float precision.
    let m = hmm::run(&hmm::Args::parse_from(["hmm", "--smoke", "--seed", "0", "--markov"])).unwrap();
    assert!((m.loglik_true_enum - r.loglik_true_enum).abs() < 1e-5, "{} vs {}", m.loglik_true_enum, r.loglik_true_enum);
    assert!((m.loglik_fitted - r.loglik_fitted).abs() < 1e-3, "{} vs {}", m.loglik_fitted, r.loglik_fitted);
    assert_eq!(m.enum_dims, 2);
}

/// Bad flags are errors, not panics.
#[test]
fn enumeration_examples_reject_bad_sizes() {
    let e = gmm::run(&gmm::Args::parse_from(["gmm", "--k", "0"])).unwrap_err().to_string();
    assert!(e.contains("k = 0"), "{e}");
    let e = hmm::run(&hmm::Args::parse_from(["hmm", "--length", "1"])).unwrap_err().to_string();
    assert!(e.contains("length 2"), "{e}");
}
