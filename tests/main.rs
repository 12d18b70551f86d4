//! The integration tests of ppl: one test crate, a module per area.

mod autoguide;
mod datasets;
mod deep;
mod dmm;
mod enumeration;
mod enumeration_guide;
mod enumeration_sequential;
mod enumeration_markov;
mod enum_speed;
mod examples;
mod examples_deep;
mod examples_enum;
mod examples_lda;
mod handlers;
mod macros;
mod mcmc;
mod nn;
mod params;
mod render;
mod speed_paths;
mod svi;
mod ui;
mod ui_pass;
