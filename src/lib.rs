pub use ppl_runtime::*;
