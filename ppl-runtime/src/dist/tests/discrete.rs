//! (filled in by the discrete work)
