//! Emitters: a compiled network written out for people and for other tools.
//!
//! - [`report`]: the JSON contract, the text verdict, the per-layer table, the canonical
//!   expansion and Graphviz DOT.
//! - [`rust`] (feature `codegen`): Rust source for `archc-runtime`, used by `resnext!` and
//!   `archc codegen`.
//! - `onnx` (feature `onnx`): an ONNX model, with the weights of a safetensors file.
//! - [`pytorch`]: a Python module for PyTorch (`archc codegen --target pytorch`), needing only
//!   `torch`, with torchvision's `state_dict` names.
//! - [`blocks`]: what the code emitters share about blocks: which blocks share a class.

pub mod blocks;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod pytorch;
pub mod report;
#[cfg(feature = "codegen")]
pub mod rust;
