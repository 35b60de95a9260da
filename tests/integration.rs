//! Integration tests: the real binary, as PID 1 where it matters.
