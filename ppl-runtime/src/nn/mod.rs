//! Fast layers for deep models (in progress).
