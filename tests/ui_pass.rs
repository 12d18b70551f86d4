//! Programs that must compile and run: each uses the macros the way a user would (the
//! compile-time model/guide check passes on them). They live in the integration-test crate rather
//! than in trybuild, so that trybuild only type-checks the failing cases (`cargo check`, no
//! code generation for Candle) instead of building every dependency a second time.

#[allow(dead_code)]
#[path = "ui_pass/basic.rs"]
mod basic;
#[allow(dead_code)]
#[path = "ui_pass/branches_and_loops.rs"]
mod branches_and_loops;
#[allow(dead_code, clippy::needless_lifetimes)] // the case spells its lifetimes out on purpose
#[path = "ui_pass/generics_lifetimes.rs"]
mod generics_lifetimes;
#[allow(dead_code)]
#[path = "ui_pass/guide_before_model.rs"]
mod guide_before_model;
#[allow(dead_code)]
#[path = "ui_pass/helpers_and_dynamic_names.rs"]
mod helpers_and_dynamic_names;
#[allow(dead_code)]
#[path = "ui_pass/hygiene.rs"]
mod hygiene;
#[allow(dead_code)]
#[path = "ui_pass/nested_plates.rs"]
mod nested_plates;
#[allow(dead_code)]
#[path = "ui_pass/optional_obs.rs"]
mod optional_obs;
#[allow(dead_code)]
#[path = "ui_pass/other_module.rs"]
mod other_module;
#[allow(dead_code)]
#[path = "ui_pass/param_forms.rs"]
mod param_forms;

#[test]
fn basic_compiles_and_runs() {
    basic::main();
}

#[test]
fn branches_and_loops_compiles_and_runs() {
    branches_and_loops::main();
}

#[test]
fn generics_lifetimes_compiles_and_runs() {
    generics_lifetimes::main();
}

#[test]
fn guide_before_model_compiles_and_runs() {
    guide_before_model::main();
}

#[test]
fn helpers_and_dynamic_names_compiles_and_runs() {
    helpers_and_dynamic_names::main();
}

#[test]
fn hygiene_compiles_and_runs() {
    hygiene::main();
}

#[test]
fn nested_plates_compiles_and_runs() {
    nested_plates::main();
}

#[test]
fn optional_obs_compiles_and_runs() {
    optional_obs::main();
}

#[test]
fn other_module_compiles_and_runs() {
    other_module::main();
}

#[test]
fn param_forms_compiles_and_runs() {
    param_forms::main();
}
