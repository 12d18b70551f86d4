//! `log_prob` has shape `broadcast(batch_shape, value batch dims)` for EVERY distribution, whatever
//! the form of its parameters: numbers, rank-0 tensors (the constant fast paths), or tensors with
//! a `[3, 1]` batch (the general path, with `Var`s so that no fast path applies). Each form is run
//! through expanded-batch × scalar-value and `[3, 1]`-batch × `[3]`-value cases, and the values are
//! compared with the unexpanded distribution's (whose correctness the fixture tests establish).

use super::common::{t64, vec64};
use crate::dist::transforms::ExpTransform;
use crate::dist::*;
use crate::Result;
use candle_core::{DType, Device, Tensor, Var};
use std::sync::Arc;

/// A distribution built from its parameters; `params` have their unbatched shapes.
type Make = fn(&[Arg]) -> Result<DistRef>;

struct Case {
    name: &'static str,
    params: Vec<Tensor>,
    make: Make,
    /// Three values, shape `[3] ++ event_shape`.
    value: Tensor,
}

fn s(x: f64) -> Tensor {
    Tensor::new(x, &Device::Cpu).unwrap()
}

fn case(name: &'static str, params: Vec<Tensor>, make: Make, value: Tensor) -> Case {
    Case { name, params, make, value }
}

fn cases() -> Vec<Case> {
    let v3 = |a: f64, b: f64, c: f64| t64(&[a, b, c], &[3]);
    let simplex = t64(&[0.2, 0.3, 0.5, 0.6, 0.1, 0.3, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0], &[3, 3]);
    let onehot = t64(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0], &[3, 3]);
    let probs3 = t64(&[0.2, 0.3, 0.5], &[3]);
    let lkj_value = t64(&[1.0, 0.0, 0.6, 0.8, 1.0, 0.0, -0.28, 0.96, 1.0, 0.0, 0.0, 1.0], &[3, 2, 2]);
    vec![
        case("Normal", vec![s(0.3), s(1.5)], |p| Ok(Normal::new(p[0].clone(), p[1].clone())?.into_ref()), v3(-1.0, 0.2, 2.5)),
        case("LogNormal", vec![s(0.3), s(1.5)], |p| Ok(LogNormal::new(p[0].clone(), p[1].clone())?.into_ref()), v3(0.1, 1.2, 2.5)),
        case("HalfNormal", vec![s(1.5)], |p| Ok(HalfNormal::new(p[0].clone())?.into_ref()), v3(0.0, 0.2, 2.5)),
        case("Cauchy", vec![s(0.3), s(1.5)], |p| Ok(Cauchy::new(p[0].clone(), p[1].clone())?.into_ref()), v3(-1.0, 0.2, 2.5)),
        case("HalfCauchy", vec![s(1.5)], |p| Ok(HalfCauchy::new(p[0].clone())?.into_ref()), v3(0.0, 0.2, 2.5)),
        case(
            "StudentT",
            vec![s(4.0), s(0.3), s(1.5)],
            |p| Ok(StudentT::new(p[0].clone(), p[1].clone(), p[2].clone())?.into_ref()),
            v3(-1.0, 0.2, 2.5),
        ),
        case("Laplace", vec![s(0.3), s(1.5)], |p| Ok(Laplace::new(p[0].clone(), p[1].clone())?.into_ref()), v3(-1.0, 0.2, 2.5)),
        case("Exponential", vec![s(1.5)], |p| Ok(Exponential::new(p[0].clone())?.into_ref()), v3(0.0, 0.2, 2.5)),
        case("Gamma", vec![s(2.5), s(1.5)], |p| Ok(Gamma::new(p[0].clone(), p[1].clone())?.into_ref()), v3(0.1, 1.2, 2.5)),
        case("Gamma(α=1)", vec![s(1.0), s(1.5)], |p| Ok(Gamma::new(p[0].clone(), p[1].clone())?.into_ref()), v3(0.0, 1.2, 2.5)),
        case("Chi2", vec![s(3.0)], |p| Ok(Chi2::new(p[0].clone())?.into_ref()), v3(0.1, 1.2, 2.5)),
        case("Beta", vec![s(2.5), s(1.5)], |p| Ok(Beta::new(p[0].clone(), p[1].clone())?.into_ref()), v3(0.1, 0.5, 0.9)),
        case("Uniform", vec![s(-1.0), s(3.0)], |p| Ok(Uniform::new(p[0].clone(), p[1].clone())?.into_ref()), v3(-1.0, 0.2, 2.5)),
        case("Weibull", vec![s(1.5), s(0.8)], |p| Ok(Weibull::new(p[0].clone(), p[1].clone())?.into_ref()), v3(0.1, 1.2, 2.5)),
        case("Gumbel", vec![s(0.3), s(1.5)], |p| Ok(Gumbel::new(p[0].clone(), p[1].clone())?.into_ref()), v3(-1.0, 0.2, 2.5)),
        case("VonMises", vec![s(0.3), s(1.5)], |p| Ok(VonMises::new(p[0].clone(), p[1].clone())?.into_ref()), v3(-1.0, 0.2, 2.5)),
        case("Bernoulli", vec![s(0.3)], |p| Ok(Bernoulli::new(p[0].clone())?.into_ref()), v3(0.0, 1.0, 1.0)),
        case("Bernoulli(logits)", vec![s(-0.4)], |p| Ok(Bernoulli::from_logits(p[0].clone())?.into_ref()), v3(0.0, 1.0, 1.0)),
        case("Binomial", vec![s(5.0), s(0.3)], |p| Ok(Binomial::new(p[0].clone(), p[1].clone())?.into_ref()), v3(0.0, 2.0, 5.0)),
        case(
            "NegativeBinomial",
            vec![s(2.5), s(0.3)],
            |p| Ok(NegativeBinomial::new(p[0].clone(), p[1].clone())?.into_ref()),
            v3(0.0, 2.0, 7.0),
        ),
        case("Poisson", vec![s(2.5)], |p| Ok(Poisson::new(p[0].clone())?.into_ref()), v3(0.0, 2.0, 7.0)),
        case("Geometric", vec![s(0.3)], |p| Ok(Geometric::new(p[0].clone())?.into_ref()), v3(0.0, 2.0, 7.0)),
        case(
            "ZeroInflatedPoisson",
            vec![s(0.2), s(2.5)],
            |p| Ok(ZeroInflatedPoisson::new(p[0].clone(), p[1].clone())?.into_ref()),
            v3(0.0, 2.0, 7.0),
        ),
        case("Categorical", vec![probs3.clone()], |p| Ok(Categorical::new(p[0].clone())?.into_ref()), v3(0.0, 2.0, 1.0)),
        case("OneHotCategorical", vec![probs3.clone()], |p| Ok(OneHotCategorical::new(p[0].clone())?.into_ref()), onehot),
        case(
            "Multinomial",
            vec![probs3.clone()],
            |p| Ok(Multinomial::new(4, p[0].clone())?.into_ref()),
            t64(&[4.0, 0.0, 0.0, 1.0, 1.0, 2.0, 0.0, 3.0, 1.0], &[3, 3]),
        ),
        case("Dirichlet", vec![t64(&[0.5, 2.0, 3.0], &[3])], |p| Ok(Dirichlet::new(p[0].clone())?.into_ref()), simplex.clone()),
        case(
            "LogisticNormal",
            vec![t64(&[0.3, -0.2], &[2]), t64(&[1.5, 0.7], &[2])],
            |p| Ok(LogisticNormal::new(p[0].clone(), p[1].clone())?.into_ref()),
            simplex,
        ),
        case(
            "MultivariateNormal",
            vec![t64(&[0.3, -0.2], &[2]), t64(&[1.5, 0.0, 0.4, 0.7], &[2, 2])],
            |p| Ok(MultivariateNormal::from_scale_tril(p[0].clone(), p[1].clone())?.into_ref()),
            t64(&[0.0, 0.0, 1.0, -2.0, 0.5, 0.5], &[3, 2]),
        ),
        case(
            "LowRankMultivariateNormal",
            vec![t64(&[0.3, -0.2], &[2]), t64(&[0.5, -1.0], &[2, 1]), t64(&[1.5, 0.7], &[2])],
            |p| Ok(LowRankMultivariateNormal::new(p[0].clone(), p[1].clone(), p[2].clone())?.into_ref()),
            t64(&[0.0, 0.0, 1.0, -2.0, 0.5, 0.5], &[3, 2]),
        ),
        case("LkjCholesky", vec![s(1.7)], |p| Ok(LkjCholesky::new(2, p[0].clone())?.into_ref()), lkj_value),
        case(
            "Delta",
            vec![s(0.5), s(-0.25)],
            |p| Ok(Delta::new(p[0].clone(), p[1].clone(), 0)?.into_ref()),
            v3(0.5, 0.5, 1.0),
        ),
        case("Unit", vec![s(-0.75)], |p| Ok(Unit::new(&as_tensor(&p[0]))?.into_ref()), v3(0.0, 0.0, 0.0)),
        case(
            "Independent(Normal)",
            vec![t64(&[0.3, -0.2], &[2]), t64(&[1.5, 0.7], &[2])],
            |p| Ok(Normal::new(p[0].clone(), p[1].clone())?.to_event(1)?.into_ref()),
            t64(&[0.0, 0.0, 1.0, -2.0, 0.5, 0.5], &[3, 2]),
        ),
        case(
            "Masked(Normal)",
            vec![s(0.3), s(1.5)],
            |p| Ok(Normal::new(p[0].clone(), p[1].clone())?.mask(&Tensor::new(1u8, &Device::Cpu)?)?.into_ref()),
            v3(-1.0, 0.2, 2.5),
        ),
        case(
            "TransformedDistribution(Gamma, exp)",
            vec![s(2.5), s(1.5)],
            |p| {
                let base = Gamma::new(p[0].clone(), p[1].clone())?.into_ref();
                Ok(TransformedDistribution::new(base, vec![Arc::new(ExpTransform)])?.into_ref())
            },
            v3(1.1, 2.0, 5.0),
        ),
        case(
            "MixtureSameFamily(Normal)",
            vec![t64(&[0.3, 0.7], &[2]), t64(&[-1.0, 2.0], &[2]), t64(&[0.5, 1.5], &[2])],
            |p| {
                let comp = Normal::new(p[1].clone(), p[2].clone())?.into_ref();
                Ok(MixtureSameFamily::new(Categorical::new(p[0].clone())?, comp)?.into_ref())
            },
            v3(-1.0, 0.2, 2.5),
        ),
    ]
}

fn as_tensor(a: &Arg) -> Tensor {
    match a {
        Arg::Scalar(x) => Tensor::new(*x, &Device::Cpu).unwrap(),
        Arg::Tensor(t) => t.clone(),
    }
}

/// `t` repeated as `[3, 1] ++ t.dims()`, as a `Var` (so not a constant).
fn batched31(t: &Tensor) -> Tensor {
    let shape: Vec<usize> = [3, 1].iter().chain(t.dims()).copied().collect();
    Var::from_tensor(&t.broadcast_as(shape).unwrap().contiguous().unwrap()).unwrap().as_tensor().clone()
}

/// Equal, with -inf matching -inf.
fn same(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w || (g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn log_prob_broadcasts_batch_shape_for_every_distribution() {
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    let cases = cases();
    for c in &cases {
        let rank0: Vec<Arg> = c.params.iter().map(|t| Arg::Tensor(t.clone())).collect();
        let mut forms: Vec<(&str, Vec<Arg>)> = vec![("rank-0/unbatched tensors", rank0)];
        if c.params.iter().all(|t| t.rank() == 0) {
            let nums = c.params.iter().map(|t| Arg::Scalar(t.to_scalar::<f64>().unwrap())).collect();
            forms.push(("numbers", nums));
        }
        let event = &c.value.dims()[1..];
        // The reference: the unbatched distribution at each of the three values.
        let base = (c.make)(&forms[0].1).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert!(base.batch_shape().is_empty(), "{}: unbatched parameters give batch_shape []", c.name);
        let want = vec64(&base.log_prob(&c.value).unwrap());
        assert_eq!(want.len(), 3, "{}", c.name);
        let want33: Vec<f64> = want.iter().cycle().take(9).copied().collect();
        let v0 = c.value.get(0).unwrap();
        let want23 = vec![want[0]; 6];

        for (form, args) in &forms {
            let what = |m: &str| format!("{} ({form}) {m}", c.name);
            let d = (c.make)(args).unwrap();
            // Expanded batch [3, 1] × values [3] -> [3, 3].
            let e = d.expand(&[3, 1]).unwrap();
            assert_eq!(e.batch_shape(), &[3, 1], "{}", what("expand batch_shape"));
            let lp = e.log_prob(&c.value).unwrap_or_else(|e| panic!("{}: {e}", what("log_prob")));
            assert_eq!(lp.dims(), &[3, 3], "{}", what("expand([3, 1]) × [3] shape"));
            same(&what("expand([3, 1]) × [3]"), &vec64(&lp), &want33);
            // Expanded batch [2, 3] × one (scalar or single-event) value -> [2, 3].
            let e = d.expand(&[2, 3]).unwrap();
            assert_eq!(v0.dims(), event);
            let lp = e.log_prob(&v0).unwrap_or_else(|e| panic!("{}: {e}", what("log_prob")));
            assert_eq!(lp.dims(), &[2, 3], "{}", what("expand([2, 3]) × scalar value shape"));
            same(&what("expand([2, 3]) × scalar value"), &vec64(&lp), &want23);
        }

        // Tensor parameters with batch [3, 1] (the general path) × values [3] -> [3, 3].
        let args31: Vec<Arg> = c.params.iter().map(|t| Arg::Tensor(batched31(t))).collect();
        let d = (c.make)(&args31).unwrap();
        assert_eq!(d.batch_shape(), &[3, 1], "{} [3, 1] tensor parameters", c.name);
        let lp = d.log_prob(&c.value).unwrap();
        assert_eq!(lp.dims(), &[3, 3], "{} tensor [3, 1] × [3] shape", c.name);
        same(&format!("{} tensor [3, 1] × [3]", c.name), &vec64(&lp), &want33);
        let lp = d.expand(&[2, 3, 1]).unwrap().log_prob(&v0).unwrap();
        assert_eq!(lp.dims(), &[2, 3, 1], "{} tensor expand([2, 3, 1]) × scalar value", c.name);
    }
    assert!(cases.len() >= 37, "every distribution is covered");
}

/// The same in f32 for the fast paths the issue found (scalar Normal, Gamma, Chi2), and the
/// plate case: a scalar observation under a batch of 3 counts three times.
#[test]
fn scalar_fast_paths_broadcast_in_f32() {
    let x = Tensor::new(&[0.5f32, 1.0, 2.0], &Device::Cpu).unwrap();
    let dists: Vec<DistRef> =
        vec![Normal::new(0.0, 1.0).unwrap().into_ref(), Gamma::new(2.0, 1.0).unwrap().into_ref(), Chi2::new(3.0).unwrap().into_ref()];
    for d in dists {
        let lp = d.expand(&[3, 1]).unwrap().log_prob(&x).unwrap();
        assert_eq!(lp.dims(), &[3, 3], "{}", d.name());
        let one = d.expand(&[3]).unwrap().log_prob(&Tensor::new(0.5f32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(one.dims(), &[3], "{}", d.name());
        let total = one.sum_all().unwrap().to_scalar::<f32>().unwrap();
        let single = d.log_prob(&Tensor::new(0.5f32, &Device::Cpu).unwrap()).unwrap().to_scalar::<f32>().unwrap();
        assert!((total - 3.0 * single).abs() < 1e-5, "{}: {total} vs 3 × {single}", d.name());
    }
    // Gradients to the value still flow through the broadcast fast path.
    let _f64 = crate::defaults::set_default_dtype(DType::F64);
    let xv = Var::new(&[0.5f64, 1.0, 2.0], &Device::Cpu).unwrap();
    let g = Normal::new(0.0, 2.0).unwrap().expand(&[4, 1]).unwrap().log_prob(&xv).unwrap().sum_all().unwrap().backward().unwrap();
    same("d/dx summed over the batch", &vec64(g.get(&xv).unwrap()), &[-0.5, -1.0, -2.0]);
}

/// The user-facing symptom: a scalar observation of a scalar-parameter distribution inside
/// `plate("data", 3)` counts three times (it counted once).
#[test]
fn scalar_observation_in_a_plate_counts_per_plate_element() {
    let x = Tensor::new(0.5f32, &Device::Cpu).unwrap();
    for d in [Normal::new(0.0, 1.0).unwrap().into_ref(), Gamma::new(2.0, 1.0).unwrap().into_ref(), Chi2::new(3.0).unwrap().into_ref()] {
        let one = d.log_prob(&x).unwrap().to_scalar::<f32>().unwrap();
        let (_, tr) = crate::handlers::trace(|| crate::plate("data", 3, |_| crate::observe("y", d.clone(), &x))).unwrap();
        let total = tr.log_prob_sum().unwrap().to_scalar::<f32>().unwrap();
        assert!((total - 3.0 * one).abs() < 1e-5, "{}: plate total {total}, want 3 × {one}", d.name());
    }
}
