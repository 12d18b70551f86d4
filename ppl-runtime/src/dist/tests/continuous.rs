//! (filled in by the continuous work)
