//! (filled in by the transforms work)
