//! The `archc` binary: exit codes, the JSON contract, and every command.

mod common;

use common::*;

#[test]
fn check_passes_with_exit_0() {
    let o = archc(&["check", R50X]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("25,028,904"), "{out}");
    assert!(
        out.contains("4,230,479,872") && out.contains("multiply-adds"),
        "{out}"
    );
}

#[test]
fn json_contract() {
    let o = archc(&[
        "check",
        "--format",
        "json",
        R50X,
        "specs/resnet/resnet50.arch",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    let r = &a[0];
    for key in [
        "name",
        "params",
        "buffers",
        "macs",
        "flops",
        "activations",
        "input",
        "output",
        "stages",
        "budgets",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    assert_eq!(r["name"], "resnext50_32x4d");
    assert_eq!(r["params"], 25_028_904);
    assert_eq!(r["macs"], 4_230_479_872u64);
    assert_eq!(r["flops"], 8_460_959_744u64);
    assert_eq!(r["input"], serde_json::json!([3, 224, 224]));
    assert_eq!(r["stages"].as_array().unwrap().len(), 6);
    assert_eq!(r["stages"][1]["label"], "conv2");
    assert_eq!(
        r["budgets"][0],
        serde_json::json!({"kind": "params", "op": "<=", "limit": 25_100_000, "actual": 25_028_904, "ok": true})
    );
    assert_eq!(a[1]["params"], 25_557_032);
}

#[test]
fn broken_budget_exits_1_and_names_the_line() {
    let o = archc(&["check", R50X, "--set", "C=64"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("resnext50_32x4d.arch:"), "{err}");
    assert!(err.contains("params <= 25.1M` is broken"), "{err}");
    assert!(err.contains("costliest stages"), "{err}");
}

#[test]
fn spec_error_exits_2_with_location() {
    let o = archc(&["check", R50X, "--set", "C=0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("resnext50_32x4d.arch:23:29"), "{err}");
    assert!(
        err.contains("`width` must be at least 1, but `C * d` is 0"),
        "{err}"
    );
    let o = archc(&["check", R50X, "--set", "nope=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no parameter `nope`"));
    let o = archc(&["check", "specs/does-not-exist.arch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read"));
}

#[test]
fn input_override() {
    let o = archc(&["check", "--format", "json", "--input", "3x320x320", R50X]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v[0]["stages"][4]["output"],
        serde_json::json!([2048, 10, 10])
    );
    assert_eq!(v[0]["params"], 25_028_904);
    let o = archc(&["check", "--input", "3x0x5", R50X]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn summary_rows_add_up() {
    let o = archc(&["summary", R50X]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let mut params = 0u64;
    let mut macs = 0u64;
    let mut total = None;
    for line in out.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| s.replace(',', "").parse::<u64>().ok();
        if cols.first() == Some(&"total") {
            total = Some((num(cols[2]).unwrap(), num(cols[3]).unwrap()));
        } else if cols.len() == 6 {
            params += num(cols[3]).unwrap();
            macs += num(cols[4]).unwrap();
        }
    }
    assert_eq!(total, Some((25_028_904, 4_230_479_872)));
    assert_eq!((params, macs), (25_028_904, 4_230_479_872));
}

#[test]
fn graph_is_dot_with_clusters() {
    let o = archc(&["graph", "specs/resnet/resnet18.arch"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.starts_with("digraph \"resnet18\" {"));
    assert!(out.contains("subgraph cluster_layer1"));
    assert!(out.contains("label=\"layer2.0\""));
    assert!(out.trim_end().ends_with('}'));
    // 8 basic blocks.
    assert_eq!(out.matches("subgraph cluster_b").count(), 8);
}

#[test]
fn expand_is_canonical() {
    let o = archc(&[
        "expand",
        "specs/resnet/resnet18.arch",
        "--set",
        "classes=10",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("layer4.1.conv2"));
    assert!(out.contains("fc 512 -> 10"));
}

/// A scratch folder for specs a test writes.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("archc-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn codegen_checks_its_type_name_and_budgets() {
    let o = archc(&["codegen", "specs/resnet/resnet18.arch", "--type", "Foo Bar"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a Rust identifier"));
    // The macro would refuse a spec over its budget: codegen says so and exits 1.
    let o = archc(&["codegen", R50X, "--set", "C=64"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("params <= 25.1M` is broken"));
    assert!(stdout(&o).contains("pub struct Resnext50_32x4d"));
}

#[test]
fn one_bad_network_does_not_hide_the_good_ones() {
    let dir = scratch("two");
    let spec = dir.join("two.arch");
    std::fs::write(
        &spec,
        "network good {\n input 3x32x32\n classes 10\n stem { conv 3x3 -> 8 }\n head { avgpool; fc -> classes }\n}\n\
         network bad {\n input 3x32x32\n classes 10\n stem { conv 3x3 -> 0 }\n head { avgpool; fc -> classes }\n}\n",
    )
    .unwrap();
    let o = archc(&["check", "--format", "json", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "good");
    assert!(stderr(&o).contains("width must be at least 1"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn byte_order_mark_and_labels_in_other_files() {
    let dir = scratch("files");
    std::fs::write(
        dir.join("base.arch"),
        "\u{feff}network tiny {\n  input 3x32x32\n  classes 10\n  param C = 4\n  stem { conv 3x3 -> 16 }\n  \
         block bottleneck(width, out) {\n    conv 1x1 -> width\n    conv 3x3/stride -> width, groups C\n    conv 1x1 -> out\n  }\n  \
         stages bottleneck(width = 16, out = 32) { s1: depth 1 }\n  head { avgpool; fc -> classes }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("wide.arch"),
        "import \"base.arch\"\nnetwork wide extends tiny {\n  stages bottleneck(width = 18, out = 32) { s1: depth 1 }\n}\n",
    )
    .unwrap();
    let base = dir.join("base.arch");
    let o = archc(&["check", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let wide = dir.join("wide.arch");
    let o = archc(&["check", wide.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    // The error is drawn in base.arch (the template); the stage that caused it is named.
    assert!(
        stderr(&o).contains("instantiated by this stage: "),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("wide.arch:3:"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn solve_with_no_valid_network_is_a_spec_error() {
    let o = archc(&["solve", R50X, "--for", "d", "--each", "C=0"]);
    assert_eq!(o.status.code(), Some(2));
    let o = archc(&["check", R50X, "--batch", "18446744073709551615"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn solving_for_an_inert_parameter_is_refused_quickly() {
    let dir = scratch("inert");
    let spec = dir.join("inert.arch");
    std::fs::write(
        &spec,
        "network t {\n input 3x32x32\n classes 10\n param k = 1\n stem { conv 3x3 -> 8 }\n head { avgpool; fc -> classes }\n budget { params <= 1M }\n}\n",
    )
    .unwrap();
    let o = archc(&["solve", spec.to_str().unwrap(), "--for", "k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`k` changes no figure"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(dir).unwrap();
}
