//! Integration tests: svi (in progress).
