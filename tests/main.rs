//! The integration tests of ppl: one test crate, a module per area.

mod autoguide;
mod datasets;
mod enumeration;
mod examples;
mod examples_enum;
mod handlers;
mod params;
mod macros;
mod mcmc;
mod nn;
mod svi;
mod ui;
mod ui_pass;
