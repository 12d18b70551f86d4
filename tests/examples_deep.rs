//! Smoke tests of the `vae` and `bnn` examples (tiny settings via `--smoke`): each asserts what a
//! broken fit would miss, and that the PNG it reports was written with the right pixel size.

use clap::Parser;
use std::path::PathBuf;

#[path = "../examples/vae.rs"]
mod vae;

#[path = "../examples/bnn.rs"]
mod bnn;

/// A fresh scratch directory for one test's output.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ppl-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Asserts that `path` is a PNG of `size` pixels and not a stub.
fn assert_png(path: &std::path::Path, size: (u32, u32)) {
    let bytes = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len();
    assert!(bytes > 10_000, "{} has only {bytes} bytes", path.display());
    assert_eq!(vae::plot::png_size(path).unwrap(), size, "{}", path.display());
}

/// The VAE on 1,000 digits for 2 epochs (small networks). Independent bound: the best model that
/// gives every pixel one and the same probability `p` (the mean grey level of the test digits,
/// i.e. the expected binarized pixel) scores `784 (p ln p + (1-p) ln(1-p))` ≈ −300 nats per
/// image; a VAE that learned anything must beat it, and its test ELBO must rise from the
/// untrained networks' (≈ −784 ln 2 = −543). The training loss must fall from the first steps to
/// the last epoch. Resuming from the checkpoint must restore the exact state: the resumed run's
/// first test ELBO (same parameters, same evaluation stream) equals the first run's last one.
#[test]
fn vae_learns_digits_writes_grid_and_resumes() {
    let out = scratch("vae");
    let out_s = out.to_str().unwrap();
    let args = vae::Args::parse_from(["vae", "--smoke", "--seed", "3", "--out", out_s]);
    let r = vae::run(&args).unwrap();
    assert_eq!((r.n_train, r.n_test), (1000, 1000));
    assert_eq!(r.test_elbo.len(), 2);

    let mnist = ppl::datasets::Mnist::load(ppl::datasets::data_dir().join("mnist"), &ppl::candle_core::Device::Cpu).unwrap();
    let p = mnist.test_images.mean_all().unwrap().to_scalar::<f32>().unwrap() as f64;
    let constant_pixel = 784.0 * (p * p.ln() + (1.0 - p) * (1.0 - p).ln());
    let last = *r.test_elbo.last().unwrap();
    assert!(r.test_elbo.iter().all(|e| e.is_finite()) && r.test_elbo_start.is_finite());
    assert!(r.test_elbo_start < -500.0, "untrained test ELBO {}", r.test_elbo_start);
    assert!(last > constant_pixel + 10.0, "test ELBO {last} vs the constant-pixel model's {constant_pixel}");
    assert!(r.train_loss[1] < r.first_steps_loss - 100.0, "train loss {:?}, first steps {}", r.train_loss, r.first_steps_loss);
    // 10 + 10 × 88 + 4 + 100 wide (label column), 36 + 6 × 88 + 4 high: see plot::Grid.
    assert_eq!(r.png_size, (994, 568));
    assert_png(&r.png, (994, 568));
    // render_model found the one dependency: the latent code feeds the pixels' distribution.
    let dot = std::fs::read_to_string(&r.dot).unwrap();
    assert!(dot.contains("\"z\" -> \"x\";") && dot.contains("cluster_data"), "{dot}");

    let resumed = vae::run(&vae::Args::parse_from(["vae", "--smoke", "--seed", "3", "--out", out_s, "--resume"])).unwrap();
    assert_eq!(resumed.total_steps, 2 * r.total_steps);
    assert_eq!(resumed.test_elbo_start, last, "the checkpoint did not restore the state");
    let _ = std::fs::remove_dir_all(&out);
}

/// A bad `--resume` or `--mnist` is one clear error naming the flag, not a panic.
#[test]
fn vae_rejects_missing_checkpoint_and_data() {
    let out = scratch("vae-bad");
    let out_s = out.to_str().unwrap();
    let err = vae::run(&vae::Args::parse_from(["vae", "--smoke", "--out", out_s, "--resume"])).unwrap_err().to_string();
    assert!(err.contains("--resume") && err.contains("no checkpoint"), "{err}");
    let err = vae::run(&vae::Args::parse_from(["vae", "--smoke", "--out", out_s, "--mnist", "/no/such/dir"])).unwrap_err().to_string();
    assert!(err.contains("--mnist") && err.contains("/no/such/dir"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The BNN on 100 points of y = x³ + N(0, 3²): the predictive mean must follow the true curve
/// (RMS error well under the noise sd, 3), the noise sd must be recovered (posterior sd of sigma
/// with 100 points ≈ 3/√200 ≈ 0.2; the bounds leave room for the mean-field bias), the 90% band
/// must cover between 78% and 100% of the points (binomial sd 3 points, so 90% − 4 sd; a
/// mean-field guide over-covers), and the band of f(x) must be wider beyond the data than
/// among it.
#[test]
fn bnn_follows_the_cubic_and_draws_its_band() {
    let out = scratch("bnn");
    let args = bnn::Args::parse_from(["bnn", "--smoke", "--out", out.to_str().unwrap()]);
    let r = bnn::run(&args).unwrap();
    assert!(r.loss_last < r.loss_first - 50.0, "loss {} -> {}", r.loss_first, r.loss_last);
    assert!(r.rmse_truth < 4.0, "RMS error vs x³: {}", r.rmse_truth);
    assert!((2.0..4.5).contains(&r.sigma), "sigma {}", r.sigma);
    assert!((0.78..=1.0).contains(&r.coverage), "coverage {}", r.coverage);
    assert!(r.f_width_outside > r.f_width_inside, "f band {} inside, {} outside", r.f_width_inside, r.f_width_outside);
    assert_png(&r.png, (900, 600));
    let _ = std::fs::remove_dir_all(&out);
}
