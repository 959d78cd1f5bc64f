//! Numeric parity with PyTorch on the same weights (fixtures from `scripts/parity.py`, which
//! `scripts/test.sh` runs first), the three block forms on one checkpoint, and the inference mode.

use archc::Compiled;
mod common;

use archc_runtime::fast::{Inference, Options};
use archc_runtime::{Network, weights};
use common::*;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// `ARCHC_TEST_DEVICE` (`cpu` by default; `cuda` on a GPU box, see scripts/gpu-run.sh).
fn device() -> Device {
    let name = std::env::var("ARCHC_TEST_DEVICE").unwrap_or_else(|_| "cpu".to_string());
    archc_runtime::parse_device(&name).unwrap_or_else(|e| panic!("ARCHC_TEST_DEVICE: {e}"))
}

fn io(name: &str) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(parity_fixture(name, "io"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_device(device())))
        .collect()
}

fn get<'a>(io: &'a [(String, Tensor)], key: &str) -> &'a Tensor {
    &io.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

fn loaded(c: &Compiled, weights_of: &str) -> (VarStore, Network) {
    let mut vs = VarStore::new(device());
    let net = Network::new(&vs.root(), c);
    let report = weights::load(&mut vs, parity_fixture(weights_of, "weights")).unwrap();
    assert!(report.direct > 0);
    (vs, net)
}

fn stage_parity(rel: &str, name: &str) {
    let c = compile(rel, &[]);
    let (_vs, net) = loaded(&c, name);
    let io = io(name);
    let x = get(&io, "input");
    let stages = tch::no_grad(|| net.forward_stages(x, false));
    let mut checked = 0;
    for (stage, ours) in &stages {
        let theirs = get(&io, stage);
        assert_eq!(ours.size(), theirs.size(), "{name} {stage}");
        let err = rel_l2(ours, theirs);
        println!("{name} {stage}: relative L2 error {err:.3e}");
        assert!(
            err <= 1e-5,
            "{name} {stage}: relative L2 error {err:.3e} > 1e-5"
        );
        checked += 1;
    }
    assert_eq!(checked, c.graph.stages.len());
}

#[test]
fn resnet50_matches_torchvision_stage_by_stage() {
    stage_parity("resnet/resnet50.arch", "resnet50");
}

#[test]
fn resnext50_matches_torchvision_stage_by_stage() {
    stage_parity("resnext/resnext50_32x4d.arch", "resnext50_32x4d");
}

#[test]
fn resnext29_matches_pytorch_reference_stage_by_stage() {
    stage_parity("cifar/resnext29_8x64d.arch", "resnext29_8x64d");
}

#[test]
fn three_forms_give_the_same_logits_on_one_checkpoint() {
    let io = io("resnext50_32x4d");
    let x = get(&io, "input");
    let logits = |form: &str| {
        let c = compile("resnext/resnext50_32x4d.arch", &[("form", form)]);
        let (_vs, net) = loaded(&c, "resnext50_32x4d");
        tch::no_grad(|| net.forward_t(x, false))
    };
    let grouped = logits("grouped");
    assert!(rel_l2(&grouped, get(&io, "head")) <= 1e-5);
    for form in ["concat", "split"] {
        let other = logits(form);
        let err = rel_l2(&other, &grouped);
        println!("{form} vs grouped: relative L2 error {err:.3e}");
        assert!(err <= 1e-5, "{form}: {err:.3e}");
    }
}

#[test]
fn inference_mode_matches_eval_mode() {
    let c = compile("resnext/resnext50_32x4d.arch", &[]);
    let (_vs, net) = loaded(&c, "resnext50_32x4d");
    let io = io("resnext50_32x4d");
    let x = get(&io, "input");
    let reference = get(&io, "head");
    for (kind, channels_last, tolerance) in [
        (Kind::Float, true, 1e-4),
        (Kind::Float, false, 1e-4),
        (Kind::BFloat16, true, 5e-2),
    ] {
        let fast = Inference::new(
            &net,
            Options {
                kind,
                channels_last,
            },
        );
        let err = rel_l2(&fast.forward(x), reference);
        println!("folded {kind:?}, channels-last {channels_last}: relative L2 error {err:.3e}");
        assert!(err <= tolerance, "{kind:?} {channels_last}: {err:.3e}");
    }
    // The split form folds too (its aggregated batch-norm becomes an affine step).
    let cs = compile("resnext/resnext50_32x4d.arch", &[("form", "split")]);
    let (_vs2, split) = loaded(&cs, "resnext50_32x4d");
    let folded = Inference::new(&split, Options::default());
    assert!(rel_l2(&folded.forward(x), reference) <= 1e-4);
}
