//! (filled in by the special work)
