//! ppl::nn: gradients of the layers, activations and fused kernels against finite differences,
//! the CPU kernels against the device-generic (composed Candle ops) path and against ppl's
//! distributions, seeded initialisation, and layers' parameters in the ParamStore.

use ppl::dist::kernels::with_generic;
use ppl::dist::{Bernoulli, Categorical, Distribution, DistributionExt, Normal, kl_divergence};
use ppl::nn::{self, Activation, Linear, Mlp, fused};
use ppl::prelude::*;
use ppl::rng::Rng;

pub(crate) fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

pub(crate) fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    rng.normal_tensor(shape, DType::F64, &Device::Cpu).unwrap()
}

pub(crate) fn vals(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

pub(crate) fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
    }
}

/// Checks the gradient of `f(inputs).sum()` with respect to each input flagged in `check`
/// against central finite differences (f64).
pub(crate) fn check_grads(inputs: &[Tensor], check: &[bool], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let args: Vec<Tensor> = vars
        .iter()
        .zip(check)
        .map(|(v, &c)| if c { v.as_tensor().clone() } else { v.as_tensor().detach() })
        .collect();
    let grads = f(&args).unwrap().sum_all().unwrap().backward().unwrap();
    let h = 1e-6;
    for (k, input) in inputs.iter().enumerate() {
        if !check[k] {
            continue;
        }
        let g = vals(grads.get(vars[k].as_tensor()).unwrap_or_else(|| panic!("no gradient for input {k}")));
        let base = vals(input);
        for i in 0..base.len() {
            let eval = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                let mut a = inputs.to_vec();
                a[k] = t64(&v, input.dims());
                f(&a).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h);
            assert!((g[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()), "input {k} element {i}: gradient {} vs finite difference {fd}", g[i]);
        }
    }
}

/// Values and gradients of `f` through the CPU kernel and through the generic path agree.
pub(crate) fn check_paths(inputs: &[Tensor], fast: impl Fn(&[Tensor]) -> Result<Tensor>, generic: impl Fn(&[Tensor]) -> Result<Tensor>, tol: f64) {
    let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&args).unwrap();
        // A non-uniform output weighting, so every gradient path is exercised.
        let w = Tensor::arange(0u32, y.elem_count() as u32, &Device::Cpu).unwrap().to_dtype(y.dtype()).unwrap().reshape(y.dims()).unwrap();
        let w = ((w * 0.37).unwrap().sin().unwrap() + 1.1).unwrap();
        let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Vec<f64>> = vars.iter().map(|v| grads.get(v.as_tensor()).map(vals).unwrap_or_default()).collect();
        (vals(&y), g)
    };
    let (y1, g1) = run(&fast);
    let (y2, g2) = run(&generic);
    assert_close(&y1, &y2, tol, "value");
    for (k, (a, b)) in g1.iter().zip(&g2).enumerate() {
        assert_close(a, b, tol, &format!("gradient of input {k}"));
    }
}

#[test]
fn linear_gradients_match_finite_differences() {
    let mut rng = Rng::seed_from_u64(1);
    let (x, w, b) = (randn(&mut rng, &[2, 3, 4]), randn(&mut rng, &[4, 5]), randn(&mut rng, &[5]));
    check_grads(&[x.clone(), w.clone(), b.clone()], &[true, true, true], |a| Ok(nn::linear(&a[0], &a[1], Some(&a[2]))?.sin()?));
    check_grads(&[x, w], &[true, true], |a| Ok(nn::linear(&a[0], &a[1], None)?.sin()?));
}

#[test]
fn linear_never_computes_a_gradient_for_data() -> Result<()> {
    let mut rng = Rng::seed_from_u64(2);
    let x = randn(&mut rng, &[6, 4]);
    let w = Var::from_tensor(&randn(&mut rng, &[4, 3]))?;
    let b = Var::from_tensor(&randn(&mut rng, &[3]))?;
    let grads = nn::linear(&x, w.as_tensor(), Some(b.as_tensor()))?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none(), "a gradient was computed for data");
    assert!(grads.get(w.as_tensor()).is_some() && grads.get(b.as_tensor()).is_some());
    // With x a Var the same call does produce its gradient: dΣ/dx = row sums of w.
    let xv = Var::from_tensor(&x)?;
    let grads = nn::linear(xv.as_tensor(), w.as_tensor(), Some(b.as_tensor()))?.sum_all()?.backward()?;
    let gx = vals(grads.get(xv.as_tensor()).expect("gradient of a Var input"));
    let row_sums = vals(&w.as_tensor().sum(1)?);
    for (i, g) in gx.iter().enumerate() {
        assert!((g - row_sums[i % 4]).abs() < 1e-12);
    }
    Ok(())
}

#[test]
fn linear_kernel_agrees_with_the_generic_path() {
    for dtype in [DType::F32, DType::F64] {
        let mut rng = Rng::seed_from_u64(3);
        let ins: Vec<Tensor> = [&[128usize, 70][..], &[70, 33], &[33]].iter().map(|s| randn(&mut rng, s).to_dtype(dtype).unwrap()).collect();
        let tol = if dtype == DType::F32 { 1e-4 } else { 1e-10 };
        check_paths(&ins, |a| nn::linear(&a[0], &a[1], Some(&a[2])), |a| nn::linear_generic(&a[0], &a[1], Some(&a[2])), tol);
        // A transposed (non-contiguous) input and one-dim input.
        let xt = ins[0].t().unwrap().contiguous().unwrap().t().unwrap();
        assert_close(&vals(&nn::linear(&xt, &ins[1], Some(&ins[2])).unwrap()), &vals(&nn::linear_generic(&ins[0], &ins[1], Some(&ins[2])).unwrap()), tol, "strided x");
        let x1 = ins[0].get(5).unwrap();
        assert_eq!(nn::linear(&x1, &ins[1], Some(&ins[2])).unwrap().dims(), &[33]);
    }
}

#[test]
fn linear_shape_errors_name_both_shapes() {
    let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((5, 2), DType::F32, &Device::Cpu).unwrap();
    let e = nn::linear(&x, &w, None).unwrap_err().to_string();
    assert!(e.contains("[.., 5]") && e.contains("[4, 3]"), "{e}");
    let w = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let e = nn::linear(&x, &w, Some(&b)).unwrap_err().to_string();
    assert!(e.contains("bias") && e.contains("[2]") && e.contains("[3]"), "{e}");
    let b64 = Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap();
    assert!(nn::linear(&x, &w, Some(&b64)).unwrap_err().to_string().contains("mixed dtypes"));
}

const ACTIVATIONS: [Activation; 5] = [Activation::Softplus, Activation::Relu, Activation::Sigmoid, Activation::Tanh, Activation::Elu(0.7)];

#[test]
fn activations_match_finite_differences_and_the_generic_path() {
    // Points away from relu/elu's kink at 0 for finite differences; large |x| for softplus.
    let x = t64(&[-40.0, -3.1, -0.7, -0.01, 0.02, 0.9, 2.5, 35.0], &[2, 4]);
    for a in ACTIVATIONS {
        check_grads(std::slice::from_ref(&x), &[true], |i| a.apply(&i[0]));
        check_paths(std::slice::from_ref(&x), |i| a.apply(&i[0]), |i| a.apply_generic(&i[0]), 1e-12);
    }
    // Large f32 inputs take the threaded path; and x = 0 exactly (the gradient conventions agree).
    let mut rng = Rng::seed_from_u64(4);
    let big = (randn(&mut rng, &[300, 200]) * 3.0).unwrap().to_dtype(DType::F32).unwrap();
    let zero = Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap();
    for a in ACTIVATIONS {
        check_paths(std::slice::from_ref(&big), |i| a.apply(&i[0]), |i| a.apply_generic(&i[0]), 2e-6);
        check_paths(std::slice::from_ref(&zero), |i| a.apply(&i[0]), |i| a.apply_generic(&i[0]), 1e-12);
    }
}

#[test]
fn activations_against_closed_forms() -> Result<()> {
    let x = t64(&[-800.0, -2.0, 0.0, 1.5, 800.0], &[5]);
    let sp = vals(&nn::softplus(&x)?);
    // log(1 + e^x): e^-800 underflows, softplus(800) = 800 without overflow.
    let want = [0.0, (1.0 + (-2f64).exp()).ln(), 2f64.ln(), (1.0 + 1.5f64.exp()).ln(), 800.0];
    assert_close(&sp, &want, 1e-15, "softplus");
    assert_close(&vals(&nn::sigmoid(&x)?), &[0.0, 1.0 / (1.0 + 2f64.exp()), 0.5, 1.0 / (1.0 + (-1.5f64).exp()), 1.0], 1e-15, "sigmoid");
    assert_close(&vals(&nn::elu(&x, 2.0)?), &[-2.0, 2.0 * ((-2f64).exp() - 1.0), 0.0, 1.5, 800.0], 1e-15, "elu");
    Ok(())
}

#[test]
fn fused_kernels_match_finite_differences() {
    let mut rng = Rng::seed_from_u64(5);
    let logits = randn(&mut rng, &[3, 4]);
    let bits = t64(&[1., 0., 0., 1., 1., 1., 0., 0., 1., 0., 1., 0.], &[3, 4]);
    for e in [0, 1, 2] {
        check_grads(&[logits.clone(), bits.clone()], &[true, true], |a| fused::bernoulli_logits_log_prob(&a[0], &a[1], e));
    }
    let (v, m) = (randn(&mut rng, &[3, 4]), randn(&mut rng, &[4]));
    let s = (randn(&mut rng, &[3, 1]).exp().unwrap() + 0.1).unwrap();
    check_grads(&[v.clone(), m.clone(), s.clone()], &[true, true, true], |a| fused::normal_log_prob(&a[0], &a[1], &a[2], 1));
    let (mq, sq) = (randn(&mut rng, &[3, 4]), (randn(&mut rng, &[3, 4]).exp().unwrap() + 0.1).unwrap());
    check_grads(&[v, s, mq, sq], &[true, true, true, true], |a| fused::normal_kl(&a[0], &a[1], &a[2], &a[3], 1));
    let cl = randn(&mut rng, &[2, 3, 5]);
    let idx = t64(&[4., 0., 2., 1., 3., 4.], &[2, 3]);
    for e in [0, 1] {
        check_grads(&[cl.clone(), idx.clone()], &[true, false], |a| fused::categorical_logits_log_prob(&a[0], &a[1], e));
    }
}

#[test]
fn fused_kernels_agree_with_the_distributions() -> Result<()> {
    // The distributions take the fused kernels themselves on the CPU: compare with their
    // composed-op path.
    let mut rng = Rng::seed_from_u64(6);
    let logits = (randn(&mut rng, &[4, 6]) * 4.0)?;
    let bits = randn(&mut rng, &[4, 6]).gt(0.0)?.to_dtype(DType::F64)?;
    let want = with_generic(|| Bernoulli::from_logits(&logits)?.to_event(1)?.log_prob(&bits))?;
    assert_close(&vals(&fused::bernoulli_logits_log_prob(&logits, &bits, 1)?), &vals(&want), 1e-12, "bernoulli");

    let (v, m) = (randn(&mut rng, &[4, 6]), randn(&mut rng, &[6]));
    let s = randn(&mut rng, &[4, 6]).exp()?;
    let want = with_generic(|| Normal::new(&m, &s)?.to_event(1)?.log_prob(&v))?;
    assert_close(&vals(&fused::normal_log_prob(&v, &m, &s, 1)?), &vals(&want), 1e-12, "normal");

    let (mq, sq) = (randn(&mut rng, &[4, 6]), randn(&mut rng, &[4, 6]).exp()?);
    let want = with_generic(|| kl_divergence(&Normal::new(&m, &s)?, &Normal::new(&mq, &sq)?))?.sum(1)?;
    assert_close(&vals(&fused::normal_kl(&m, &s, &mq, &sq, 1)?), &vals(&want), 1e-12, "kl");

    let cl = randn(&mut rng, &[4, 6, 3]);
    let idx = t64(&[0., 1., 2., 2., 1., 0., 1., 1., 0., 2., 2., 0., 1., 0., 0., 2., 1., 2., 0., 1., 2., 0., 0., 1.], &[4, 6]);
    let want = with_generic(|| Categorical::from_logits(&cl)?.log_prob(&idx))?.sum(1)?;
    assert_close(&vals(&fused::categorical_logits_log_prob(&cl, &idx, 1)?), &vals(&want), 1e-12, "categorical");
    // Published value: scipy.stats.norm(0.5, 2).logpdf(1.5) = -1.737085713764618.
    let lp = fused::normal_log_prob(&t64(&[1.5], &[1]), &t64(&[0.5], &[1]), &t64(&[2.0], &[1]), 0)?;
    assert!((vals(&lp)[0] + 1.737085713764618).abs() < 1e-14);
    Ok(())
}

#[test]
fn fused_kernels_agree_with_the_generic_path() {
    // f32 at the VAE's shapes (threaded), f64 at small ones; broadcast scale and prior.
    for (dtype, rows, cols, tol) in [(DType::F32, 128, 784, 1e-4), (DType::F64, 5, 7, 1e-12)] {
        let mut rng = Rng::seed_from_u64(7);
        let r = |rng: &mut Rng, s: &[usize]| randn(rng, s).to_dtype(dtype).unwrap();
        let logits = (r(&mut rng, &[rows, cols]) * 3.0).unwrap();
        let bits = r(&mut rng, &[rows, cols]).gt(0.5).unwrap().to_dtype(dtype).unwrap();
        check_paths(&[logits.clone(), bits], |a| fused::bernoulli_logits_log_prob(&a[0], &a[1], 1), |a| fused::bernoulli_logits_log_prob_generic(&a[0], &a[1], 1), tol);
        let (v, m, s) = (r(&mut rng, &[rows, cols]), r(&mut rng, &[rows, cols]), r(&mut rng, &[1, cols]).exp().unwrap());
        check_paths(&[v.clone(), m.clone(), s.clone()], |a| fused::normal_log_prob(&a[0], &a[1], &a[2], 1), |a| fused::normal_log_prob_generic(&a[0], &a[1], &a[2], 1), tol);
        let (mq, sq) = (r(&mut rng, &[cols]), r(&mut rng, &[rows, cols]).exp().unwrap());
        check_paths(&[m, s, mq, sq], |a| fused::normal_kl(&a[0], &a[1], &a[2], &a[3], 2), |a| fused::normal_kl_generic(&a[0], &a[1], &a[2], &a[3], 2), tol);
        let cl = r(&mut rng, &[rows, 3, 10]);
        let idx = (r(&mut rng, &[rows, 3]).abs().unwrap() * 3.0).unwrap().floor().unwrap().clamp(0.0, 9.0).unwrap();
        check_paths(&[cl], |a| fused::categorical_logits_log_prob(&a[0], &idx, 1), |a| fused::categorical_logits_log_prob_generic(&a[0], &idx, 1), tol);
    }
}

#[test]
fn fused_kernel_errors_are_named() {
    let l = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    let e = fused::bernoulli_logits_log_prob(&l, &x, 1).unwrap_err().to_string();
    assert!(e.contains("bernoulli_logits_log_prob") && e.contains("[2, 4]"), "{e}");
    let e = fused::bernoulli_logits_log_prob(&l, &l, 3).unwrap_err().to_string();
    assert!(e.contains("event_dims"), "{e}");
    let bad = Tensor::new(&[0f32, 3.0], &Device::Cpu).unwrap();
    let e = fused::categorical_logits_log_prob(&l, &bad, 0).unwrap_err().to_string();
    assert!(e.contains("element 1 is 3") && e.contains("0..3"), "{e}");
}

#[test]
fn seeded_initialisation_is_reproducible_with_the_right_bounds_and_variance() -> Result<()> {
    let (i, o) = (400, 300);
    let make = |seed: u64| -> Result<Vec<f64>> {
        let store = ParamStore::new();
        store.scope(|| handlers::seed(seed, || Linear::new("fc", i, o).forward(&Tensor::zeros((1, i), DType::F32, &Device::Cpu)?)))?;
        Ok(vals(&store.get("fc.weight")?.unwrap()))
    };
    let (a, b, c) = (make(3)?, make(3)?, make(4)?);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Uniform(-1/√in, 1/√in): every draw inside; variance bound²/3 within 4 standard errors
    // (the variance of x² for that uniform is bound⁴ (1/5 - 1/9)).
    let bound = 1.0 / (i as f64).sqrt();
    assert!(a.iter().all(|w| w.abs() <= bound));
    let n = a.len() as f64;
    let var = a.iter().map(|w| w * w).sum::<f64>() / n;
    let se = bound.powi(2) * (1.0f64 / 5.0 - 1.0 / 9.0).sqrt() / n.sqrt();
    assert!((var - bound * bound / 3.0).abs() < 4.0 * se, "variance {var} vs {}", bound * bound / 3.0);

    // candle-nn layers through the seeded VarBuilder: reproducible, and Kaiming-normal
    // (candle-nn's default, std √2/√in) for the weight.
    let weights = |seed: u64| -> Result<Vec<f64>> {
        let vars = candle_nn::VarMap::new();
        let vb = nn::init::var_builder(&vars, DType::F32, &Device::Cpu);
        let fc = handlers::seed(seed, || candle_nn::linear(i, o, vb.pp("fc")))?;
        assert_eq!(vars.all_vars().len(), 2);
        Ok(vals(fc.weight()))
    };
    let (a, b) = (weights(9)?, weights(9)?);
    assert_eq!(a, b);
    let var = a.iter().map(|w| w * w).sum::<f64>() / n;
    let want = 2.0 / i as f64;
    // Var of x² for a normal with variance s²: 2 s⁴.
    assert!((var - want).abs() < 4.0 * want * (2.0 / n).sqrt(), "variance {var} vs {want}");
    Ok(())
}

#[test]
fn layer_parameters_train_save_and_load_through_the_param_store() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ppl-nn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ppl::Error::invalid_arg("test", "dir", e.to_string()))?;
    let path = dir.join("mlp.safetensors");
    let mlp = Mlp::new("net", &[3, 8, 2])?.hidden_activation(Activation::Tanh);
    let x = t64(&[0.1, -0.4, 2.0, 1.0, 0.0, -1.0], &[2, 3]);
    let store = ParamStore::new();
    let y = store.scope(|| handlers::seed(0, || mlp.forward(&x)))?;
    assert_eq!(store.names(), ["net.0.weight", "net.0.bias", "net.1.weight", "net.1.bias"]);
    assert_eq!(store.get("net.0.weight")?.unwrap().dims(), &[3, 8]);
    // Gradients reach the store's Vars.
    let grads = y.sum_all()?.backward()?;
    for (name, var) in store.vars() {
        assert!(grads.get(var.as_tensor()).is_some(), "no gradient for {name}");
    }
    store.save(&path)?;
    let other = ParamStore::new();
    other.load(&path, &Device::Cpu)?;
    // A different seed would give different weights: the loaded ones must win.
    let y2 = other.scope(|| handlers::seed(1, || mlp.forward(&x)))?;
    assert_eq!(vals(&y), vals(&y2));
    // A stored parameter of the wrong shape is an error naming the layer.
    let wrong = Linear::new("net.0", 3, 9);
    let e = other.scope(|| wrong.forward(&x)).unwrap_err().to_string();
    assert!(e.contains("net.0") && e.contains("[3, 9]") && e.contains("[3, 8]"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
