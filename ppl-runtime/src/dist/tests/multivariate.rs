//! (filled in by the multivariate work)
