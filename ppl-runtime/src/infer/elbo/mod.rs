//! Evidence lower bounds (in progress).
