//! Emitters: a compiled network written in another format.

#[cfg(feature = "onnx")]
pub mod onnx;
