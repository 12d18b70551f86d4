//! Every accepted form of `param!`: number, tensor, reference, lazy closure; named constraints
//! with and without arguments, a constraint value, `event_dim`; and dynamic names.
use ppl::dist::Constraint;
use ppl::prelude::*;

#[model]
fn model(init: &Tensor) -> Result<()> {
    let _a = param!("a", 1.0);
    let _b = param!("b", 1.0f32, constraint = positive);
    let _c = param!("c", init, constraint = interval(0.0, 1.0));
    let _d = param!("d", init.clone(), constraint = greater_than(-1.0));
    let _e = param!("e", || Tensor::ones(3, DType::F32, &Device::Cpu).map_err(Into::into), constraint = simplex, event_dim = 1);
    let con = Constraint::Positive;
    let _f = param!("f", 2.0, constraint = con);
    let _g = param!("g", 2.0, constraint = Constraint::LessThan(3.0));
    for i in 0..2 {
        let _h = param!(format!("h_{i}"), 0.0);
    }
    Ok(())
}

pub fn main() {
    let _ = model;
}
