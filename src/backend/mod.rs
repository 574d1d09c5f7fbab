//! Compute backends. The CPU backend (rayon) is always available.

pub mod cpu;
