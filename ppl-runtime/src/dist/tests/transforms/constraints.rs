//! Constraints: `check` and `first_violation` on good and bad values, event dims,
//! discreteness, and the Display/FromStr round trip.

use crate::dist::constraints::{Constraint, constraints as c};
use crate::dist::tests::common::t64;
use candle_core::{DType, Tensor};

fn flags(con: &Constraint, v: &Tensor) -> Vec<u8> {
    con.check(v).unwrap().flatten_all().unwrap().to_vec1::<u8>().unwrap()
}

#[test]
fn elementwise_constraints_check_each_element() {
    use Constraint::*;
    let inf = f64::INFINITY;
    let nan = f64::NAN;
    let x = [-2.0, -0.5, 0.0, 0.5, 1.0, 3.0, inf, nan];
    let v = t64(&x, &[8]);
    let cases: Vec<(Constraint, [u8; 8])> = vec![
        (Real, [1, 1, 1, 1, 1, 1, 0, 0]),
        (Positive, [0, 0, 0, 1, 1, 1, 1, 0]),
        (Nonnegative, [0, 0, 1, 1, 1, 1, 1, 0]),
        (GreaterThan(0.5), [0, 0, 0, 0, 1, 1, 1, 0]),
        (GreaterThanEq(0.5), [0, 0, 0, 1, 1, 1, 1, 0]),
        (LessThan(0.5), [1, 1, 1, 0, 0, 0, 0, 0]),
        (Interval(-0.5, 1.0), [0, 1, 1, 1, 1, 0, 0, 0]),
        (HalfOpenInterval(-0.5, 1.0), [0, 1, 1, 1, 0, 0, 0, 0]),
        (UnitInterval, [0, 0, 1, 1, 1, 0, 0, 0]),
        (IntegerInterval(-2, 1), [1, 0, 1, 0, 1, 0, 0, 0]),
        (IntegerGreaterThanEq(0), [0, 0, 1, 0, 1, 1, 0, 0]),
        (Boolean, [0, 0, 1, 0, 1, 0, 0, 0]),
        (NonnegativeInteger, [0, 0, 1, 0, 1, 1, 0, 0]),
        (PositiveInteger, [0, 0, 0, 0, 1, 1, 0, 0]),
    ];
    for (con, want) in cases {
        assert_eq!(flags(&con, &v), want, "{con}");
        let first_bad = want.iter().position(|&w| w == 0).unwrap();
        let msg = con.first_violation(&v).unwrap().expect("some element fails");
        assert!(msg.starts_with(&format!("element [{first_bad}]")), "{con}: {msg}");
        let n_bad = want.iter().filter(|&&w| w == 0).count();
        if n_bad > 1 {
            assert!(msg.contains(&format!("({n_bad} of 8 fail)")), "{con}: {msg}");
        }
        let good: Vec<f64> = x.iter().zip(want).filter(|(_, w)| *w == 1).map(|(v, _)| *v).collect();
        assert_eq!(con.first_violation(&t64(&good, &[good.len()])).unwrap(), None, "{con}");
    }
    // Integer-valued tensors and f32 work too; 2-d values report a 2-d index.
    let ints = Tensor::new(&[0u32, 3, 7], &candle_core::Device::Cpu).unwrap();
    assert_eq!(flags(&c::integer_interval(0, 5), &ints), vec![1, 1, 0]);
    let m = t64(&[1.0, 2.0, 3.0, -4.0], &[2, 2]).to_dtype(DType::F32).unwrap();
    assert_eq!(c::POSITIVE.first_violation(&m).unwrap().unwrap(), "element [1, 1] is -4");
    assert_eq!(c::POSITIVE.check(&m).unwrap().dims(), &[2, 2]);
}

#[test]
fn event_constraints_check_each_event() {
    use Constraint::*;
    type Case = (Constraint, Vec<f64>, Vec<usize>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (Simplex, vec![0.2, 0.3, 0.5, 0.2, 0.3, 0.6, -0.1, 0.6, 0.5], vec![3, 3], vec![1, 0, 0]),
        (OrderedVector, vec![-1.0, 0.0, 2.0, 1.0, 1.0, 2.0, 0.0, f64::INFINITY, 9.0], vec![3, 3], vec![1, 0, 0]),
        (OneHot, vec![0.0, 1.0, 0.0, 1.0, 1.0, 0.0], vec![2, 3], vec![1, 0]),
        (RealVector, vec![0.0, 1.0, f64::NAN, 1.0], vec![2, 2], vec![1, 0]),
        // [[2, 0], [1, 3]] ok; upper entry; non-positive diagonal.
        (LowerCholesky, vec![2.0, 0.0, 1.0, 3.0, 2.0, 0.1, 1.0, 3.0, 2.0, 0.0, 1.0, 0.0], vec![3, 2, 2], vec![1, 0, 0]),
        // Unit-norm rows, then a row of norm != 1.
        (CorrCholesky, vec![1.0, 0.0, 0.6, 0.8, 1.0, 0.0, 0.6, 0.7], vec![2, 2, 2], vec![1, 0]),
        // PD; not symmetric; symmetric but indefinite.
        (PositiveDefinite, vec![2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 0.0, 2.0, 1.0, 2.0, 2.0, 1.0], vec![3, 2, 2], vec![1, 0, 0]),
    ];
    for (con, v, shape, want) in cases {
        let t = t64(&v, &shape);
        assert_eq!(flags(&con, &t), want, "{con}");
        let msg = con.first_violation(&t).unwrap().expect("an event fails");
        assert!(msg.starts_with("event [1] is ["), "{con}: {msg}");
        assert_eq!(con.first_violation(&t.get(0).unwrap()).unwrap(), None, "{con}");
    }
    // Independent: an event fails if any of its elements does.
    let ind = c::independent(c::POSITIVE, 1);
    assert_eq!(flags(&ind, &t64(&[1.0, 2.0, 3.0, -1.0], &[2, 2])), vec![1, 0]);
    let ind_simplex = Simplex.independent(1);
    assert_eq!(flags(&ind_simplex, &t64(&[0.5, 0.5, 1.0, 0.0, 0.5, 0.5, 0.7, 0.7], &[2, 2, 2])), vec![1, 0]);
    // Too few dims is a shape error naming the constraint.
    let err = Simplex.check(&t64(&[1.0], &[])).unwrap_err().to_string();
    assert!(err.contains("simplex") && err.contains("rank >= 1"), "{err}");
    // f32 uses a looser tolerance for sums.
    let s32 = t64(&[0.1, 0.2, 0.7 + 3e-5], &[3]).to_dtype(DType::F32).unwrap();
    assert_eq!(flags(&Simplex, &s32), vec![1]);
    assert_eq!(flags(&Simplex, &t64(&[0.1, 0.2, 0.7 + 3e-5], &[3])), vec![0]);
}

#[test]
fn event_dims_and_discreteness() {
    use Constraint::*;
    assert_eq!(Real.event_dim(), 0);
    assert_eq!(Simplex.event_dim(), 1);
    assert_eq!(CorrCholesky.event_dim(), 2);
    assert_eq!(Simplex.independent(2).event_dim(), 3);
    assert_eq!(Positive.independent(1).independent(2), Independent(Box::new(Positive), 3));
    assert_eq!(Positive.independent(0), Positive);
    for d in [Boolean, NonnegativeInteger, PositiveInteger, IntegerInterval(0, 2), IntegerGreaterThanEq(1), OneHot] {
        assert!(d.is_discrete(), "{d}");
    }
    for d in [Real, Positive, UnitInterval, Simplex, PositiveDefinite] {
        assert!(!d.is_discrete(), "{d}");
    }
    assert!(Boolean.independent(1).is_discrete());
}

#[test]
fn display_from_str_round_trip() {
    use Constraint::*;
    let all = vec![
        Real,
        Positive,
        Nonnegative,
        GreaterThan(-1.5),
        GreaterThanEq(1e-300),
        LessThan(2.25),
        Interval(-1.0, 0.1),
        HalfOpenInterval(0.0, 7.0),
        UnitInterval,
        Simplex,
        LowerCholesky,
        CorrCholesky,
        PositiveDefinite,
        OrderedVector,
        IntegerInterval(-3, 12),
        IntegerGreaterThanEq(2),
        Boolean,
        NonnegativeInteger,
        PositiveInteger,
        OneHot,
        RealVector,
        Interval(0.0, 1.0).independent(2),
        Simplex.independent(1),
    ];
    for con in all {
        let s = con.to_string();
        let back: Constraint = s.parse().unwrap_or_else(|e| panic!("`{s}` does not parse: {e}"));
        assert_eq!(back, con, "{s}");
    }
    assert_eq!(c::greater_than(0.0).to_string(), "greater_than(0)");
    assert_eq!(" interval( 0 , 1 ) ".parse::<Constraint>().unwrap(), Interval(0.0, 1.0));
    for bad in ["realish", "interval(0)", "interval(a, b)", "positive(1)", "independent(real)", "greater_than(1"] {
        let err = bad.parse::<Constraint>().unwrap_err().to_string();
        assert!(err.contains("unknown constraint"), "{bad}: {err}");
    }
}
