//! `resnext!`: the generated models against the compiler's figures and the runtime's `Network`.

mod common;

use archc_runtime::{Network, weights};
use common::*;
use std::collections::BTreeMap;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

archc_runtime::resnext! {
    /// ResNeXt-50 (32×4d) from the shipped spec.
    pub struct ResNeXt50 = "../specs/resnext/resnext50_32x4d.arch";
}

archc_runtime::resnext! {
    /// The same spec in the split–transform–merge form (paper Fig. 3a).
    pub struct ResNeXt50Split = "../specs/resnext/resnext50_32x4d.arch" where form = split;
}

archc_runtime::resnext! {
    /// A Table 3 variant declared in code.
    pub(crate) struct ResNeXt50x8 = "../specs/resnext/resnext50_32x4d.arch"
        where C = 8, d = 14, params <= 25.7M;
}

/// `resnext!` on an inline spec, and the same spec as text (`$text`) for the runtime's side: both
/// compile one spec.
macro_rules! inline_model {
    ($(#[$attr:meta])* struct $name:ident, const $text:ident = { $($spec:tt)* }) => {
        archc_runtime::resnext! { $(#[$attr])* struct $name { $($spec)* } }
        const $text: &str = stringify!($($spec)*);
    };
}

inline_model! {
    /// An inline spec: a basic block, the concat form, a projection forced everywhere.
    struct Tiny, const TINY = {
        network tiny {
            input 3x32x32
            classes 10
            param C = 4
            form concat
            stem { conv 3x3 -> 16 }
            block bottleneck(width, out) {
                conv 1x1 -> width
                conv 3x3/stride -> width, groups C
                conv 1x1 -> out
                shortcut projection
            }
            stages bottleneck(width = 16, out = 32) {
                s1: depth 2
                s2: depth 1, stride 2
            }
            head { avgpool; fc -> classes }
            budget { params <= 100k }
        }
    }
}

archc_runtime::resnext! {
    /// Cardinality per stage and per block (`g * stride`: 1 in stage 1, 2 then 1 in stage 2, 4
    /// then 2 in stage 3) in the split form, so blocks of one template have different layouts,
    /// within a stage too. CI compiles this sample of the layout property test
    /// (`tests/codegen.rs`). The spec extends the workspace tests' `MIXED_LAYOUTS`.
    struct Mixed = "../tests/layouts/mixed_deep.arch";
}

fn shapes(vs: &VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.size()))
        .collect()
}

fn trainable(vs: &VarStore) -> u64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as u64)
        .sum()
}

#[test]
fn constants_are_the_compilers_figures() {
    let c = compile("resnext/resnext50_32x4d.arch", &[]);
    let t = c.report.total;
    assert_eq!(ResNeXt50::NAME, "resnext50_32x4d");
    assert_eq!(ResNeXt50::PARAMS, 25_028_904);
    assert_eq!(ResNeXt50::PARAMS, t.params);
    assert_eq!(ResNeXt50::BUFFERS, t.buffers);
    assert_eq!(ResNeXt50::MACS, 4_230_479_872);
    assert_eq!(ResNeXt50::FLOPS, 2 * ResNeXt50::MACS);
    assert_eq!(ResNeXt50::ACTIVATIONS, t.activations);
    assert_eq!(ResNeXt50::INPUT, [3, 224, 224]);
    assert_eq!(ResNeXt50::OUTPUT, &[1000]);
    assert_eq!(ResNeXt50x8::PARAMS, 25_603_016);
    assert_eq!(ResNeXt50Split::MACS, ResNeXt50::MACS);
    assert_eq!(Tiny::OUTPUT, &[10]);
}

#[test]
fn same_names_shapes_and_counts_as_the_runtime() {
    for (c, build) in [
        (compile("resnext/resnext50_32x4d.arch", &[]), 0),
        (
            compile("resnext/resnext50_32x4d.arch", &[("form", "split")]),
            1,
        ),
        (
            compile("resnext/resnext50_32x4d.arch", &[("C", "8"), ("d", "14")]),
            2,
        ),
    ] {
        let ours = VarStore::new(Device::Cpu);
        match build {
            0 => drop(ResNeXt50::new(&ours.root())),
            1 => drop(ResNeXt50Split::new(&ours.root())),
            _ => drop(ResNeXt50x8::new(&ours.root())),
        }
        let theirs = VarStore::new(Device::Cpu);
        let _n = Network::new(&theirs.root(), &c);
        assert_eq!(shapes(&ours), shapes(&theirs));
        assert_eq!(trainable(&ours), c.report.total.params);
    }
}

#[test]
fn same_logits_as_the_runtime_and_torchvision_on_the_same_weights() {
    let w = parity_fixture("resnext50_32x4d", "weights");
    let io: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(parity_fixture("resnext50_32x4d", "io"))
            .unwrap()
            .into_iter()
            .collect();
    let x = &io["input"];

    let mut vs = VarStore::new(Device::Cpu);
    let generated = ResNeXt50::new(&vs.root());
    weights::load(&mut vs, &w).unwrap();
    let mut vs2 = VarStore::new(Device::Cpu);
    let network = Network::new(&vs2.root(), &compile("resnext/resnext50_32x4d.arch", &[]));
    weights::load(&mut vs2, &w).unwrap();
    let (a, b) = tch::no_grad(|| (generated.forward_t(x, false), network.forward_t(x, false)));
    assert!(a.equal(&b), "generated and runtime logits differ");
    let err = (&a - &io["head"]).norm().double_value(&[]) / io["head"].norm().double_value(&[]);
    assert!(err <= 1e-5, "{err:e}");

    // The split form, generated, on the same grouped checkpoint.
    let mut vs3 = VarStore::new(Device::Cpu);
    let split = ResNeXt50Split::new(&vs3.root());
    let loaded = weights::load(&mut vs3, &w).unwrap();
    assert!(loaded.mapped > 0);
    let c = tch::no_grad(|| split.forward_t(x, false));
    let err = (&c - &a).norm().double_value(&[]) / a.norm().double_value(&[]);
    assert!(err <= 1e-5, "split: {err:e}");
}

#[test]
fn weights_saved_by_one_load_into_the_other() {
    let dir = std::env::temp_dir().join(format!("archc-macro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = archc::Spec::from_text("tiny.arch", TINY).unwrap();
    let c = spec.compile("tiny", &Default::default()).unwrap();
    let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));

    // Generated → runtime.
    let vs = VarStore::new(Device::Cpu);
    let tiny = Tiny::new(&vs.root());
    weights::save(&vs, dir.join("a.safetensors")).unwrap();
    let mut vs2 = VarStore::new(Device::Cpu);
    let net = Network::new(&vs2.root(), &c);
    weights::load(&mut vs2, dir.join("a.safetensors")).unwrap();
    let (a, b) = tch::no_grad(|| (tiny.forward_t(&x, false), net.forward_t(&x, false)));
    assert!(a.equal(&b));

    // Runtime → generated, after a training step changed the runtime's weights.
    let y = net.forward_t(&x, true).sum(Kind::Float);
    y.backward();
    tch::no_grad(|| {
        for mut v in vs2.trainable_variables() {
            let g = v.grad();
            let _ = v.f_sub_(&(g * 0.1)).unwrap();
        }
    });
    weights::save(&vs2, dir.join("b.safetensors")).unwrap();
    let mut vs3 = VarStore::new(Device::Cpu);
    let tiny3 = Tiny::new(&vs3.root());
    weights::load(&mut vs3, dir.join("b.safetensors")).unwrap();
    let (a, b) = tch::no_grad(|| (tiny3.forward_t(&x, false), net.forward_t(&x, false)));
    assert!(a.equal(&b));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn blocks_of_different_layouts_in_one_stage() {
    let c = archc::compile_file(
        root().join("tests/layouts/mixed_deep.arch"),
        &Default::default(),
    )
    .unwrap();
    let vs = VarStore::new(Device::Cpu);
    let mixed = Mixed::new(&vs.root());
    let theirs = VarStore::new(Device::Cpu);
    let net = Network::new(&theirs.root(), &c);
    assert_eq!(shapes(&vs), shapes(&theirs));
    assert_eq!(trainable(&vs), c.report.total.params);
    assert_eq!(Mixed::PARAMS, c.report.total.params);
    // Stage 2 holds a block with paths and one without.
    assert!(matches!(mixed.layer2[0], MixedLayer2Block::BLayout2(_)));
    assert!(matches!(mixed.layer2[1], MixedLayer2Block::B(_)));
    let mut vs2 = theirs;
    let dir = std::env::temp_dir().join(format!("archc-mixed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    weights::save(&vs, dir.join("m.safetensors")).unwrap();
    weights::load(&mut vs2, dir.join("m.safetensors")).unwrap();
    let x = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    let (a, b) = tch::no_grad(|| (mixed.forward_t(&x, false), net.forward_t(&x, false)));
    assert_eq!(a.size(), [2, 10]);
    assert!(a.equal(&b), "generated and runtime logits differ");
    std::fs::remove_dir_all(&dir).unwrap();
}
