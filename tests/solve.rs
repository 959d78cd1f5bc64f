//! The budget tools: `solve` (the paper's Tables 2 and 3), `sweep` (table and SVG), the cost
//! conventions (fvcore's figures exactly, pycls's rules), costs at any resolution and batch, and
//! property tests that every solution meets its budgets and the next larger value does not.

use archc::cost::budget::{Cmp, Figure, Figures, Limit, Origin};
use archc::cost::convention::{self, Convention};
use archc::cost::resolution::{self, ResolutionModel};
use archc::emit::report;
use archc::tools::solve::{self, Criterion, Problem, SolveReport, parse_budget};
use archc::tools::{plot, sweep};
use archc::{Compiled, Overrides, Spec};
use archc_tests::root;
use proptest::prelude::*;

const TABLE2: &str = "specs/paper/table2_conv2_block.arch";
const R50X: &str = "specs/resnext/resnext50_32x4d.arch";
const CARDINALITIES: [u64; 5] = [1, 2, 4, 8, 32];

fn spec(rel: &str) -> Spec {
    Spec::from_path(root().join(rel)).unwrap_or_else(|f| panic!("{}", f.render()))
}

fn compile(rel: &str, set: &[(&str, String)]) -> Compiled {
    let s = spec(rel);
    let name = s.networks()[0].to_string();
    let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.compile(&name, &archc_tests::overrides(&set))
        .unwrap_or_else(|f| panic!("{}", f.render()))
}

/// Runs a solve the way `archc solve` does (budgets from the command line, `@` references
/// resolved against the workspace root, so the output does not depend on where it lives).
fn solve_report(rel: &str, each: &[u64], budgets: &[&str], criteria: &[Criterion]) -> SolveReport {
    let s = spec(rel);
    let name = s.networks()[0].to_string();
    let own = s.compile(&name, &Overrides::default()).unwrap();
    // `@PATH` references resolve against the workspace root; the budgets keep them as written.
    let absolute = |b: &str| match b.split_once("@") {
        Some((head, path)) if !path.is_empty() => {
            format!("{head}@{}", root().join(path).display())
        }
        _ => b.to_string(),
    };
    let written: Vec<String> = budgets
        .iter()
        .map(|b| parse_budget(b).unwrap().written)
        .collect();
    let texts: Vec<_> = budgets
        .iter()
        .map(|b| parse_budget(&absolute(b)).unwrap())
        .collect();
    let (mut budgets, references) =
        solve::budgets_from(&s, &own, &texts, None, Convention::Torchvision)
            .unwrap_or_else(|f| panic!("{}", f.render()));
    for (b, w) in budgets.iter_mut().zip(written) {
        b.written = w;
    }
    let problem = Problem {
        network: name.clone(),
        base: Overrides::default(),
        param: "d".into(),
        each: vec![("C".into(), each.iter().map(u64::to_string).collect())],
        budgets: budgets.clone(),
        criteria: criteria.to_vec(),
        multiple_of: None,
        max: solve::DEFAULT_MAX,
        convention: Convention::Torchvision,
    };
    let solutions = solve::solve(&s, &problem).unwrap_or_else(|f| panic!("{}", f.render()));
    SolveReport {
        network: name,
        param: "d".into(),
        convention: Convention::Torchvision,
        budgets,
        references,
        solutions,
    }
}

fn answers(r: &SolveReport, c: Criterion) -> Vec<u64> {
    r.solutions
        .iter()
        .filter(|s| s.criterion == c)
        .map(|s| s.value.expect("a value"))
        .collect()
}

fn widths(r: &SolveReport, c: Criterion) -> Vec<u64> {
    r.solutions
        .iter()
        .filter(|s| s.criterion == c)
        .map(|s| s.args.iter().find(|(k, _)| k == "width").unwrap().1)
        .collect()
}

// The paper's Table 2.

/// The paper's formula for the block's conv weights: C·(256·d + 3·3·d·d + d·256).
fn paper_weights(c: u64, d: u64) -> u64 {
    c * (256 * d + 9 * d * d + d * 256)
}

#[test]
fn table2_block_is_resnet50s_bottleneck_at_c1_d64() {
    let c = compile(TABLE2, &[]);
    let f = Figures::of(&c, Convention::Torchvision).unwrap();
    assert_eq!(f.weights, 69_632);
    assert_eq!(f.weights, 256 * 64 + 3 * 3 * 64 * 64 + 64 * 256);
    // Batch-norm: 2·64 + 2·64 + 2·256.
    assert_eq!(f.params, 69_632 + 768);
    assert_eq!(c.output(), [256, 56, 56]);
    assert!(c.within_budget());
    // The same block inside ResNet-50 (layer1.1, identity shortcut) costs the same.
    let r50 = compile("specs/resnet/resnet50.arch", &[]);
    let block: u64 = r50
        .report
        .layers
        .iter()
        .filter(|l| l.path.starts_with("layer1.1."))
        .map(|l| l.cost.params)
        .sum();
    assert_eq!(block, f.params);
}

#[test]
fn table2_weights_follow_the_papers_formula() {
    // Brute force: every C of Table 2 and every d up to 128, compiled, against the formula.
    for c in CARDINALITIES {
        for d in 1..=128u64 {
            let net = compile(TABLE2, &[("C", c.to_string()), ("d", d.to_string())]);
            let f = Figures::of(&net, Convention::Torchvision).unwrap();
            assert_eq!(f.weights, paper_weights(c, d), "C={c} d={d}");
            assert_eq!(
                f.params,
                paper_weights(c, d) + 4 * c * d + 512,
                "C={c} d={d}"
            );
        }
    }
}

#[test]
fn table2_reproduced_exactly() {
    // By conv weights, as the paper's formula counts: the value nearest to ResNet-50's block.
    let r = solve_report(
        TABLE2,
        &CARDINALITIES,
        &["weights<=@"],
        &[Criterion::Largest, Criterion::Nearest],
    );
    assert_eq!(answers(&r, Criterion::Nearest), [64, 40, 24, 14, 4]);
    assert_eq!(widths(&r, Criterion::Nearest), [64, 80, 96, 112, 128]);
    // Under a strict "at most" budget the answer differs: d = 40 for C = 2 is 128 over.
    assert_eq!(answers(&r, Criterion::Largest), [64, 39, 23, 13, 3]);
    let c2 = r
        .solutions
        .iter()
        .find(|s| s.criterion == Criterion::Largest && s.assignment[0].1 == "2")
        .unwrap();
    let next = c2.next.as_ref().unwrap();
    assert_eq!((next.value, next.broken[0].excess), (40, 128));
    assert_eq!(c2.binding.as_ref().unwrap().limit.figure, Figure::Weights);
    insta::assert_snapshot!("table2_by_conv_weights", solve::text(&r));

    // Counting batch-norm too (the spec's own budget, params <= 70.4k) gives the same d.
    let r = solve_report(
        TABLE2,
        &CARDINALITIES,
        &[],
        &[Criterion::Largest, Criterion::Nearest],
    );
    assert_eq!(answers(&r, Criterion::Nearest), [64, 40, 24, 14, 4]);
    assert_eq!(answers(&r, Criterion::Largest), [64, 39, 23, 13, 3]);
    insta::assert_snapshot!("table2_by_params", solve::text(&r));
}

#[test]
fn table2_criteria_agree_with_brute_force() {
    // Independently of the solver: scan d with the paper's formula.
    for c in CARDINALITIES {
        let target = 69_632u64;
        let largest = (1..=200)
            .filter(|d| paper_weights(c, *d) <= target)
            .max()
            .unwrap();
        let nearest = (1..=200)
            .min_by_key(|d| {
                (
                    paper_weights(c, *d).abs_diff(target),
                    paper_weights(c, *d) > target,
                )
            })
            .unwrap();
        let r = solve_report(
            TABLE2,
            &[c],
            &["weights<=69632"],
            &[Criterion::Largest, Criterion::Nearest],
        );
        assert_eq!(answers(&r, Criterion::Largest), [largest], "C={c}");
        assert_eq!(answers(&r, Criterion::Nearest), [nearest], "C={c}");
    }
}

// The paper's Table 3.

#[test]
fn table3_reproduced() {
    let r = solve_report(
        R50X,
        &[2, 4, 8, 32],
        &["params<=@specs/resnet/resnet50.arch"],
        &[Criterion::Nearest, Criterion::Largest],
    );
    assert_eq!(r.budgets[0].value, 25_557_032);
    assert_eq!(r.references[0].label, "resnet50");
    assert_eq!(r.references[0].figures.macs, 4_089_184_256);
    assert_eq!(answers(&r, Criterion::Nearest), [40, 24, 14, 4]);
    // 8×14d is 45,984 parameters over ResNet-50; the largest that is not over is 8×13d.
    assert_eq!(answers(&r, Criterion::Largest), [40, 24, 13, 4]);
    let by_c: Vec<(u64, u64)> = r
        .solutions
        .iter()
        .filter(|s| s.criterion == Criterion::Nearest)
        .map(|s| {
            let f = s.figures.unwrap();
            (f.params, f.macs)
        })
        .collect();
    assert_eq!(by_c[2], (25_603_016, 4_267_409_408)); // = specs/variants/resnext50_8x14d.arch
    assert_eq!(by_c[3], (25_028_904, 4_230_479_872)); // = torchvision's resnext50_32x4d
    insta::assert_snapshot!("table3", solve::text(&r));
    insta::assert_json_snapshot!("table3_json", r);
}

#[test]
fn no_variant_fits_is_a_clear_answer() {
    let r = solve_report(TABLE2, &[32], &["weights<=10k"], &[Criterion::Largest]);
    let s = &r.solutions[0];
    assert_eq!(s.value, None);
    let reason = s.reason.as_deref().unwrap();
    assert!(reason.contains("no value of d"), "{reason}");
    assert!(
        reason.contains("at the smallest valid value, d = 1"),
        "{reason}"
    );
    assert!(solve::text(&r).contains("NO FIT"));
    assert!(!r.all_found());
}

#[test]
fn multiple_of_is_honoured() {
    let s = spec(R50X);
    let own = s.compile("resnext50_32x4d", &Overrides::default()).unwrap();
    let (budgets, _) = solve::budgets_from(
        &s,
        &own,
        &[parse_budget("params<=25.6M").unwrap()],
        None,
        Convention::Torchvision,
    )
    .unwrap();
    let p = Problem {
        network: "resnext50_32x4d".into(),
        base: Overrides::default(),
        param: "d".into(),
        each: vec![("C".into(), vec!["2".into(), "8".into()])],
        budgets,
        criteria: vec![Criterion::Largest],
        multiple_of: Some(64),
        max: 4096,
        convention: Convention::Torchvision,
    };
    let sol = solve::solve(&s, &p).unwrap();
    // C·d must be a multiple of 64: d = 32 for C = 2, d = 8 for C = 8.
    assert_eq!(sol[0].value, Some(32));
    assert_eq!(sol[1].value, Some(8));
    assert!(sol[0].skipped > 0);
}

#[test]
fn unknown_parameter_and_missing_upper_bound_are_errors() {
    let s = spec(TABLE2);
    let base = Problem {
        network: "table2_conv2_block".into(),
        base: Overrides::default(),
        param: "width".into(),
        each: Vec::new(),
        budgets: vec![Limit::new(
            Figure::Params,
            Cmp::AtMost,
            70_400,
            "70.4k",
            Origin::Spec(archc::Span::default()),
        )],
        criteria: vec![Criterion::Largest],
        multiple_of: None,
        max: 100,
        convention: Convention::Torchvision,
    };
    let err = solve::solve(&s, &base).unwrap_err();
    assert_eq!(err.diagnostics[0].code, "archc::expand::override");
    let p = Problem {
        param: "d".into(),
        budgets: vec![Limit::new(
            Figure::Params,
            Cmp::AtLeast,
            1,
            "1",
            Origin::Override,
        )],
        ..base
    };
    let err = solve::solve(&s, &p).unwrap_err();
    assert!(err.diagnostics[0].message.contains("`<=` budget"));
}

#[test]
fn budget_parsing() {
    let b = parse_budget("params <= 25.6M").unwrap();
    assert_eq!((b.figure, b.cmp), (Figure::Params, Cmp::AtMost));
    assert_eq!(b.limit, solve::LimitText::Number(25_600_000));
    assert!(parse_budget("weights>=@").is_ok());
    assert!(
        parse_budget("bogus<=1")
            .unwrap_err()
            .contains("not a figure")
    );
    assert!(parse_budget("params<1").is_err());
    assert!(parse_budget("params<=1.5").unwrap_err().contains("whole"));
    assert!(parse_budget("params<=x").is_err());
    assert!(parse_budget("params<=99999999999999999999").is_err());
}

// Sweeps.

fn table2_sweep() -> sweep::Sweep {
    let s = spec(TABLE2);
    let axes = vec![
        sweep::parse_axis("C=1,2,4,8,32").unwrap(),
        sweep::parse_axis("d=4,14,24,40,64").unwrap(),
    ];
    let budgets = vec![Limit::new(
        Figure::Weights,
        Cmp::AtMost,
        69_632,
        "69632",
        Origin::Override,
    )];
    sweep::sweep(
        &s,
        "table2_conv2_block",
        &Overrides::default(),
        &axes,
        &budgets,
        Convention::Torchvision,
    )
    .unwrap()
}

#[test]
fn sweep_table() {
    let s = table2_sweep();
    assert_eq!(s.points.len(), 25);
    insta::assert_snapshot!("sweep_table2_text", sweep::text(&s));
    insta::assert_snapshot!("sweep_table2_csv", sweep::csv(&s));
    // Every point is the paper's formula.
    for p in &s.points {
        let c: u64 = p.values[0].parse().unwrap();
        let d: u64 = p.values[1].parse().unwrap();
        assert_eq!(p.figures.unwrap().weights, paper_weights(c, d));
        assert_eq!(p.feasible, paper_weights(c, d) <= 69_632);
    }
}

#[test]
fn sweep_svg_has_the_series_and_budget_lines() {
    let s = table2_sweep();
    let svg = plot::svg(&s, "d").unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for label in [
        "C=1",
        "C=2",
        "C=4",
        "C=8",
        "C=32",
        "budget weights &lt;= 69,632",
    ] {
        assert!(svg.contains(label), "no `{label}` in the SVG");
    }
    assert!(svg.contains("weights (no batch-norm) against d"));
    assert!(svg.contains("MACs (torchvision) against d"));
    // One line per series on each panel, and a marker per point (25 points × 2 panels).
    assert!(svg.matches("<polyline").count() >= 10, "too few lines");
    assert!(svg.matches("<circle").count() >= 2 * 25, "too few markers");
    // Not an axis, or not numeric: errors, not panics.
    assert!(plot::svg(&s, "nope").is_err());
}

#[test]
fn sweep_over_resolution_and_bad_grids() {
    let s = spec(R50X);
    // resnext50_32x4d swept over one axis, without budgets.
    let sweep_over = |axis: &str| {
        sweep::sweep(
            &s,
            "resnext50_32x4d",
            &Overrides::default(),
            &[sweep::parse_axis(axis).unwrap()],
            &[],
            Convention::Torchvision,
        )
    };
    let sw = sweep_over("res=224,320,97x131").unwrap();
    for (p, input) in sw
        .points
        .iter()
        .zip([[3, 224, 224], [3, 320, 320], [3, 97, 131]])
    {
        let full = s
            .compile(
                "resnext50_32x4d",
                &Overrides {
                    input: Some(input),
                    ..Overrides::default()
                },
            )
            .unwrap();
        assert_eq!(p.figures.unwrap().macs, full.report.total.macs, "{input:?}");
    }
    assert!(sweep::parse_axis("d=5..1").is_err());
    assert!(sweep::parse_axis("d=1..9:0").is_err());
    assert!(sweep::parse_axis("d").is_err());
    assert_eq!(
        sweep::parse_values("1..3,8..16:4").unwrap(),
        ["1", "2", "3", "8", "12", "16"]
    );
    let err = sweep_over("nope=1,2").unwrap_err();
    assert_eq!(err.diagnostics[0].code, "archc::expand::override");
    // Points that do not compile are reported, not fatal: C = 3 does not divide 256 in the
    // split form... here, d = 0 is not a width.
    let sw = sweep_over("d=0,1").unwrap();
    assert!(sw.points[0].error.is_some() && sw.points[1].figures.is_some());
}

// Conventions.

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("tests/reference/torchvision.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn spec_for(model: &str) -> String {
    ["resnet", "resnext", "cifar"]
        .iter()
        .map(|d| format!("specs/{d}/{model}.arch"))
        .find(|p| root().join(p).exists())
        .unwrap_or_else(|| panic!("no spec for {model}"))
}

#[test]
fn fvcore_convention_reproduces_fvcore_exactly() {
    let r = reference();
    let models = r.as_object().unwrap();
    assert_eq!(models.len(), 11);
    for (model, fig) in models {
        let c = compile(&spec_for(model), &[]);
        let report = convention::analyze(&c.graph, &[], Convention::Fvcore).unwrap();
        assert_eq!(
            report.total.macs,
            fig["fvcore_flops"].as_u64().unwrap(),
            "{model} fvcore_flops"
        );
        // Operator by operator, through `explain`.
        let e = convention::explanation(&c.graph, &[Convention::Fvcore]).unwrap();
        let kind = |k: &str| {
            e.kinds
                .iter()
                .find(|r| r.kind.name() == k)
                .map_or(0, |r| r.compute[0])
        };
        let by_op = &fig["fvcore_by_operator"];
        for (ours, fvcore) in [
            ("conv", "conv"),
            ("fc", "linear"),
            ("bn", "batch_norm"),
            ("avgpool", "adaptive_avg_pool2d"),
        ] {
            let theirs = by_op[fvcore].as_u64().unwrap();
            assert_eq!(kind(ours), theirs, "{model} {fvcore}");
        }
        // fvcore's activations and parameters are archc's.
        assert_eq!(
            report.total.activations,
            fig["activations"].as_u64().unwrap()
        );
        assert_eq!(report.total.params, fig["params"].as_u64().unwrap());
        // torchvision's convention is archc's default.
        let tv = convention::analyze(&c.graph, &[], Convention::Torchvision).unwrap();
        assert_eq!(tv.total, c.report.total);
        assert_eq!(tv.total.macs, fig["macs"].as_u64().unwrap());
    }
}

#[test]
fn pycls_convention_follows_its_cx_rules() {
    // pycls: conv and linear flops plus bias additions, max-pool outputs as activations.
    let c = compile("specs/resnet/resnet50.arch", &[]);
    let p = convention::analyze(&c.graph, &[], Convention::Pycls).unwrap();
    assert_eq!(p.total.macs, 4_089_184_256 + 1_000); // fc bias
    assert_eq!(p.total.activations, 11_114_984 + 64 * 56 * 56); // the stem's max-pool
    assert_eq!(p.total.params, c.report.total.params);
    let cifar = compile("specs/cifar/resnext29_8x64d.arch", &[]);
    let p = convention::analyze(&cifar.graph, &[], Convention::Pycls).unwrap();
    assert_eq!(p.total.macs, cifar.report.total.macs + 10); // no max-pool, 10 classes
    assert_eq!(p.total.activations, cifar.report.total.activations);
}

#[test]
fn explain_resnet50() {
    let c = compile("specs/resnet/resnet50.arch", &[]);
    let e = convention::explanation(&c.graph, &Convention::ALL).unwrap();
    assert_eq!(
        e.total_compute,
        [4_089_184_256, 4_111_512_576, 4_089_185_256]
    );
    insta::assert_snapshot!("explain_resnet50", report::explain_text(&e));
}

#[test]
fn budgets_under_a_convention() {
    // resnet50's `macs <= 4.1G` holds for torchvision's count and breaks for fvcore's.
    let c = compile("specs/resnet/resnet50.arch", &[]);
    let tv = convention::analyze(&c.graph, &c.report.limits(), Convention::Torchvision).unwrap();
    let fv = convention::analyze(&c.graph, &c.report.limits(), Convention::Fvcore).unwrap();
    assert!(tv.budgets.iter().all(|b| b.ok));
    assert!(
        !fv.budgets
            .iter()
            .find(|b| b.limit.figure == Figure::Macs)
            .unwrap()
            .ok
    );
}

// Costs at any resolution and batch.

/// Every shipped spec, relative to the workspace root.
fn shipped() -> Vec<String> {
    archc_tests::shipped()
        .into_iter()
        .map(|rel| format!("specs/{rel}"))
        .collect()
}

fn at(rel: &str, input: [u64; 3]) -> Result<Compiled, archc::Failure> {
    let s = spec(rel);
    let name = s.networks()[0].to_string();
    s.compile(
        &name,
        &Overrides {
            input: Some(input),
            ..Overrides::default()
        },
    )
}

/// The fast paths against a full recompile at `input`, for every convention.
fn check_resolution(rel: &str, c: &Compiled, h: u64, w: u64) {
    let ch = c.model.input[0];
    let full = at(rel, [ch, h, w]);
    let re = resolution::recost(c, [ch, h, w]);
    match (&full, &re) {
        (Ok(f), Ok(r)) => {
            assert_eq!(r.report, f.report, "{rel} at {h}x{w}");
            assert_eq!(r.output(), f.output());
            assert_eq!(r.model.input, f.model.input);
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "{rel} at {h}x{w}: recompile ok = {}, recost ok = {}",
            full.is_ok(),
            re.is_ok()
        ),
    }
    for conv in Convention::ALL {
        let m = ResolutionModel::new(&c.graph, conv).unwrap();
        let fast = m.eval(h, w);
        match &full {
            Ok(f) => {
                let want = convention::analyze(&f.graph, &[], conv).unwrap().total;
                assert_eq!(fast, Some(want), "{rel} {conv} at {h}x{w}");
            }
            Err(_) => assert_eq!(fast, None, "{rel} {conv} at {h}x{w}"),
        }
    }
}

#[test]
fn resolution_equals_recompile_for_every_shipped_spec() {
    for rel in shipped() {
        let c = compile(&rel, &[]);
        let [_, h0, w0] = c.model.input;
        for (h, w) in [
            (h0, w0),
            (320, 320),
            (225, 225),
            (97, 131),
            (1, 1),
            (7, 3),
            (512, 288),
        ] {
            check_resolution(&rel, &c, h, w);
        }
    }
}

#[test]
fn the_papers_320_test_size() {
    let c = compile(R50X, &[]);
    let m = ResolutionModel::new(&c.graph, Convention::Torchvision).unwrap();
    let at320 = m.eval(320, 320).unwrap();
    let sizes = m.sizes(320, 320).unwrap();
    assert!(sizes.contains(&(10, 10)), "{sizes:?}"); // conv5 is 10×10 at 320
    assert_eq!(at320, at(R50X, [3, 320, 320]).unwrap().report.total);
    // Channels change the graph: the fast path refuses them.
    assert!(resolution::recost(&c, [1, 224, 224]).is_err());
    insta::assert_snapshot!("resnext50_macs_formula", m.formula(|c| c.macs, "MACs"));
}

#[test]
fn batch_multiplies_compute_and_activations_only() {
    let c = compile("specs/resnet/resnet50.arch", &[]);
    let b = resolution::batched(&c.report.total, 8).unwrap();
    assert_eq!(b.macs, 8 * 4_089_184_256);
    assert_eq!(b.flops, 16 * 4_089_184_256);
    assert_eq!(b.activations, 8 * 11_114_984);
    assert_eq!((b.params, b.buffers), (25_557_032, 53_120));
    assert!(resolution::batched(&c.report.total, u64::MAX).is_none());
}

#[test]
fn an_empty_head_needs_no_classes_but_a_missing_head_is_still_an_error() {
    let headless = "network b { input 64x8x8\n block r(out) { conv 3x3 -> out; conv 3x3 -> out }\n stages r(out = 64) { s: depth 1 }\n head { } }";
    let s = Spec::from_text("b.arch", headless).unwrap();
    let c = s.compile("b", &Overrides::default()).unwrap();
    assert_eq!(c.output(), [64, 8, 8]);
    assert_eq!(c.model.classes, 0);
    let no_head = headless.replace("head { }", "classes 10");
    let s = Spec::from_text("b.arch", &no_head).unwrap();
    let err = s.compile("b", &Overrides::default()).unwrap_err();
    assert!(err.render().contains("has no head"));
    // A head that uses `classes` still needs it.
    let fc = headless.replace("head { }", "head { avgpool; fc -> classes }");
    let s = Spec::from_text("b.arch", &fc).unwrap();
    assert!(
        s.compile("b", &Overrides::default())
            .unwrap_err()
            .render()
            .contains("has no classes")
    );
}

// Properties.

/// A small ResNeXt whose widths the properties solve for.
fn small(depth: u64) -> String {
    format!(
        r#"
network t {{
  input 3x32x32
  classes 10
  param C = 4
  param d = 4
  stem {{ conv 3x3 -> 32 }}
  block bottleneck(width, out) {{
    conv 1x1 -> width
    conv 3x3/stride -> width, groups C
    conv 1x1 -> out
  }}
  stages bottleneck(width = C * d, out = 64) {{
    s1: depth {depth}
    s2: depth {depth}, stride 2
  }}
  head {{ avgpool; fc -> classes }}
}}
"#
    )
}

fn figures_at(s: &Spec, c: u64, d: u64) -> Option<Figures> {
    let net = s
        .compile(
            "t",
            &archc_tests::overrides(&[("C", &c.to_string()), ("d", &d.to_string())]),
        )
        .ok()?;
    Figures::of(&net, Convention::Torchvision).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn solutions_meet_their_budgets_and_the_next_value_does_not(
        c in prop::sample::select(vec![1u64, 2, 4, 8, 16]),
        depth in 1u64..3,
        params in 20_000u64..2_000_000,
        macs in prop::option::of(5_000_000u64..400_000_000),
        figure in prop::sample::select(vec!["params", "weights"]),
    ) {
        let s = Spec::from_text("t.arch", &small(depth)).unwrap();
        let mut budgets = vec![Limit::new(Figure::from_name(figure).unwrap(), Cmp::AtMost, params, "x", Origin::Override)];
        if let Some(m) = macs {
            budgets.push(Limit::new(Figure::Macs, Cmp::AtMost, m, "y", Origin::Override));
        }
        let p = Problem {
            network: "t".into(),
            base: Overrides::default(),
            param: "d".into(),
            each: vec![("C".into(), vec![c.to_string()])],
            budgets: budgets.clone(),
            criteria: vec![Criterion::Largest, Criterion::Nearest],
            multiple_of: None,
            max: 4096,
            convention: Convention::Torchvision,
        };
        let sol = solve::solve(&s, &p).unwrap();
        let largest = &sol[0];
        match largest.value {
            Some(v) => {
                let f = figures_at(&s, c, v).unwrap();
                prop_assert!(budgets.iter().all(|b| b.check(&f).ok));
                // The next larger value breaks a budget.
                let next = figures_at(&s, c, v + 1).unwrap();
                prop_assert!(budgets.iter().any(|b| !b.check(&next).ok));
                prop_assert_eq!(largest.next.as_ref().unwrap().value, v + 1);
                prop_assert!(largest.binding.is_some());
            }
            None => {
                // Then even d = 1 breaks a budget.
                let f = figures_at(&s, c, 1).unwrap();
                prop_assert!(budgets.iter().any(|b| !b.check(&f).ok));
            }
        }
        // Nearest: every other budget holds, and no neighbour is closer to the target.
        if let Some(v) = sol[1].value {
            let f = figures_at(&s, c, v).unwrap();
            prop_assert!(budgets[1..].iter().all(|b| b.check(&f).ok));
            let dist = |f: &Figures| f.get(budgets[0].figure).abs_diff(budgets[0].value);
            for n in [v.saturating_sub(1), v + 1] {
                if n == 0 || n == v { continue; }
                let g = figures_at(&s, c, n).unwrap();
                if budgets[1..].iter().all(|b| b.check(&g).ok) {
                    prop_assert!(dist(&g) >= dist(&f), "d={n} is closer than d={v}");
                }
            }
        }
    }

    #[test]
    fn resolution_model_equals_recompile(h in 1u64..700, w in 1u64..700, which in 0usize..4) {
        let rel = ["specs/resnet/resnet50.arch", R50X, "specs/cifar/resnext29_8x64d.arch", "specs/variants/resnext50_32x4d_split.arch"][which];
        let c = compile(rel, &[]);
        check_resolution(rel, &c, h, w);
    }
}
