//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use archc::{Compiled, Overrides};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The repository (or, on a GPU box, the unpacked bundle: `ARCHC_ROOT`).
pub fn root() -> PathBuf {
    std::env::var_os("ARCHC_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Compiles a shipped spec (`resnet/resnet50.arch`) with `--set`-style overrides.
pub fn compile(rel: &str, set: &[(&str, &str)]) -> Compiled {
    let overrides = Overrides {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        input: None,
        ..Default::default()
    };
    archc::compile_file(root().join("specs").join(rel), &overrides)
        .unwrap_or_else(|f| panic!("{}", f.render()))
}

/// Every shipped spec, relative to `specs/`, sorted.
pub fn shipped() -> Vec<String> {
    let base = root().join("specs");
    let mut out = Vec::new();
    let mut dirs = vec![base.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "arch") {
                out.push(p.strip_prefix(&base).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// ‖a − b‖₂ / ‖b‖₂, in f64.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}
