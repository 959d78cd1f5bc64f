//! `archc codegen --target pytorch`: snapshots of the generated Python, and properties of the
//! classes it defines. runtime/tests/pytorch.rs runs the generated modules (ruff, torchvision,
//! the runtime).

use archc::emit::pytorch::module;

fn generated(rel: &str, set: &[(&str, &str)]) -> String {
    let c = archc_tests::compile(rel, set);
    module(std::slice::from_ref(&c), &format!("`specs/{rel}`"))
}

fn mixed(form: &str) -> String {
    let c = archc_tests::compile_text("mixed", archc_tests::MIXED_LAYOUTS, &[("form", form)]);
    module(&[c], "`mixed.arch`")
}

#[test]
fn pytorch_sliced_paths_split_form() {
    let c = archc_tests::compile_text("sliced", archc_tests::SLICED_PATHS, &[("form", "split")]);
    insta::assert_snapshot!(module(&[c], "`sliced.arch`"));
}

#[test]
fn pytorch_of_the_snapshotted_specs() {
    for (name, rel, set) in archc_tests::SNAPSHOTTED {
        insta::assert_snapshot!(format!("pytorch_{name}"), generated(rel, set));
    }
}

#[test]
fn pytorch_mixed_layouts_split_form() {
    insta::assert_snapshot!(mixed("split"));
}

/// Names of the classes a module defines, in order.
fn classes(py: &str) -> Vec<String> {
    py.lines()
        .filter_map(|l| l.strip_prefix("class "))
        .map(|l| l.split('(').next().unwrap_or_default().to_string())
        .collect()
}

/// Block classes the network's `nn.Sequential` stages instantiate, with how many blocks.
fn stage_blocks(py: &str) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for l in py.lines() {
        let Some(rest) = l.strip_prefix("            ") else {
            continue;
        };
        if !rest.starts_with(|c: char| c.is_ascii_uppercase()) || rest.starts_with("Conv(") {
            continue;
        }
        let name = rest.split('(').next().unwrap_or_default().to_string();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, n)) => *n += 1,
            None => out.push((name, 1)),
        }
    }
    out
}

#[test]
fn blocks_of_one_stage_with_different_layouts_get_one_class_each() {
    let py = mixed("split");
    assert_eq!(
        classes(&py),
        ["Conv", "MixedBPath", "MixedB", "MixedBLayout2", "Mixed"]
    );
    // s1 (4 paths) and s2's first block (2 paths: `g * stride`) share `MixedB`; s2's second
    // block has no paths (cardinality 1), so it is `MixedBLayout2`.
    assert_eq!(
        stage_blocks(&py),
        [("MixedB".to_string(), 2), ("MixedBLayout2".to_string(), 1)]
    );
    assert!(py.contains("                paths=2,\n"), "{py}");
    assert!(py.contains("                paths=4,\n"), "{py}");
    // The grouped form has one layout.
    assert_eq!(classes(&mixed("grouped")), ["Conv", "MixedB", "Mixed"]);
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(
        generated("resnext/resnext50_32x4d.arch", &[("form", "split")]),
        generated("resnext/resnext50_32x4d.arch", &[("form", "split")])
    );
}

#[test]
fn costs_are_class_constants() {
    let c = archc_tests::compile("resnext/resnext50_32x4d.arch", &[]);
    let py = generated("resnext/resnext50_32x4d.arch", &[]);
    let t = c.report.total;
    assert_eq!((t.params, t.macs), (25_028_904, 4_230_479_872));
    for line in [
        "    PARAMS = 25_028_904\n",
        "    BUFFERS = 68_224\n",
        "    MACS = 4_230_479_872\n",
        "    FLOPS = 8_460_959_744\n",
        "    INPUT = (3, 224, 224)\n",
        "    OUTPUT = (1000,)\n",
    ] {
        assert!(py.contains(line), "missing {line:?}");
    }
}

#[test]
fn every_shipped_spec_generates_in_every_form() {
    for rel in archc_tests::shipped() {
        for form in ["grouped", "concat", "split"] {
            let py = generated(&rel, &[("form", form)]);
            let defined = classes(&py);
            for (class, _) in stage_blocks(&py) {
                assert!(defined.contains(&class), "{rel} {form}: {class} undefined");
            }
            let c = archc_tests::compile(&rel, &[("form", form)]);
            let net = archc::emit::pytorch::class_name(&c.model.name);
            assert_eq!(defined.last(), Some(&net), "{rel} {form}");
            assert!(
                !py.lines().any(|l| l.len() > 88),
                "{rel} {form}: a long line"
            );
        }
    }
    // A network without head layers and a bare module: no `torch.` is needed, none imported.
    let py = generated("paper/table2_conv2_block.arch", &[]);
    assert!(!py.contains("import torch\n") && !py.contains("= torch."));
    let split = generated(
        "paper/table2_conv2_block.arch",
        &[("form", "split"), ("C", "4")],
    );
    assert!(split.contains("import torch\n") && split.contains("= torch.stack(outs)"));
}

#[test]
fn a_file_with_two_networks_is_one_module() {
    let text = format!(
        "{}\n{}",
        archc_tests::MIXED_LAYOUTS,
        archc_tests::MIXED_LAYOUTS
            .replace("network mixed", "network tensor")
            .replace("form split", "form grouped")
    );
    let spec = archc::Spec::from_text("two.arch", &text).unwrap();
    let nets: Vec<archc::Compiled> = spec
        .networks()
        .iter()
        .map(|n| spec.compile(n, &Default::default()).unwrap())
        .collect();
    let py = module(&nets, "`two.arch`");
    // One header, the `Conv` type once; `tensor` becomes `TensorNet`, not a second `Tensor`.
    assert_eq!(py.matches("from torch import Tensor, nn\n").count(), 1);
    assert_eq!(
        classes(&py),
        [
            "Conv",
            "MixedBPath",
            "MixedB",
            "MixedBLayout2",
            "Mixed",
            "TensorNetB",
            "TensorNet"
        ]
    );
    assert!(py.starts_with("\"\"\"`Mixed`, `TensorNet` from `two.arch`, as PyTorch modules."));
}

mod layouts {
    //! Every layout a two-stage spec can produce (per-stage cardinality, `g * stride`, three
    //! forms) generates a module whose stages use only classes it defines.

    use super::{classes, stage_blocks};
    use archc::emit::pytorch::module;
    use archc::{Overrides, Spec};
    use archc_tests::two_stage::{self, Shape};
    use proptest::prelude::*;

    /// Bottleneck blocks (1×1, grouped 3×3, 1×1), width 24 in both stages.
    fn spec(form: &str, g: [u64; 2], stride_groups: bool, depth: [u64; 2]) -> String {
        let shape = Shape {
            lead: true,
            tail: true,
        };
        two_stage::spec(form, shape, g, [1, 1], depth, stride_groups)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        #[test]
        fn every_layout_generates(
            form in prop::sample::select(vec!["grouped", "concat", "split"]),
            g in [prop::sample::select(vec![1u64, 2, 3, 4]), prop::sample::select(vec![1u64, 2, 3, 4])],
            stride_groups in any::<bool>(),
            depth in [1u64..3, 1u64..3],
        ) {
            let text = spec(form, g, stride_groups, depth);
            let spec = Spec::from_text("t.arch", &text).unwrap_or_else(|f| panic!("{}", f.render()));
            let c = spec.compile("t", &Overrides::default());
            prop_assert!(c.is_ok(), "does not compile:\n{}", text);
            let c = c.expect("checked");
            let py = module(std::slice::from_ref(&c), "a property test");
            let defined = classes(&py);
            let used = stage_blocks(&py);
            prop_assert_eq!(used.iter().map(|(_, n)| n).sum::<usize>(), c.graph.blocks.len());
            for (class, _) in &used {
                prop_assert!(defined.contains(class), "{} undefined in\n{}", class, py);
            }
        }
    }
}
