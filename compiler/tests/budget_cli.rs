//! The budget commands of the binary: `solve`, `sweep`, `explain`, `--convention` and `--batch`,
//! their exit codes (0 ok, 1 no variant fits or a budget is broken, 2 spec or usage error) and
//! the additive JSON fields.

mod common;

use common::*;

use common::{stderr as err, stdout as out};

const T2: &str = "specs/paper/table2_conv2_block.arch";

/// `archc solve SPEC --for d --each EACH` and `more` arguments; asserts the exit status.
fn solve_d(spec: &str, each: &str, more: &[&str], code: i32) -> std::process::Output {
    archc_exits(
        &[&["solve", spec, "--for", "d", "--each", each], more].concat(),
        code,
    )
}

#[test]
fn solve_table2_both_criteria() {
    let o = solve_d(
        T2,
        "C=1,2,4,8,32",
        &["--budget", "weights<=@", "--criterion", "both"],
        0,
    );
    assert_contains(
        &out(&o),
        &[
            "largest d that meets every budget",
            "d nearest to weights <= 69,632",
            "d=40: 128 over",
        ],
    );
}

#[test]
fn solve_table3_json() {
    let reference = format!("params<=@{R50}");
    let o = solve_d(
        R50X,
        "C=2,4,8,32",
        &["--budget", &reference, "--nearest", "--format", "json"],
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let ds: Vec<u64> = v["solutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_u64().unwrap())
        .collect();
    assert_eq!(ds, [40, 24, 14, 4]);
    assert_eq!(v["references"][0]["figures"]["params"], 25_557_032);
}

#[test]
fn solve_exit_codes() {
    // No variant fits: 1, with a clear message.
    let o = solve_d(T2, "C=32", &["--budget", "weights<=1k"], 1);
    assert_contains(&err(&o), &["no d fits for C=32"]);
    assert!(out(&o).contains("NO FIT"));
    // Unknown parameter, bad budget, contradictory flags, missing reference: 2.
    for args in [
        vec!["solve", T2, "--for", "e"],
        vec!["solve", T2, "--for", "d", "--budget", "bogus<=1"],
        vec![
            "solve",
            T2,
            "--for",
            "d",
            "--nearest",
            "--criterion",
            "largest",
        ],
        vec![
            "solve",
            T2,
            "--for",
            "d",
            "--budget",
            "params<=@no/such.arch",
        ],
        vec!["solve", T2, "--for", "d", "--budget", "params>=1"],
        vec!["solve", T2, "--for", "d", "--multiple-of", "0"],
    ] {
        let o = archc_exits(&args, 2);
        assert!(!err(&o).contains("panicked"), "{args:?}");
    }
}

#[test]
fn sweep_formats_and_svg() {
    let svg = std::env::temp_dir().join(format!("archc-sweep-{}.svg", std::process::id()));
    let svg_arg = svg.to_str().unwrap();
    let o = archc_exits(
        &[
            "sweep", T2, "--grid", "C=1,32", "--grid", "d=1..8", "--svg", svg_arg,
        ],
        0,
    );
    assert!(out(&o).contains("16 points"));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("C=32") && text.contains("budget params"));
    std::fs::remove_file(&svg).ok();
    let o = archc(&[
        "sweep", T2, "--grid", "C=1,2", "--grid", "d=4", "--format", "csv",
    ]);
    assert_eq!(out(&o).lines().count(), 3);
    let o = archc(&["sweep", T2, "--grid", "d=4,5", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["points"].as_array().unwrap().len(), 2);
    let o = archc(&["sweep", T2, "--grid", "d=9..1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn explain_and_conventions() {
    let o = archc_exits(
        &[
            "explain",
            R50,
            "--convention",
            "torchvision",
            "--convention",
            "fvcore",
        ],
        0,
    );
    assert!(out(&o).contains("4,111,512,576"));
    // resnet50's `macs <= 4.1G` breaks under fvcore's count: exit 1, the convention named.
    let o = archc_exits(&["check", R50, "--convention", "fvcore"], 1);
    assert_contains(&err(&o), &["fvcore convention"]);
    assert!(out(&o).contains("fvcore flops"));
    archc_exits(&["check", R50, "--convention", "nope"], 2);
    let o = archc(&["summary", R50X, "--convention", "pycls"]);
    assert!(out(&o).contains("maxpool"));
}

#[test]
fn json_gains_convention_and_batch_only_when_asked() {
    let o = archc(&["check", "--format", "json", R50X]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(v[0].get("convention").is_none() && v[0].get("batch").is_none());
    let o = archc(&[
        "check",
        "--format",
        "json",
        "--convention",
        "fvcore",
        "--batch",
        "8",
        R50X,
    ]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v[0]["macs"], 4_230_479_872u64); // the contract's field is unchanged
    assert_eq!(v[0]["convention"]["compute"], 4_259_381_248u64);
    // `batch` is in torchvision's units, like the top-level fields.
    assert_eq!(v[0]["batch"]["macs"], 8 * 4_230_479_872u64);
    assert_eq!(v[0]["batch"]["flops"], 16 * 4_230_479_872u64);
    assert_eq!(v[0]["batch"]["params"], 25_028_904);
}
