//! The device-generic paths (compositions of Candle ops, used off the CPU) against the CPU
//! kernels, which `special.rs` and the distribution tests check against scipy: values in f64
//! and f32, gradients, non-finite cases and errors, for the special functions and for
//! Cholesky and triangular solves on random SPD matrices. Each comparison runs the generic path
//! inside [`kernels::with_generic`], so these tests cover it with or without
//! `PPL_GENERIC_KERNELS=1` (with it, the "CPU" side is generic too and the comparisons are
//! trivially true; `special.rs` then checks the generic path against scipy).

use super::common::{assert_close, rng, t64, vec64};
use crate::dist::kernels::{self, with_generic};
use crate::dist::{linalg, special};
use candle_core::{DType, Device, Tensor, Var};

type Unary = fn(&Tensor) -> crate::Result<Tensor>;
type Binary = fn(&Tensor, &Tensor) -> crate::Result<Tensor>;

fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (n - 1) as f64)).collect()
}

fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
}

fn cat(parts: &[Vec<f64>]) -> Vec<f64> {
    parts.concat()
}

/// Points per function: the domains the distributions use, plus tails and awkward spots.
fn grid(name: &str) -> Vec<f64> {
    let neg_gamma = vec![-0.5, -1.3, -2.7, -10.2, -33.6];
    match name {
        "lgamma" | "digamma" => cat(&[logspace(-300.0, 300.0, 25), linspace(0.05, 30.0, 120), neg_gamma]),
        "trigamma" | "tetragamma" => cat(&[logspace(-8.0, 8.0, 25), linspace(0.05, 30.0, 60), neg_gamma]),
        "log1p" => cat(&[logspace(-20.0, 10.0, 30), linspace(-0.999, 3.0, 50), vec![-1e-12, -1e-5, -0.5]]),
        "expm1" => cat(&[linspace(-50.0, 50.0, 101), logspace(-20.0, 0.0, 20), vec![-1e-12, -1e-5, -700.0, 700.0]]),
        "softplus" | "log_sigmoid" => linspace(-60.0, 60.0, 121),
        "erf" | "erfc" => cat(&[linspace(-6.0, 6.0, 97), linspace(6.0, 27.0, 22), logspace(-20.0, -1.0, 10)]),
        "ndtr" | "log_ndtr" => cat(&[linspace(-38.0, 8.0, 93), vec![-1e3, -1e5, 9.0, 20.0]]),
        "erfinv" => cat(&[linspace(-0.999, 0.999, 101), logspace(-20.0, -1.0, 10), vec![1.0 - 1e-15, -1.0 + 1e-12, 0.99999]]),
        "ndtri" => cat(&[logspace(-300.0, -0.31, 40), linspace(0.01, 0.99, 50), vec![1.0 - 1e-10, 1.0 - 1e-16, 0.5]]),
        "i0e" | "i1e" | "log_i0" => cat(&[linspace(-100.0, 100.0, 101), vec![19.9, 20.0, 20.1, 1e4, -1e6, 1e-6]]),
        "atan" => cat(&[linspace(-10.0, 10.0, 81), logspace(-20.0, 20.0, 30)]),
        "tan" => linspace(-1.5, 1.5, 61),
        "logit" => cat(&[logspace(-30.0, -0.31, 30), linspace(0.01, 0.99, 30)]),
        _ => panic!("no grid for {name}"),
    }
}

/// (name, function, f64 rtol, f64 atol, f32 rtol, f32 atol) of the generic path against the
/// CPU kernel (which is exact to about 1 ulp).
const UNARY: &[(&str, Unary, f64, f64, f64, f64)] = &[
    ("lgamma", special::lgamma, 1e-13, 3e-14, 2e-6, 1e-6),
    ("digamma", special::digamma, 1e-13, 3e-15, 2e-6, 2e-7),
    ("trigamma", special::trigamma, 1e-13, 0.0, 2e-6, 0.0),
    ("tetragamma", special::tetragamma, 2e-13, 0.0, 5e-6, 0.0),
    ("log1p", special::log1p, 4e-16, 0.0, 4e-7, 0.0),
    ("expm1", special::expm1, 1e-15, 0.0, 2e-6, 0.0),
    ("softplus", special::softplus, 4e-16, 0.0, 4e-7, 0.0),
    ("log_sigmoid", special::log_sigmoid, 4e-16, 0.0, 4e-7, 0.0),
    ("erf", special::erf, 0.0, 0.0, 3e-7, 0.0),
    ("erfc", special::erfc, 2e-15, 0.0, 2e-5, 0.0),
    ("erfinv", special::erfinv, 2e-15, 0.0, 2e-6, 0.0),
    ("ndtr", special::ndtr, 2e-15, 0.0, 2e-5, 0.0),
    ("log_ndtr", special::log_ndtr, 2e-15, 0.0, 1e-5, 0.0),
    ("ndtri", special::ndtri, 1e-14, 0.0, 2e-6, 0.0),
    ("i0e", special::i0e, 3e-15, 0.0, 2e-6, 0.0),
    ("i1e", special::i1e, 3e-15, 0.0, 2e-6, 0.0),
    ("log_i0", special::log_i0, 1e-14, 1e-15, 2e-6, 1e-6),
    ("atan", special::atan, 4e-16, 0.0, 4e-7, 0.0),
    ("tan", special::tan, 1e-15, 0.0, 1e-6, 0.0),
    ("logit", special::logit, 1e-15, 1e-15, 1e-6, 1e-7),
];

/// Agreement within `|got - want| <= atol + rtol |want|` where `want` is finite, identical
/// non-finite values (same infinity, or both NaN) where it is not; returns the mismatches
/// (at most 3) so that a test can report every function at once.
fn mismatches(what: &str, x: &[f64], got: &[f64], want: &[f64], rtol: f64, atol: f64) -> Vec<String> {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad = got.iter().zip(want).enumerate().filter(|(_, (g, w))| {
        let err = (*g - *w).abs();
        if w.is_finite() { err.is_nan() || err > atol + rtol * w.abs() } else { !(g == w || (g.is_nan() && w.is_nan())) }
    });
    let at = |i: usize| x.get(i).map_or(format!("[{i}]"), |x| format!("({x:e})"));
    bad.take(3).map(|(i, (g, w))| format!("{what}{}: got {g:e}, want {w:e} (rtol {rtol:e}, atol {atol:e})", at(i))).collect()
}

fn assert_match(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    let bad = mismatches(what, &[], got, want, rtol, atol);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn special_values_match_cpu_kernels_f64_and_f32() {
    let mut bad = vec![];
    for &(name, f, rtol, atol, rtol32, atol32) in UNARY {
        let x = grid(name);
        let n = x.len();
        let xt = t64(&x, &[n]);
        let cpu = vec64(&f(&xt).unwrap());
        let gn = with_generic(|| vec64(&f(&xt).unwrap()));
        bad.extend(mismatches(&format!("{name}(f64)"), &x, &gn, &cpu, rtol, atol));
        // f32: the generic path computes in f32; compare with the f64 kernel on the same
        // (rounded) inputs, where the result is in f32's normal range.
        let x32 = xt.to_dtype(DType::F32).unwrap();
        let truth = vec64(&f(&x32.to_dtype(DType::F64).unwrap()).unwrap());
        let gen32 = with_generic(|| vec64(&f(&x32).unwrap()));
        let keep: Vec<usize> =
            (0..n).filter(|&i| truth[i] == 0.0 || !truth[i].is_finite() || (1e-30..1e30).contains(&truth[i].abs())).collect();
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<_>>();
        bad.extend(mismatches(&format!("{name}(f32)"), &pick(&x), &pick(&gen32), &pick(&truth), rtol32, atol32));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn special_non_finite_inputs_match_cpu_kernels() {
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let x = [inf, -inf, nan, 0.0, -0.0, -1.0, -3.0, 1.0, -1.0 - 1e-16];
    let xt = t64(&x, &[x.len()]);
    for &(name, f, ..) in UNARY {
        if name == "tan" {
            continue;
        }
        let cpu = vec64(&f(&xt).unwrap());
        let gn = with_generic(|| vec64(&f(&xt).unwrap()));
        assert_match(&format!("{name} at non-finite/pole inputs {x:?}"), &gn, &cpu, 1e-13, 3e-14);
    }
}

#[test]
fn special_gradients_match_cpu_kernels() {
    let mut bad = vec![];
    for &(name, f, rtol, atol, ..) in UNARY {
        if name == "tetragamma" {
            continue;
        }
        // Where the derivative overflows (a pole, or trigamma(1e-175)), the generic path's
        // gradient is NaN rather than inf: leave those points out.
        let x: Vec<f64> = grid(name).into_iter().filter(|v| v.abs() < 1e100 && v.abs() > 1e-100).collect();
        let grad = |generic: bool| {
            let run = || {
                let var = Var::from_tensor(&t64(&x, &[x.len()])).unwrap();
                let g = f(var.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
                vec64(g.get(&var).unwrap())
            };
            if generic { with_generic(run) } else { run() }
        };
        let (cpu, gn) = (grad(false), grad(true));
        // The same formula evaluated by the other path: the value tolerances, a little wider.
        // (expm1's `y + 1` cancels for x < -36 on both paths: an absolute 1e-15.)
        bad.extend(mismatches(&format!("d {name}"), &x, &gn, &cpu, rtol.max(1e-13) * 10.0, (atol * 10.0).max(1e-15)));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn binary_special_functions_match_cpu_kernels() {
    let a = cat(&[logspace(-3.0, 3.0, 13), vec![0.5, 1.0, 9.9, 10.0, 10.1, 40.0, 1e5, -0.5, 0.0, 2.0]]);
    let b = cat(&[logspace(3.0, -3.0, 13), vec![0.7, 15.0, 9.8, 12.0, 3.0, 40.0, 2.0, 1.5, 1.0, 0.0]]);
    let n = a.len();
    let cases: [(&str, Binary, f64, f64); 3] = [
        ("log_beta", special::log_beta, 1e-13, 1e-13),
        ("xlogy", special::xlogy, 4e-16, 0.0),
        ("xlog1py", special::xlog1py, 4e-16, 0.0),
    ];
    for (name, f, rtol, atol) in cases {
        let (ta, tb) = (t64(&a, &[n]), t64(&b, &[n]));
        let cpu = vec64(&f(&ta, &tb).unwrap());
        let gn = with_generic(|| vec64(&f(&ta, &tb).unwrap()));
        assert_match(name, &gn, &cpu, rtol, atol);
        let (a32, b32) = (ta.to_dtype(DType::F32).unwrap(), tb.to_dtype(DType::F32).unwrap());
        let truth = vec64(&f(&a32.to_dtype(DType::F64).unwrap(), &b32.to_dtype(DType::F64).unwrap()).unwrap());
        let gen32 = with_generic(|| vec64(&f(&a32, &b32).unwrap()));
        assert_match(&format!("{name}(f32)"), &gen32, &truth, 2e-6, 3e-6);

        // Gradients at the positive points.
        let keep: Vec<usize> = (0..n).filter(|&i| a[i] > 0.0 && b[i] > 0.0).collect();
        let (ka, kb): (Vec<f64>, Vec<f64>) = keep.iter().map(|&i| (a[i], b[i])).unzip();
        let grads = |generic: bool| {
            let run = || {
                let va = Var::from_tensor(&t64(&ka, &[ka.len()])).unwrap();
                let vb = Var::from_tensor(&t64(&kb, &[kb.len()])).unwrap();
                let g = f(va.as_tensor(), vb.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
                [vec64(g.get(&va).unwrap()), vec64(g.get(&vb).unwrap())]
            };
            if generic { with_generic(run) } else { run() }
        };
        let (cpu, gn) = (grads(false), grads(true));
        assert_match(&format!("d {name}/da"), &gn[0], &cpu[0], 1e-12, 1e-13);
        assert_match(&format!("d {name}/db"), &gn[1], &cpu[1], 1e-12, 1e-13);
    }
}

#[test]
fn generic_path_errors_like_the_kernels() {
    with_generic(|| {
        assert!(kernels::force_generic() && !kernels::cpu_kernels(&Device::Cpu));
        let ints = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        let err = special::lgamma(&ints).unwrap_err().to_string();
        assert!(err.contains("lgamma") && err.contains("f32 or f64"), "{err}");
        // tetragamma has no gradient: an error, not a silent zero.
        let var = Var::from_tensor(&t64(&[1.5], &[1])).unwrap();
        let err = special::tetragamma(var.as_tensor()).unwrap_err().to_string();
        assert!(err.contains("tetragamma") && err.contains("no gradient"), "{err}");
    });
}

#[test]
fn with_generic_is_scoped_to_the_closure() {
    let before = kernels::force_generic();
    let inner = with_generic(|| with_generic(kernels::force_generic) && kernels::force_generic());
    assert!(inner);
    assert_eq!(kernels::force_generic(), before);
    let _ = std::panic::catch_unwind(|| with_generic(|| panic!("restores on unwind")));
    assert_eq!(kernels::force_generic(), before);
}

// -------------------------------------------------------------------------------------------
// Linear algebra

/// A batch `[batch.., n, n]` of random SPD matrices `M Mᵀ + n I` (f64).
fn random_spd(seed: u64, batch: &[usize], n: usize) -> Tensor {
    let mut r = rng(seed);
    let shape = [batch, &[n, n]].concat();
    let m = r.normal_tensor(&shape, DType::F64, &Device::Cpu).unwrap();
    let eye = linalg::eye_like(n, &m).unwrap();
    (linalg::bmm(&m, &linalg::mt(&m).unwrap()).unwrap().broadcast_add(&(eye * n as f64).unwrap())).unwrap()
}

fn random(seed: u64, shape: &[usize]) -> Tensor {
    rng(seed).normal_tensor(shape, DType::F64, &Device::Cpu).unwrap()
}

/// Values and gradients of `Σ w ⊙ f(inputs)` on the CPU kernel and on the generic path.
fn both_paths(inputs: &[Tensor], w: &Tensor, f: &dyn Fn(&[Tensor]) -> Tensor) -> [(Vec<f64>, Vec<Vec<f64>>); 2] {
    let run = || {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts);
        let g = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
        (vec64(&y), vars.iter().map(|v| vec64(g.get(v).unwrap())).collect())
    };
    [run(), with_generic(run)]
}

fn assert_paths_agree(what: &str, [cpu, gn]: [(Vec<f64>, Vec<Vec<f64>>); 2], rtol: f64, atol: f64) {
    assert_close(&format!("{what} value"), &gn.0, &cpu.0, rtol, atol);
    for (i, (g, c)) in gn.1.iter().zip(&cpu.1).enumerate() {
        assert_close(&format!("{what} gradient of input {i}"), g, c, rtol, atol);
    }
}

#[test]
fn cholesky_generic_matches_kernel_values_and_gradients() {
    for (seed, batch, n) in [(1, vec![2, 3], 4), (2, vec![], 1), (3, vec![], 6)] {
        let a = random_spd(seed, &batch, n);
        let w = random(seed + 100, a.dims());
        let paths = both_paths(std::slice::from_ref(&a), &w, &|t| linalg::cholesky(&t[0]).unwrap());
        // Independent check of the generic factor: L Lᵀ reproduces A, L is lower triangular.
        let l = t64(&paths[1].0, a.dims());
        let llt = linalg::bmm(&l, &linalg::mt(&l).unwrap()).unwrap();
        assert_close("L Lᵀ = A", &vec64(&llt), &vec64(&a), 1e-13, 1e-13);
        assert_close("L lower", &vec64(&linalg::triu(&l, 1).unwrap()), &vec![0.0; a.elem_count()], 0.0, 0.0);
        // The gradient is symmetric on both paths.
        let g = t64(&paths[1].1[0], a.dims());
        assert_close("symmetric gradient", &vec64(&linalg::mt(&g).unwrap()), &vec64(&g), 1e-12, 1e-14);
        assert_paths_agree(&format!("cholesky n={n}"), paths, 1e-11, 1e-13);
    }
    // f32 values: within f32 accuracy of the f64 kernel.
    let a = random_spd(7, &[3], 5);
    let cpu = vec64(&linalg::cholesky(&a).unwrap());
    let gen32 = with_generic(|| vec64(&linalg::cholesky(&a.to_dtype(DType::F32).unwrap()).unwrap()));
    assert_close("cholesky f32", &gen32, &cpu, 1e-5, 1e-6);
}

#[test]
fn cholesky_generic_reads_the_lower_triangle_and_reports_indefinite_matrices() {
    let a = random_spd(11, &[2], 3);
    // Garbage above the diagonal is ignored, as by the kernel.
    let junk = (linalg::triu(&random(12, &[2, 3, 3]), 1).unwrap() + linalg::tril(&a, 0).unwrap()).unwrap();
    let cpu = vec64(&linalg::cholesky(&junk).unwrap());
    let gn = with_generic(|| vec64(&linalg::cholesky(&junk).unwrap()));
    assert_close("lower triangle only", &gn, &cpu, 1e-13, 1e-14);
    // Matrix 1 of the batch has a negative second pivot.
    let bad = t64(&[4.0, 0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 1.0], &[2, 2, 2]);
    let cpu = linalg::cholesky(&bad).unwrap_err().to_string();
    let gn = with_generic(|| linalg::cholesky(&bad).unwrap_err().to_string());
    assert!(gn.contains("matrix 1 of the batch") && gn.contains("pivot 1 is -3"), "{gn}");
    if !kernels::force_generic() {
        assert_eq!(gn, cpu);
    }
}

#[test]
fn solve_triangular_generic_matches_kernel_values_and_gradients() {
    for (lower, left) in [(true, true), (false, true), (true, false), (false, false)] {
        let l = linalg::cholesky(&random_spd(20, &[2], 4)).unwrap();
        let l = if lower { l } else { linalg::mt(&l).unwrap().contiguous().unwrap() };
        // Broadcast batch: b has an extra leading dim.
        let b = random(21, if left { &[3, 2, 4, 5] } else { &[3, 2, 5, 4] });
        let w = random(22, b.dims());
        let paths = both_paths(&[l.clone(), b.clone()], &w, &|t| linalg::solve_triangular(&t[0], &t[1], lower, left).unwrap());
        // Independent check: L X = B (or X L = B).
        let x = t64(&paths[1].0, b.dims());
        let lb = l.broadcast_as(&[3, 2, 4, 4][..]).unwrap();
        let back = if left { linalg::bmm(&lb, &x) } else { linalg::bmm(&x, &lb) }.unwrap();
        assert_close("L X = B", &vec64(&back), &vec64(&b), 1e-12, 1e-12);
        assert_paths_agree(&format!("solve_triangular lower={lower} left={left}"), paths, 1e-11, 1e-12);
    }
    // The composites built on the two ops, generic against kernel.
    let a = random_spd(30, &[2], 3);
    let x = random(31, &[5, 2, 3]);
    let w = random(32, &[5, 2]);
    let paths = both_paths(&[a, x], &w, &|t| {
        let l = linalg::cholesky(&t[0]).unwrap();
        linalg::batch_mahalanobis(&l, &t[1]).unwrap().broadcast_add(&linalg::log_det_from_cholesky(&l).unwrap()).unwrap()
    });
    assert_paths_agree("mahalanobis + log det", paths, 1e-11, 1e-12);
}

#[test]
fn solve_triangular_generic_reports_singular_matrices() {
    let l = t64(&[1.0, 0.0, 0.0, 2.0, 1.0, 0.0, 3.0, 0.0], &[2, 2, 2]);
    let b = t64(&[1.0, 2.0, 3.0, 4.0], &[2, 2, 1]);
    let gn = with_generic(|| linalg::solve_triangular(&l, &b, true, true).unwrap_err().to_string());
    assert!(gn.contains("matrix 1 of the batch") && gn.contains("diagonal element 1 is 0"), "{gn}");
    if !kernels::force_generic() {
        assert_eq!(gn, linalg::solve_triangular(&l, &b, true, true).unwrap_err().to_string());
    }
}
