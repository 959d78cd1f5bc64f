//! Emitters: a compiled network written out for people and for other tools.
//!
//! - [`report`]: the JSON contract, the text verdict, the per-layer table, the canonical
//!   expansion and Graphviz DOT.
//! - [`rust`] (feature `codegen`): Rust source for `archc-runtime`, used by `resnext!` and
//!   `archc codegen`.

pub mod report;
#[cfg(feature = "codegen")]
pub mod rust;
