//! MCMC (in progress).
