//! The runtime model against the compiler: parameter counts, output shapes, weight files,
//! training.

use archc::{Compiled, Overrides, Spec};
mod common;

use archc_runtime::{Network, weights};
use common::*;
use std::path::{Path, PathBuf};
use tch::nn::{ModuleT, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

#[test]
fn every_spec_has_the_compilers_counts_and_shapes() {
    let specs = shipped();
    assert!(specs.len() >= 14);
    for rel in specs {
        let c = compile(&rel, &[]);
        let vs = VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), &c);
        let params: i64 = vs
            .trainable_variables()
            .iter()
            .map(Tensor::numel)
            .map(|n| n as i64)
            .sum();
        let all: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
        assert_eq!(params as u64, c.report.total.params, "{rel} params");
        assert_eq!(
            (all - params) as u64,
            c.report.total.buffers,
            "{rel} buffers"
        );
        let [ch, h, w] = c.model.input;
        let x = Tensor::randn(
            [1, ch as i64, h as i64, w as i64],
            (Kind::Float, Device::Cpu),
        );
        let y = tch::no_grad(|| net.forward_t(&x, false));
        // With an fc head the output is [N, classes]; a headless (block-level) spec gives the
        // last stage's [N, C, H, W].
        let out = c.output().map(|v| v as i64);
        let fc = matches!(
            c.graph.graph[c.graph.output].op,
            archc::graph::Op::Linear { .. }
        );
        let want = if fc { vec![out[0]] } else { out.to_vec() };
        assert_eq!(net.output_shape(), want, "{rel}");
        assert_eq!(y.size()[1..], want[..], "{rel} output");
    }
}

#[test]
fn variable_names_are_torchvisions() {
    let c = compile("resnet/resnet50.arch", &[]);
    let vs = VarStore::new(Device::Cpu);
    let _net = Network::new(&vs.root(), &c);
    let vars = vs.variables();
    for name in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "layer1.0.conv2.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_var",
        "layer4.2.bn3.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(vars.contains_key(name), "{name}");
    }
    assert_eq!(vars["layer2.0.conv2.weight"].size(), [128, 128, 3, 3]);
    assert_eq!(vars.len(), 161 + 2 * 53); // 161 learnable tensors, 53 BNs × 2 running stats
}

/// A new folder `archc-NAME-PID` in the temporary folder.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archc-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Resnet18 with fresh weights, saved as `dir/r18.safetensors`: the compiled spec, the
/// variables, the network and the file.
fn saved_resnet18(dir: &Path) -> (Compiled, VarStore, Network, PathBuf) {
    let file = dir.join("r18.safetensors");
    let c = compile("resnet/resnet18.arch", &[]);
    let (vs, net) = cpu_network(&c);
    weights::save(&vs, &file).unwrap();
    (c, vs, net, file)
}

#[test]
fn save_then_load_gives_the_same_logits() {
    let dir = temp_dir("rt");
    let (c, vs, net, file) = saved_resnet18(&dir);
    let (mut vs2, net2) = cpu_network(&c);
    let report = weights::load(&mut vs2, &file).unwrap();
    assert_eq!(report.direct, vs.variables().len());
    assert_eq!(report.ignored, 20); // resnet18 has 20 batch-norms
    let x = Tensor::randn([2, 3, 224, 224], (Kind::Float, Device::Cpu));
    let (a, b) = tch::no_grad(|| (net.forward_t(&x, false), net2.forward_t(&x, false)));
    assert!(a.equal(&b));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mismatched_files_are_refused_with_every_name() {
    let dir = temp_dir("rt-mm");
    let (c18, _, _, r18) = saved_resnet18(&dir);

    // resnet34 has more blocks: its extra variables are missing from the file.
    let c34 = compile("resnet/resnet34.arch", &[]);
    let (mut vs34, _n) = cpu_network(&c34);
    let before = vs34.variables()["conv1.weight"].copy();
    match weights::load(&mut vs34, &r18) {
        Err(weights::WeightsError::Mismatch {
            missing,
            unexpected,
            misshaped,
            ..
        }) => {
            assert!(unexpected.is_empty() && misshaped.is_empty());
            assert!(
                missing
                    .iter()
                    .any(|(n, s)| n == "layer1.2.conv1.weight" && s == &[64, 64, 3, 3])
            );
            // 8 extra basic blocks, each with conv1, bn1 (4 tensors), conv2, bn2 (4 tensors).
            assert_eq!(missing.len(), 8 * 10);
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    // Nothing was copied.
    assert!(vs34.variables()["conv1.weight"].equal(&before));

    // Ten classes: the fc is mis-shaped, and the message says so with both shapes.
    let (mut vs10, _n) = cpu_network(&compile("resnet/resnet18.arch", &[("classes", "10")]));
    let err = weights::load(&mut vs10, &r18).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("0 missing, 0 unexpected, 2 mis-shaped"),
        "{text}"
    );
    assert!(
        text.contains("mis-shaped  fc.weight: expected [10, 512], found [1000, 512]"),
        "{text}"
    );
    assert!(
        text.contains("mis-shaped  fc.bias: expected [10], found [1000]"),
        "{text}"
    );

    // A resnet34 file in resnet18: the extra tensors are unexpected.
    let r34 = dir.join("r34.safetensors");
    weights::save(&vs34, &r34).unwrap();
    let (mut vs18, _n) = cpu_network(&c18);
    match weights::load(&mut vs18, &r34) {
        Err(weights::WeightsError::Mismatch {
            missing,
            unexpected,
            ..
        }) => {
            assert!(missing.is_empty());
            assert!(
                unexpected
                    .iter()
                    .any(|(n, _)| n == "layer3.5.bn2.running_var")
            );
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    // Not a safetensors file at all.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a tensor file").unwrap();
    assert!(matches!(
        weights::load(&mut vs18, &junk),
        Err(weights::WeightsError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trains_with_autograd_and_updates_running_statistics() {
    tch::manual_seed(0);
    let text = r#"
network tiny {
  input 3x16x16
  classes 4
  param C = 4
  stem { conv 3x3 -> 16 }
  block bottleneck(width, out) {
    conv 1x1 -> width
    conv 3x3/stride -> width, groups C
    conv 1x1 -> out
  }
  stages bottleneck(width = 16, out = 32) {
    s1: depth 1
    s2: depth 1, stride 2
  }
  head { avgpool; fc -> classes }
}"#;
    let spec = Spec::from_text("tiny.arch", text).unwrap();
    let c = spec.compile("tiny", &Overrides::default()).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &c);
    let mut opt = tch::nn::Sgd {
        momentum: 0.9,
        ..Default::default()
    }
    .build(&vs, 0.05)
    .unwrap();
    let x = Tensor::randn([16, 3, 16, 16], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 1, 2, 3]).repeat([4]);
    let mean_before = vs.variables()["bn1.running_mean"].copy();
    let first = net
        .forward_t(&x, true)
        .cross_entropy_for_logits(&y)
        .double_value(&[]);
    for _ in 0..30 {
        let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
    }
    let last = net
        .forward_t(&x, true)
        .cross_entropy_for_logits(&y)
        .double_value(&[]);
    assert!(last < first * 0.5, "loss {first} -> {last}");
    assert!(!vs.variables()["bn1.running_mean"].equal(&mean_before));
    // Eval mode is deterministic and leaves the statistics alone.
    let stats = vs.variables()["bn1.running_var"].copy();
    let (a, b) = tch::no_grad(|| (net.forward_t(&x, false), net.forward_t(&x, false)));
    assert!(a.equal(&b));
    assert!(vs.variables()["bn1.running_var"].equal(&stats));
}

#[test]
fn libtorch_cuda_is_linked_where_libtorch_has_it() {
    // The linker's --as-needed default drops libtorch_cuda.so, and then CUDA is never available.
    // build.rs links it explicitly: check the running binary really loaded it.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let torch_cpu = maps
        .lines()
        .find(|l| l.contains("libtorch_cpu.so"))
        .and_then(|l| l.split_whitespace().last())
        .map(PathBuf::from)
        .expect("libtorch_cpu.so is loaded");
    let has_cuda_build = torch_cpu.with_file_name("libtorch_cuda.so").exists();
    assert_eq!(
        maps.contains("libtorch_cuda.so"),
        has_cuda_build,
        "{}",
        torch_cpu.display()
    );
    if !has_cuda_build {
        assert!(!tch::Cuda::is_available());
    }
}
