//! Integration tests: nn (in progress).
