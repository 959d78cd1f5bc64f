//! Emitters: a compiled network written out for people and for other tools.
//!
//! - [`report`]: the JSON contract, the text verdict, the per-layer table, the canonical
//!   expansion and Graphviz DOT.
//! - [`rust`] (feature `codegen`): Rust source for `archc-runtime`, used by `resnext!` and
//!   `archc codegen`.
//! - `onnx` (feature `onnx`): an ONNX model, with the weights of a safetensors file.

#[cfg(feature = "onnx")]
pub mod onnx;
pub mod report;
#[cfg(feature = "codegen")]
pub mod rust;
