//! Smoke tests of the examples under examples/: each runs with tiny settings and is checked
//! against independent truth (exact posteriors) or a bound that a broken fit would miss.

use clap::Parser;

#[path = "../examples/coin.rs"]
mod coin;

/// 6 heads in 10 under a Beta(10, 10) prior: the exact posterior is Beta(16, 14), mean 16/30 and
/// sd 0.0896. A Beta guide fitted by SVI should put its mean within half an exact sd of it
/// (Pyro's tutorial reaches ~0.1 sd); the loss must also have gone down from the initial guide.
#[test]
fn coin_fits_the_exact_beta_posterior() {
    let args = coin::Args::parse_from(["coin", "--smoke", "--seed", "1"]);
    let r = coin::run(&args).unwrap();
    assert_eq!((r.alpha_exact, r.beta_exact), (16.0, 14.0));
    let exact_mean = 16.0 / 30.0;
    let exact_sd = (16.0f64 * 14.0 / (30.0 * 30.0 * 31.0)).sqrt();
    let (m, sd) = coin::beta_mean_sd(r.alpha_q, r.beta_q);
    assert!((m - exact_mean).abs() < 0.5 * exact_sd, "fitted mean {m}, exact {exact_mean}");
    assert!((sd / exact_sd - 1.0).abs() < 0.3, "fitted sd {sd}, exact {exact_sd}");
    assert!(r.loss_last.is_finite() && r.loss_first.is_finite());
}

/// Bad flags are an error, not a panic.
#[test]
fn coin_rejects_more_heads_than_flips() {
    let args = coin::Args::parse_from(["coin", "--heads", "11", "--flips", "10"]);
    let err = coin::run(&args).unwrap_err().to_string();
    assert!(err.contains("11 heads in 10 flips"), "{err}");
}

#[path = "../examples/logistic_regression.rs"]
mod logistic_regression;

/// Breast cancer with tiny settings: both methods must classify the held-out quarter far above
/// chance (63% of tumours are benign; published logistic regressions reach ~95-98%), NUTS must
/// have mixed (R-hat < 1.1 over 2 short chains), and the SVI loss must be finite.
#[test]
fn logistic_regression_predicts_held_out_tumours() {
    let args = logistic_regression::Args::parse_from(["logistic_regression", "--smoke"]);
    let r = logistic_regression::run(&args).unwrap();
    assert_eq!((r.n_train, r.n_test), (426, 143));
    assert!(r.nuts.accuracy > 0.9, "NUTS held-out accuracy {}", r.nuts.accuracy);
    assert!(r.svi.accuracy > 0.9, "SVI held-out accuracy {}", r.svi.accuracy);
    assert!(r.max_r_hat < 1.1, "max R-hat {}", r.max_r_hat);
    assert!(r.final_loss.is_finite());
    // The two methods agree on the intercept to within its NUTS posterior sd.
    let ((nm, ns), (sm, _)) = (r.nuts.coefs[0], r.svi.coefs[0]);
    assert!((nm - sm).abs() < ns, "intercept NUTS {nm} ± {ns}, SVI {sm}");
}

#[path = "../examples/bayesian_regression.rs"]
mod bayesian_regression;

/// Diabetes with tiny settings: NUTS's 90% predictive intervals must cover between 75% and 98%
/// of the 111 held-out patients (binomial sd of the coverage ~2.8 points, so 90% ± 4 sd with
/// room for misspecification), the predictive mean must beat predicting the training mean (the
/// target's sd is ~77), and the SVI fit must be finite and cover at least 75%.
#[test]
fn bayesian_regression_intervals_cover_held_out_patients() {
    let out = std::env::temp_dir().join(format!("ppl-test-bayesian_regression-{}", std::process::id()));
    let args = bayesian_regression::Args::parse_from(["bayesian_regression", "--smoke", "--out", out.to_str().unwrap()]);
    let r = bayesian_regression::run(&args).unwrap();
    assert_eq!(bayesian_regression::plot::png_size(&r.png).unwrap(), (1400, 600));
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!((r.n_train, r.n_test), (331, 111));
    assert!((0.75..=0.98).contains(&r.nuts.coverage), "NUTS coverage {}", r.nuts.coverage);
    assert!(r.nuts.rmse < 70.0, "NUTS RMSE {}", r.nuts.rmse);
    assert!(r.max_r_hat < 1.1, "max R-hat {}", r.max_r_hat);
    assert!(r.final_loss.is_finite());
    assert!(r.svi.coverage >= 0.75 && r.svi.rmse < 70.0, "SVI coverage {}, RMSE {}", r.svi.coverage, r.svi.rmse);
}
