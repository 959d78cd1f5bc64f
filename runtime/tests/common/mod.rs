//! Helpers shared by the runtime's integration tests.
#![allow(dead_code, unused_imports)]

use archc::Compiled;
use archc_runtime::Network;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub use archc_tests::{compile, parity_fixture, root, shipped, venv_python};

/// The network of `c` with fresh variables on the CPU, and its `VarStore`.
pub fn cpu_network(c: &Compiled) -> (VarStore, Network) {
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), c);
    (vs, net)
}

/// ‖a − b‖₂ / ‖b‖₂, in f64.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}
