//! `archc export onnx` against this runtime: ONNX Runtime (CPU, through `scripts/onnx_check.py`
//! and the project's venv) on the exported resnext50_32x4d gives the Rust runtime's own logits,
//! on the parity fixtures' weights and input (`scripts/parity.py`). Fails, not skips, without
//! the venv or the fixtures.

mod common;

use archc::emit::onnx;
use archc_runtime::{Network, weights};
use common::*;
use std::path::PathBuf;
use std::process::Command;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

fn fixture(what: &str) -> PathBuf {
    parity_fixture("resnext50_32x4d", what)
}

#[test]
fn onnx_runtime_gives_the_rust_runtimes_logits() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("onnx-vs-runtime");
    std::fs::create_dir_all(&dir).unwrap();
    let python = venv_python();
    let w = fixture("weights");
    let input = Tensor::read_safetensors(fixture("io"))
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "input")
        .expect("input")
        .1;
    for form in ["grouped", "split"] {
        let c = compile("resnext/resnext50_32x4d.arch", &[("form", form)]);
        // The Rust runtime's logits, in eval mode, on the CPU.
        let mut vs = VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), &c);
        weights::load(&mut vs, &w).unwrap();
        // The compiler's list of tensors is exactly the runtime's variables.
        let mut want = archc::weights::expected(&c.graph);
        want.sort();
        let mut vars: Vec<(String, Vec<i64>)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect();
        vars.sort();
        assert_eq!(want, vars, "{form}");
        let logits = tch::no_grad(|| net.forward_t(&input, false));
        let io = dir.join(format!("{form}.io.safetensors"));
        Tensor::write_safetensors(&[("input", &input), ("head", &logits)], &io).unwrap();
        for fold_bn in [false, true] {
            let (values, loaded) = onnx::load_weights(&c.graph, &w).unwrap();
            assert_eq!(loaded.direct + loaded.mapped, vs.variables().len());
            let opts = onnx::Options {
                fold_bn,
                ..onnx::Options::default()
            };
            let model = onnx::model(&c, values, &opts, "parity weights").unwrap();
            let path = dir.join(format!("{form}-{fold_bn}.onnx"));
            onnx::write(&model, &path).unwrap();
            let o = Command::new(&python)
                .arg(root().join("scripts/onnx_check.py"))
                .arg(&path)
                .arg("--io")
                .arg(&io)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let err = r["rel_l2"].as_f64().unwrap();
            println!(
                "{form} fold_bn={fold_bn}: ONNX Runtime vs archc-runtime, relative L2 {err:.3e}"
            );
            assert!(err <= 1e-5, "{form} fold_bn={fold_bn}: {err:.3e}");
            assert!(r["rel_l2_batch1"].as_f64().unwrap() <= 1e-5);
        }
    }
}

/// A file that does not fit is refused by the export with the runtime's own message.
#[test]
fn the_export_refuses_a_file_with_the_runtimes_listing() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("onnx-refusal");
    std::fs::create_dir_all(&dir).unwrap();
    let c18 = compile("resnet/resnet18.arch", &[]);
    let vs = VarStore::new(Device::Cpu);
    let _n = Network::new(&vs.root(), &c18);
    let r18 = dir.join("r18.safetensors");
    weights::save(&vs, &r18).unwrap();
    for (spec, set) in [
        ("resnet/resnet34.arch", vec![]),
        ("resnet/resnet18.arch", vec![("classes", "10")]),
        ("resnext/resnext50_32x4d.arch", vec![("form", "split")]),
    ] {
        let c = compile(spec, &set);
        let mut vs = VarStore::new(Device::Cpu);
        let _n = Network::new(&vs.root(), &c);
        let runtime = weights::load(&mut vs, &r18).unwrap_err().to_string();
        let export = onnx::load_weights(&c.graph, &r18).unwrap_err().to_string();
        assert_eq!(export, runtime, "{spec} {set:?}");
        assert!(runtime.contains("does not fit the network"), "{runtime}");
    }
}
