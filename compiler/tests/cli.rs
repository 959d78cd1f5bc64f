//! The `archc` binary: exit codes, the JSON contract, and every command.

mod common;

use common::*;

#[test]
fn check_passes_with_exit_0() {
    let o = archc_exits(&["check", R50X], 0);
    assert_contains(
        &stdout(&o),
        &["25,028,904", "4,230,479,872", "multiply-adds"],
    );
}

#[test]
fn json_contract() {
    let o = archc_exits(&["check", "--format", "json", R50X, R50], 0);
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
    let o = archc_exits(&["check", R50X, "--set", "C=64"], 1);
    assert_contains(
        &stderr(&o),
        &[
            "resnext50_32x4d.arch:",
            "params <= 25.1M` is broken",
            "costliest stages",
        ],
    );
}

#[test]
fn spec_error_exits_2_with_location() {
    for (args, says) in [
        (
            &["check", R50X, "--set", "C=0"][..],
            &[
                "resnext50_32x4d.arch:23:29",
                "`width` must be at least 1, but `C * d` is 0",
            ][..],
        ),
        (
            &["check", R50X, "--set", "nope=1"],
            &["no parameter `nope`"],
        ),
        (&["check", "specs/does-not-exist.arch"], &["cannot read"]),
    ] {
        assert_contains(&stderr(&archc_exits(args, 2)), says);
    }
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

/// Two networks, the second with a stem of no channels.
const GOOD_AND_BAD: &str = "network good {\n input 3x32x32\n classes 10\n stem { conv 3x3 -> 8 }\n head { avgpool; fc -> classes }\n}\n\
     network bad {\n input 3x32x32\n classes 10\n stem { conv 3x3 -> 0 }\n head { avgpool; fc -> classes }\n}\n";

#[test]
fn one_bad_network_does_not_hide_the_good_ones() {
    let dir = scratch("cli-two");
    let spec = write_file(&dir, "two.arch", GOOD_AND_BAD);
    let o = archc_exits(&["check", "--format", "json", spec.to_str().unwrap()], 2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["name"], "good");
    assert!(stderr(&o).contains("width must be at least 1"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A small network, its file starting with a byte order mark.
const TINY_WITH_BOM: &str = "\u{feff}network tiny {\n  input 3x32x32\n  classes 10\n  param C = 4\n  stem { conv 3x3 -> 16 }\n  \
     block bottleneck(width, out) {\n    conv 1x1 -> width\n    conv 3x3/stride -> width, groups C\n    conv 1x1 -> out\n  }\n  \
     stages bottleneck(width = 16, out = 32) { s1: depth 1 }\n  head { avgpool; fc -> classes }\n}\n";

/// `TINY_WITH_BOM` imported and extended with a width its groups do not divide.
const WIDE: &str = "import \"base.arch\"\nnetwork wide extends tiny {\n  stages bottleneck(width = 18, out = 32) { s1: depth 1 }\n}\n";

#[test]
fn byte_order_mark_and_labels_in_other_files() {
    let dir = scratch("cli-files");
    let base = write_file(&dir, "base.arch", TINY_WITH_BOM);
    let wide = write_file(&dir, "wide.arch", WIDE);
    archc_exits(&["check", base.to_str().unwrap()], 0);
    let o = archc_exits(&["check", wide.to_str().unwrap()], 2);
    // The error is drawn in base.arch (the template); the stage that caused it is named.
    assert_contains(
        &stderr(&o),
        &["instantiated by this stage: ", "wide.arch:3:"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn solve_with_no_valid_network_is_a_spec_error() {
    let o = archc(&["solve", R50X, "--for", "d", "--each", "C=0"]);
    assert_eq!(o.status.code(), Some(2));
    let o = archc(&["check", R50X, "--batch", "18446744073709551615"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A network with a parameter that nothing uses.
const INERT: &str = "network t {\n input 3x32x32\n classes 10\n param k = 1\n stem { conv 3x3 -> 8 }\n head { avgpool; fc -> classes }\n budget { params <= 1M }\n}\n";

#[test]
fn solving_for_an_inert_parameter_is_refused_quickly() {
    let dir = scratch("cli-inert");
    let spec = write_file(&dir, "inert.arch", INERT);
    let o = archc_exits(&["solve", spec.to_str().unwrap(), "--for", "k"], 2);
    assert_contains(&stderr(&o), &["`k` changes no figure"]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every `.arch` file under `dir`, recursively.
fn count_arch(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                count_arch(&p)
            } else {
                usize::from(p.extension().is_some_and(|e| e == "arch"))
            }
        })
        .sum()
}

#[test]
fn check_a_folder_of_shipped_specs() {
    let n = count_arch(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs"));
    assert!(n > 10, "{n}");
    let o = archc(&["check", "specs"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().last(),
        Some(format!("{n} specs: {n} ok, 0 over budget, 0 with errors").as_str()),
        "{out}"
    );
    // Sorted by path: cifar/ comes before resnet/, resnet/resnet101 before resnet/resnet18.
    let at = |name: &str| out.find(&format!("{name}  ("));
    assert!(at("resnext29_16x64d").unwrap() < at("resnet101").unwrap());
    assert!(at("resnet101").unwrap() < at("resnet18").unwrap());
}

/// A network of `width` stem channels under `params <= limit`.
fn tiny(name: &str, width: &str, limit: &str) -> String {
    format!(
        "network {name} {{\n input 3x32x32\n classes 10\n stem {{ conv 3x3 -> {width} }}\n \
         head {{ avgpool; fc -> classes }}\n budget {{ params <= {limit} }}\n}}\n"
    )
}

#[test]
fn check_a_folder_reports_the_worst_and_one_summary_line() {
    let dir = scratch("cli-folder");
    let nested = dir.join("nested");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(dir.join("a_ok.arch"), tiny("a_ok", "8", "1M")).unwrap();
    std::fs::write(dir.join("b_over.arch"), tiny("b_over", "8", "100")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a spec").unwrap();
    std::fs::write(nested.join("c_bad.arch"), tiny("c_bad", "0", "1M")).unwrap();
    let d = dir.to_str().unwrap();

    let o = archc(&["check", d]);
    assert_eq!(o.status.code(), Some(2), "an error is worse than a budget");
    let out = stdout(&o);
    assert_eq!(
        out.lines().last(),
        Some("3 specs: 1 ok, 1 over budget, 1 with errors"),
        "{out}"
    );
    assert!(out.find("a_ok  (").unwrap() < out.find("b_over  (").unwrap());
    let err = stderr(&o);
    assert!(err.contains("params <= 100` is broken"), "{err}");
    assert!(err.contains("c_bad.arch"), "{err}");

    // Without the broken spec, the broken budget decides.
    std::fs::remove_dir_all(&nested).unwrap();
    let o = archc(&["check", d]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).lines().last(),
        Some("2 specs: 1 ok, 1 over budget, 0 with errors")
    );

    // JSON keeps stdout an array; the summary line goes to stderr.
    let o = archc(&["check", "--format", "json", d]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(strings(&v, "name"), ["a_ok", "b_over"]);
    assert!(stderr(&o).contains("2 specs: 1 ok, 1 over budget, 0 with errors"));

    // A folder with no spec is a usage error.
    std::fs::remove_file(dir.join("a_ok.arch")).unwrap();
    std::fs::remove_file(dir.join("b_over.arch")).unwrap();
    let o = archc(&["check", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no .arch file under"), "{}", stderr(&o));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_header_names_the_form_only_with_several_paths() {
    let o = archc(&["check", "specs/resnet/resnet50.arch"]);
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert_eq!(first, "resnet50  (input 3x224x224, output 1000x1x1)");
    let o = archc(&["check", R50X]);
    assert!(
        stdout(&o).starts_with("resnext50_32x4d  (grouped, input 3x224x224"),
        "{}",
        stdout(&o)
    );
    let o = archc(&["check", "specs/variants/resnext50_32x4d_split.arch"]);
    assert!(stdout(&o).starts_with("resnext50_32x4d_split  (split, input"));
    // One path: the split form is the plain network.
    let o = archc(&[
        "check",
        "specs/variants/resnext50_32x4d_split.arch",
        "--set",
        "C=1",
    ]);
    assert!(
        stdout(&o).starts_with("resnext50_32x4d_split  (input"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn summary_as_json() {
    let o = archc(&["summary", "--format", "json", R50X]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let nets = v.as_array().unwrap();
    assert_eq!(nets.len(), 1);
    let n = &nets[0];
    assert_eq!(n["name"], "resnext50_32x4d");
    assert_eq!(n["convention"], "torchvision");
    assert_eq!(n["total"]["params"], 25_028_904);
    assert_eq!(n["total"]["macs"], 4_230_479_872u64);
    let layers = n["layers"].as_array().unwrap();
    let sum = |k: &str| layers.iter().map(|l| l[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("params"), 25_028_904);
    assert_eq!(sum("macs"), 4_230_479_872);
    assert_eq!(layers[0]["path"], "conv1");
    assert_eq!(layers[0]["op"], "conv");
    assert_eq!(layers[0]["output"], serde_json::json!([64, 112, 112]));
    assert!(
        layers.iter().all(|l| l["op"] != "relu"),
        "free layers only with --all"
    );
    let all = archc(&["summary", "--format", "json", "--all", R50X]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&all)).unwrap();
    assert!(v[0]["layers"].as_array().unwrap().len() > layers.len());
    // Under another convention, `macs` is that convention's count.
    let o = archc(&[
        "summary",
        "--format",
        "json",
        "--convention",
        "fvcore",
        "specs/resnet/resnet50.arch",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["convention"], "fvcore");
    assert_eq!(v[0]["total"]["macs"], 4_111_512_576u64);
}

#[test]
fn summary_as_csv() {
    let o = archc(&["summary", "--format", "csv", R50X]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("network,layer,op,output,params,buffers,macs,activations")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(
        rows.iter()
            .all(|r| r.len() == 8 && r[0] == "resnext50_32x4d")
    );
    assert_eq!(rows[0][1..4], ["conv1", "conv", "64x112x112"]);
    let (total, layers) = rows.split_last().unwrap();
    assert_eq!(total[1], "total");
    let num = |s: &str| s.parse::<u64>().unwrap();
    let sum = |i: usize| layers.iter().map(|r| num(r[i])).sum::<u64>();
    assert_eq!((num(total[4]), num(total[6])), (25_028_904, 4_230_479_872));
    assert_eq!((sum(4), sum(6)), (25_028_904, 4_230_479_872));
    assert_eq!(sum(5), num(total[5]), "buffers add up");
}

/// A reader that is gone (`archc ... | head` once head has its lines) ends the tool by SIGPIPE,
/// as Unix tools end, not by a panic in `print!`: here stdout is a pipe whose reading end is
/// closed before archc starts, so its first write meets the closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["codegen", R50X])
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdout(writer)
        .output()
        .expect("archc runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        o.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?}",
        o.status
    );
}
