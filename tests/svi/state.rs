//! What an `Svi` owns: its parameters, optimizer state and random stream — reproducible from a
//! seed, saved and resumed exactly, never shared, and without leaks over thousands of steps.

use super::{param_value, positive};
use ppl::prelude::*;

fn flips() -> Tensor {
    Tensor::new(&[1f32, 1., 1., 1., 1., 1., 0., 0., 0., 0.], &Device::Cpu).unwrap()
}

fn coin(x: &Tensor) -> Result<()> {
    let p = ppl::sample("p", Beta::new(10.0, 10.0)?)?;
    ppl::plate("flips", 10, |_| ppl::observe("x", Bernoulli::new(&p)?, x).map(|_| ()))
}

fn coin_guide(_: &Tensor) -> Result<()> {
    let a = ppl::param_with("alpha_q", 15.0, positive())?;
    let b = ppl::param_with("beta_q", 15.0, positive())?;
    ppl::sample("p", Beta::new(&a, &b)?).map(|_| ())
}

fn svi(seed: u64) -> Svi<Tensor> {
    Svi::new(coin, coin_guide, Adam::new(0.05), TraceElbo::default()).seed(seed)
}

#[test]
fn a_seed_makes_a_run_reproducible_and_svis_do_not_share_parameters() -> Result<()> {
    let (mut a, mut b, mut c) = (svi(1), svi(1), svi(2));
    let la: Vec<f64> = (0..20).map(|_| a.step(&flips())).collect::<Result<_>>()?;
    let lb: Vec<f64> = (0..20).map(|_| b.step(&flips())).collect::<Result<_>>()?;
    let lc: Vec<f64> = (0..20).map(|_| c.step(&flips())).collect::<Result<_>>()?;
    assert_eq!(la, lb, "same seed, same losses");
    assert_ne!(la, lc, "another seed, other draws");
    // Each Svi has its own store: stepping `a` leaves `b` untouched.
    let before = param_value(&b, "alpha_q");
    a.step(&flips())?;
    assert_eq!(param_value(&b, "alpha_q"), before);
    assert_ne!(param_value(&a, "alpha_q"), param_value(&c, "alpha_q"));
    Ok(())
}

#[test]
fn save_then_load_resumes_at_the_same_loss_with_the_optimizer_state() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ppl-svi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
    let path = dir.join("coin.safetensors");
    let mut original = svi(3);
    for _ in 0..10 {
        original.step(&flips())?;
    }
    original.save(&path)?;
    let continued: Vec<f64> = (0..5).map(|_| original.step(&flips())).collect::<Result<_>>()?;
    // A fresh Svi (another seed even) loads parameters, moments, seed and step count.
    let mut resumed = svi(99);
    resumed.load(&path, &Device::Cpu)?;
    assert_eq!(resumed.step_count(), 10);
    let again: Vec<f64> = (0..5).map(|_| resumed.step(&flips())).collect::<Result<_>>()?;
    assert_eq!(continued, again, "the resumed run takes the same steps");
    assert_eq!(param_value(&original, "alpha_q"), param_value(&resumed, "alpha_q"));
    // Steps 12–15 depend on Adam's moments: equal losses mean the optimizer state was restored.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Resident set size in pages, from /proc/self/statm.
fn resident_pages() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("linux /proc");
    statm.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const CHILD_ENV: &str = "PPL_SVI_MEMORY_CHILD";

/// Runs in a child process (so other tests' threads do not disturb the measurement): 5,000
/// steps of the coin model after a warm-up, printing the growth of resident memory in KiB.
#[test]
fn memory_child() -> Result<()> {
    if std::env::var(CHILD_ENV).is_err() {
        return Ok(());
    }
    let mut s = svi(4);
    let x = flips();
    for _ in 0..500 {
        s.step(&x)?;
    }
    let before = resident_pages();
    for _ in 0..5000 {
        s.step(&x)?;
    }
    let after = resident_pages();
    println!("RSS_GROWTH_KIB={}", (after.saturating_sub(before)) * 4);
    Ok(())
}

#[test]
fn memory_stays_flat_over_five_thousand_steps() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "svi::state::memory_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("runs the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let growth: usize = stdout
        .lines()
        .find_map(|l| l.split("RSS_GROWTH_KIB=").nth(1).map(|v| v.split_whitespace().next().unwrap().parse().unwrap()))
        .unwrap_or_else(|| panic!("child printed no measurement:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    // A leak of even 100 bytes per step would add ~500 KiB; allow allocator noise below that.
    assert!(growth < 512, "resident memory grew by {growth} KiB over 5,000 steps");
}
