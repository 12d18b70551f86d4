//! Tests of the distributions library, against independent references (scipy fixtures,
//! closed forms, finite differences, Monte Carlo with 4-standard-error tolerances).
//! One module per area; fixtures live in `fixtures/` and are made by scripts under `tools/`.

mod batch_shapes;
mod common;
mod continuous;
mod discrete;
mod hardening;
mod generic;
mod multivariate;
mod small_concentration;
mod special;
mod transforms;
