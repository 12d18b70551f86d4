//! The integration tests of ppl: one test crate, a module per area.

mod autoguide;
mod datasets;
mod dmm;
mod deep;
mod examples;
mod examples_deep;
mod examples_lda;
mod handlers;
mod params;
mod render;
mod macros;
mod mcmc;
mod nn;
mod svi;
mod ui;
mod ui_pass;
