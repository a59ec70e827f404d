//! The one door to atomics: `std` normally, `loom` under `cfg(loom)`, so the
//! ordering core of the table can be model-checked without changing a line.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};
