//! Integration tests: mcmc (in progress).
