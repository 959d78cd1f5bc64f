//! Helpers shared by the runtime's integration tests.
#![allow(dead_code, unused_imports)]

use tch::{Kind, Tensor};

pub use archc_tests::{compile, root, shipped};

/// ‖a − b‖₂ / ‖b‖₂, in f64.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}
