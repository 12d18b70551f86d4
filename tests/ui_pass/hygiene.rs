//! Generated code is hygienic: user items named `Result`, `Tensor`, `Option`, `Some`, `Default`
//! and `core` do not disturb it; `#[model(crate = ..)]` names a renamed facade.
extern crate ppl as my_ppl;

#[allow(dead_code)]
mod shadowing {
    // The facade under another name (this file is a module of the test crate, so the renamed
    // crate is reached through the parent module rather than the extern prelude).
    use super::my_ppl;
    use my_ppl::dist::Normal;
    struct Tensor;
    struct Option;
    struct Default;
    #[allow(non_snake_case)]
    fn Some() {}
    mod core {}
    type Result<T> = ::std::result::Result<T, my_ppl::Error>;

    #[my_ppl::model(crate = my_ppl)]
    pub fn model(x: &my_ppl::candle_core::Tensor) -> Result<()> {
        let mu = my_ppl::sample!("mu", Normal::new(0.0, 1.0)?);
        let s = my_ppl::param!("s", 1.0, constraint = positive);
        my_ppl::sample!("x", Normal::new(&mu, &s)?, obs = x, enumerate = sequential);
        my_ppl::factor!("f", &mu);
        my_ppl::plate!("p", 2, dim = -1, |_| Ok(()))
    }

    #[my_ppl::guide(model = model, crate = my_ppl)]
    pub fn guide(_x: &my_ppl::candle_core::Tensor) -> Result<()> {
        my_ppl::sample!("mu", Normal::new(0.0, 1.0)?);
        Ok(())
    }
}

pub fn main() {
    let _ = (shadowing::model, shadowing::guide);
}
