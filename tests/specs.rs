//! Every shipped spec: snapshots of its cost report and expanded graph, the exact figures
//! torchvision gives, and the equivalences the paper states.

use archc::{Compiled, Overrides, Spec};
use archc_tests::{compile, specs_dir};
use std::path::Path;

#[test]
fn snapshot_every_spec() {
    insta::glob!("../specs", "**/*.arch", |path| {
        let spec = Spec::from_path(path).unwrap_or_else(|f| panic!("{}", f.render()));
        let names = spec.networks();
        assert_eq!(
            names.len(),
            1,
            "{} should define one network",
            path.display()
        );
        let c = spec
            .compile(names[0], &Overrides::default())
            .unwrap_or_else(|f| panic!("{}", f.render()));
        assert!(
            c.within_budget(),
            "{} breaks its own budget",
            path.display()
        );
        insta::assert_json_snapshot!("report", archc::emit::report::json(&c));
        insta::assert_snapshot!("expanded", archc::emit::report::expanded(&c));
    });
}

/// (spec, params, buffers, MACs, activations) as torchvision (or our PyTorch reference, for
/// CIFAR) counts them: see scripts/reference.py and tests/reference/torchvision.json.
const TORCHVISION: &[(&str, u64, u64, u64, u64)] = &[
    (
        "resnet/resnet18.arch",
        11_689_512,
        9_600,
        1_814_073_344,
        2_484_712,
    ),
    (
        "resnet/resnet34.arch",
        21_797_672,
        17_024,
        3_663_761_408,
        3_739_112,
    ),
    (
        "resnet/resnet50.arch",
        25_557_032,
        53_120,
        4_089_184_256,
        11_114_984,
    ),
    (
        "resnet/resnet101.arch",
        44_549_160,
        105_344,
        7_801_405_440,
        16_232_936,
    ),
    (
        "resnet/resnet152.arch",
        60_192_808,
        151_424,
        11_513_626_624,
        22_555_112,
    ),
    (
        "resnet/wide_resnet50_2.arch",
        68_883_240,
        68_224,
        11_398_021_120,
        14_401_512,
    ),
    (
        "resnext/resnext50_32x4d.arch",
        25_028_904,
        68_224,
        4_230_479_872,
        14_401_512,
    ),
    (
        "resnext/resnext101_32x8d.arch",
        88_791_336,
        202_880,
        16_414_015_488,
        31_210_472,
    ),
    (
        "resnext/resnext101_64x4d.arch",
        83_455_272,
        202_880,
        15_460_270_080,
        31_210_472,
    ),
    (
        "cifar/resnext29_8x64d.arch",
        34_426_698,
        57_472,
        5_387_266_048,
        8_585_226,
    ),
    (
        "cifar/resnext29_16x64d.arch",
        68_155_210,
        100_480,
        10_688_866_304,
        15_269_898,
    ),
];

#[test]
fn figures_equal_torchvision() {
    for &(rel, params, buffers, macs, acts) in TORCHVISION {
        let t = compile(rel, &[]).report.total;
        assert_eq!(
            (t.params, t.buffers, t.macs, t.activations),
            (params, buffers, macs, acts),
            "{rel}"
        );
        assert_eq!(t.flops(), 2 * macs, "{rel}");
    }
}

#[test]
fn figures_equal_reference_json() {
    // The committed output of scripts/reference.py (PyTorch forward hooks); `scripts/test.sh`
    // regenerates it and checks it is unchanged.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/torchvision.json"),
    )
    .unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let models = reference.as_object().unwrap();
    assert_eq!(models.len(), TORCHVISION.len());
    for (name, r) in models {
        let rel = TORCHVISION
            .iter()
            .map(|t| t.0)
            .find(|p| p.ends_with(&format!("/{name}.arch")))
            .unwrap_or_else(|| panic!("no spec for {name}"));
        let c = compile(rel, &[]);
        let t = c.report.total;
        let n = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(t.params, n("params"), "{name} params");
        assert_eq!(t.buffers, n("buffers"), "{name} buffers");
        assert_eq!(t.macs, n("macs"), "{name} macs");
        assert_eq!(t.activations, n("activations"), "{name} activations");
        // PyTorch's logits are [N, classes]; our shapes are C×H×W, so the fc gives classes×1×1.
        let out: Vec<u64> = r["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(c.output(), [out[0], 1, 1], "{name} output");
        for stage in &c.report.stages {
            if let Some(s) = r["stages"].get(&stage.name) {
                assert_eq!(
                    stage.cost.params,
                    s["params"].as_u64().unwrap(),
                    "{name} {}",
                    stage.name
                );
                assert_eq!(
                    stage.cost.macs,
                    s["macs"].as_u64().unwrap(),
                    "{name} {}",
                    stage.name
                );
            }
        }
    }
}

#[test]
fn paper_cifar_figures_within_0_1m() {
    let p8 = compile("cifar/resnext29_8x64d.arch", &[])
        .report
        .total
        .params;
    let p16 = compile("cifar/resnext29_16x64d.arch", &[])
        .report
        .total
        .params;
    assert!(p8.abs_diff(34_400_000) <= 100_000, "{p8}");
    assert!(p16.abs_diff(68_100_000) <= 100_000, "{p16}");
}

#[test]
fn cardinality_one_width_64_is_resnet50() {
    let resnet = compile("resnet/resnet50.arch", &[]);
    let resnext = compile("resnext/resnext50_32x4d.arch", &[("C", "1"), ("d", "64")]);
    assert_eq!(resnext.report.total, resnet.report.total);
    assert_eq!(resnext.report.stages, resnet.report.stages);
    // Layer by layer, too: same paths, shapes and costs.
    let rows = |c: &Compiled| {
        c.report
            .layers
            .iter()
            .map(|l| (l.path.clone(), l.output, l.cost))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&resnext), rows(&resnet));
}

#[test]
fn three_forms_cost_the_same() {
    for (rel, set) in [
        ("resnext/resnext50_32x4d.arch", vec![]),
        ("cifar/resnext29_8x64d.arch", vec![]),
        (
            "resnext/resnext50_32x4d.arch",
            vec![("C", "8"), ("d", "14")],
        ),
    ] {
        let with = |form: &'static str| {
            let mut s = set.clone();
            s.push(("form", form));
            compile(rel, &s)
        };
        let (c, b, a) = (with("grouped"), with("concat"), with("split"));
        for other in [&b, &a] {
            assert_eq!(other.report.total.params, c.report.total.params, "{rel}");
            assert_eq!(other.report.total.buffers, c.report.total.buffers, "{rel}");
            assert_eq!(other.report.total.macs, c.report.total.macs, "{rel}");
            assert_eq!(other.output(), c.output());
            for (x, y) in other.report.stages.iter().zip(&c.report.stages) {
                assert_eq!((x.cost.params, x.cost.macs), (y.cost.params, y.cost.macs));
                assert_eq!(x.output, y.output);
            }
        }
        // The forms are really different graphs.
        let nodes = |x: &Compiled| x.graph.graph.node_count();
        assert!(nodes(&c) < nodes(&b) && nodes(&b) < nodes(&a), "{rel}");
    }
}

#[test]
fn stride_on_first_1x1_costs_3_86g() {
    let v1 = compile("variants/resnet50_v1.arch", &[]).report.total;
    assert_eq!(v1.params, 25_557_032);
    assert_eq!(v1.macs, 3_857_973_248);
}

#[test]
fn variant_by_extends_equals_variant_by_set() {
    let by_file = compile("variants/resnext50_8x14d.arch", &[]);
    let by_set = compile("resnext/resnext50_32x4d.arch", &[("C", "8"), ("d", "14")]);
    assert_eq!(by_file.report.total, by_set.report.total);
    assert_eq!(by_file.report.total.params, 25_603_016);
}

#[test]
fn input_override_changes_costs_not_params() {
    let path = specs_dir().join("resnext/resnext50_32x4d.arch");
    let spec = Spec::from_path(&path).unwrap();
    let at = |input| {
        spec.compile(
            "resnext50_32x4d",
            &Overrides {
                input: Some(input),
                ..Overrides::default()
            },
        )
        .unwrap()
    };
    let (a, b) = (at([3, 224, 224]), at([3, 320, 320]));
    assert_eq!(a.report.total.params, b.report.total.params);
    // 320×320: the final map is 10×10 instead of 7×7.
    assert_eq!(b.report.stages[4].output, [2048, 10, 10]);
    assert!(b.report.total.macs > 2 * a.report.total.macs);
}

#[test]
fn table1_shapes() {
    let c = compile("resnext/resnext50_32x4d.arch", &[]);
    let outputs: Vec<(String, [u64; 3])> = c
        .report
        .stages
        .iter()
        .map(|s| (s.label.clone().unwrap_or(s.name.clone()), s.output))
        .collect();
    assert_eq!(
        outputs,
        [
            ("stem".to_string(), [64, 56, 56]),
            ("conv2".to_string(), [256, 56, 56]),
            ("conv3".to_string(), [512, 28, 28]),
            ("conv4".to_string(), [1024, 14, 14]),
            ("conv5".to_string(), [2048, 7, 7]),
            ("head".to_string(), [1000, 1, 1]),
        ]
    );
    // conv1 is 112×112 and the grouped conv of conv2 is 128 wide with 32 groups.
    let node = |p: &str| {
        c.graph
            .nodes()
            .find(|(_, n)| n.path == p)
            .map(|(i, _)| i)
            .unwrap()
    };
    let conv = |p: &str| c.graph.conv(node(p)).expect("a conv");
    assert_eq!(
        c.graph.graph[node("conv1")].shape.to_array(),
        [64, 112, 112]
    );
    let g = conv("layer1.0.conv2");
    assert_eq!((g.cout, g.groups), (128, 32));
    let g = conv("layer2.0.conv2");
    assert_eq!((g.cout, g.stride, g.groups), (256, 2, 32));
    let g = conv("layer2.0.downsample.0");
    assert_eq!((g.cout, g.stride, g.kernel), (512, 2, (1, 1)));
}

/// Options are decided from parsed tokens, never from the rule's text: a comment that mentions
/// `no_bias` leaves the classifier's bias in place; the option itself removes it.
#[test]
fn comments_do_not_change_the_network() {
    let net = |fc: &str| {
        let text = format!(
            "network n {{\n  input 3x8x8\n  classes 10\n  stem {{ conv 3x3 -> 8 }}\n  \
             block b(w) {{ conv 3x3 -> w }}\n  stages b(w = 8) {{ s1: depth 1 }}\n  \
             head {{ avgpool\n    {fc}\n  }}\n}}\n"
        );
        let spec = Spec::from_text("n.arch", &text).unwrap_or_else(|f| panic!("{}", f.render()));
        spec.compile("n", &Overrides::default())
            .unwrap_or_else(|f| panic!("{}", f.render()))
            .report
            .total
            .params
    };
    let plain = net("fc -> classes");
    assert_eq!(plain, 914);
    assert_eq!(net("fc -> classes // no_bias here? no"), plain);
    assert_eq!(net("fc -> classes # no_bias"), plain);
    assert_eq!(net("fc -> classes, no_bias"), plain - 10);
    assert_eq!(net("fc -> classes, no_bias // no_bias"), plain - 10);
}
