//! Optimizers: closed-form trajectories under a constant gradient, the fused CPU kernel against
//! the composed-ops path, lazily created state, per-parameter options and schedulers.

use ppl::optim::Optimizer;
use ppl::prelude::*;

/// A store with `w = [0, 0]`.
fn store() -> ParamStore {
    let s = ParamStore::new();
    s.set("w", &Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap(), Constraint::Real).unwrap();
    s
}

/// The gradient of the linear loss `g · w` is the constant `g`.
const G: [f64; 2] = [0.5, -2.0];

fn step_linear(opt: &mut dyn Optimizer, s: &ParamStore, name: &str) -> Result<()> {
    let w = s.get_unconstrained(name).unwrap();
    let g = Tensor::new(&G, &Device::Cpu)?;
    let loss = (w.as_tensor() * g)?.sum_all()?;
    opt.step(s, &loss.backward()?)
}

fn values(s: &ParamStore, name: &str) -> Vec<f64> {
    s.get(name).unwrap().unwrap().to_vec1::<f64>().unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

/// Runs `t` steps of `opt` (fused and generic) from zero under the constant gradient and
/// compares with `expected(t, g)`, the closed-form position.
fn check_closed_form<C: Rule>(opt: impl Fn() -> Fused<C>, expected: impl Fn(u32, f64) -> f64) -> Result<()> {
    for generic in [false, true] {
        let s = store();
        let mut o = opt().generic_kernels(generic);
        for t in 1..=20u32 {
            step_linear(&mut o, &s, "w")?;
            let want: Vec<f64> = G.iter().map(|&g| expected(t, g)).collect();
            let got = values(&s, "w");
            assert!(close(&got, &want, 1e-9), "{} (generic {generic}) step {t}: {got:?} vs {want:?}", C::NAME);
        }
    }
    Ok(())
}

#[test]
fn each_optimizer_follows_its_closed_form_under_a_constant_gradient() -> Result<()> {
    // Adam: bias-corrected moments equal g and g², so each step moves lr·g/(|g| + eps).
    let eps = 1e-8;
    check_closed_form(|| Adam::new(0.1), |t, g| -(t as f64) * 0.1 * g / (g.abs() + eps))?;
    // ClippedAdam clamps g to ±1 here and decays the learning rate: Σ_k lr·lrd^k.
    let clipped = || ClippedAdam::with_config(ClippedAdamConfig { lr: 0.1, clip_norm: 1.0, lrd: 0.9, ..Default::default() });
    check_closed_form(clipped, |t, g| {
        let gc = g.clamp(-1.0, 1.0);
        -(1..=t).map(|k| 0.1 * 0.9f64.powi(k as i32)).sum::<f64>() * gc / (gc.abs() + eps)
    })?;
    // AdamW: w ← w·(1 − lr·λ) − lr·sign(g).
    check_closed_form(|| AdamW::with_config(AdamWConfig { lr: 0.1, weight_decay: 0.5, ..Default::default() }), |t, g| {
        (0..t).fold(0.0, |w, _| w * (1.0 - 0.05) - 0.1 * g / (g.abs() + eps))
    })?;
    // SGD: w = −t·lr·g; with momentum μ the k-th step moves lr·g·(1 − μ^k)/(1 − μ); Nesterov adds μ·buf.
    check_closed_form(|| Sgd::new(0.1), |t, g| -(t as f64) * 0.1 * g)?;
    let mu: f64 = 0.9;
    let buf = |k: u32| (1.0 - mu.powi(k as i32)) / (1.0 - mu);
    check_closed_form(|| Sgd::with_config(SgdConfig { lr: 0.1, momentum: mu, ..Default::default() }), |t, g| {
        -(1..=t).map(|k| 0.1 * g * buf(k)).sum::<f64>()
    })?;
    check_closed_form(
        || Sgd::with_config(SgdConfig { lr: 0.1, momentum: mu, nesterov: true, ..Default::default() }),
        |t, g| -(1..=t).map(|k| 0.1 * g * (1.0 + mu * buf(k))).sum::<f64>(),
    )?;
    // RMSprop: the squared average after k steps is (1 − α^k)·g².
    let alpha: f64 = 0.99;
    check_closed_form(|| RmsProp::new(0.01), |t, g| {
        -(1..=t).map(|k| 0.01 * g / ((1.0 - alpha.powi(k as i32)).sqrt() * g.abs() + 1e-8)).sum::<f64>()
    })?;
    Ok(())
}

#[test]
fn fused_and_generic_paths_agree_on_a_quadratic_in_f32() -> Result<()> {
    fn run<C: Rule>(mut o: Fused<C>) -> Result<Vec<f32>> {
        let s = ParamStore::new();
        s.set("w", &Tensor::new(&[1.5f32, -0.5, 3.0], &Device::Cpu)?, Constraint::Real)?;
        let w = s.get_unconstrained("w").unwrap();
        for _ in 0..50 {
            let loss = (w.as_tensor().sqr()?.sum_all()? + w.as_tensor().sum_all()?)?;
            o.step(&s, &loss.backward()?)?;
        }
        Ok(w.as_tensor().to_vec1::<f32>()?)
    }
    fn both<C: Rule>(make: impl Fn() -> Fused<C>) -> Result<()> {
        let (a, b) = (run(make().generic_kernels(false))?, run(make().generic_kernels(true))?);
        // The kernel computes in f64, the composed ops in f32.
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4), "{}: {a:?} vs {b:?}", C::NAME);
        Ok(())
    }
    both(|| Adam::new(0.05))?;
    both(|| ClippedAdam::with_config(ClippedAdamConfig { lr: 0.05, clip_norm: 1.0, lrd: 0.99, ..Default::default() }))?;
    both(|| AdamW::new(0.05))?;
    both(|| Sgd::with_config(SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.1, ..Default::default() }))?;
    both(|| RmsProp::with_config(RmsPropConfig { lr: 0.01, momentum: 0.5, ..Default::default() }))?;
    Ok(())
}

#[test]
fn state_is_created_per_parameter_name_and_options_per_name() -> Result<()> {
    let s = store();
    let mut adam = Adam::new(0.1).per_param(|name| AdamConfig { lr: if name == "v" { 0.01 } else { 0.1 }, ..Default::default() });
    step_linear(&mut adam, &s, "w")?;
    // A parameter created mid-training gets its own state, with its own options.
    s.set("v", &Tensor::zeros(2, DType::F64, &Device::Cpu)?, Constraint::Real)?;
    step_linear(&mut adam, &s, "v")?;
    assert_eq!((adam.steps_of("w"), adam.steps_of("v")), (1, 1));
    let v = values(&s, "v");
    assert!(close(&v, &[-0.01, 0.01], 1e-6), "first Adam step moves lr = 0.01 against the gradient: {v:?}");
    // A parameter replaced with another shape starts afresh.
    s.remove("w");
    s.set("w", &Tensor::zeros(3, DType::F64, &Device::Cpu)?, Constraint::Real)?;
    let w = s.get_unconstrained("w").unwrap();
    let loss = w.as_tensor().sum_all()?;
    adam.step(&s, &loss.backward()?)?;
    assert_eq!(adam.steps_of("w"), 1);
    Ok(())
}

#[test]
fn schedulers_scale_the_learning_rate() -> Result<()> {
    // SGD under a constant gradient moves lr·factor(t)·g at step t.
    let s = store();
    let mut o = Scheduled::new(Sgd::new(0.1), ExponentialLr { gamma: 0.5 });
    for _ in 0..3 {
        step_linear(&mut o, &s, "w")?;
    }
    let want: Vec<f64> = G.iter().map(|g| -0.1 * g * (1.0 + 0.5 + 0.25)).collect();
    assert!(close(&values(&s, "w"), &want, 1e-12));

    let s = store();
    let mut o = Scheduled::new(Sgd::new(0.1), StepLr { step_size: 2, gamma: 0.1 });
    for _ in 0..4 {
        step_linear(&mut o, &s, "w")?;
    }
    let want: Vec<f64> = G.iter().map(|g| -0.1 * g * (1.0 + 1.0 + 0.1 + 0.1)).collect();
    assert!(close(&values(&s, "w"), &want, 1e-12));

    let mut plateau = ReduceLrOnPlateau::new(2);
    let factors: Vec<f64> = (0..6).map(|t| plateau.factor(t, Some(1.0))).collect();
    assert_eq!(factors, [1.0, 1.0, 1.0, 0.1, 0.1, 0.1], "a flat loss is cut after `patience` steps");

    let mut cycle = OneCycleLr::new(100);
    assert!((cycle.factor(0, None) - 1.0 / 25.0).abs() < 1e-12);
    assert!((cycle.factor(29, None) - 1.0).abs() < 1e-12, "peak at pct_start");
    assert!((cycle.factor(99, None) - 1.0 / 25e4).abs() < 1e-12);
    Ok(())
}
