//! A guide for a model in another module (public, crate-visible and private-to-parent models).
use ppl::prelude::*;

mod models {
    use ppl::prelude::*;

    #[model]
    pub fn public_model() -> Result<()> {
        sample!("mu", Normal::new(0.0, 1.0)?);
        Ok(())
    }

    #[model]
    pub(crate) fn crate_model() -> Result<()> {
        sample!("nu", Normal::new(0.0, 1.0)?);
        Ok(())
    }

    #[model]
    fn private_model() -> Result<()> {
        sample!("xi", Normal::new(0.0, 1.0)?);
        Ok(())
    }

    pub mod guides {
        use ppl::prelude::*;

        #[guide(model = super::private_model)]
        pub fn private_guide() -> Result<()> {
            sample!("xi", Normal::new(0.0, 0.5)?);
            Ok(())
        }
    }
}

#[guide(model = models::public_model)]
fn public_guide() -> Result<()> {
    sample!("mu", Normal::new(0.0, 0.5)?);
    Ok(())
}

#[guide(model = crate::ui_pass::other_module::models::crate_model)]
fn crate_guide() -> Result<()> {
    sample!("nu", Normal::new(0.0, 0.5)?);
    Ok(())
}

pub fn main() {
    let _ = (models::public_model, models::crate_model, models::guides::private_guide, public_guide, crate_guide);
}
