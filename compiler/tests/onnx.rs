//! `archc export onnx`, checked by the `onnx` package's full checker and by ONNX Runtime
//! (`scripts/onnx_check.py`, run with the project's venv, `.venv/bin/python3`, which
//! `scripts/test.sh` sets up). These tests fail, not skip, when the venv or the parity fixtures
//! (`scripts/parity.py`, in `target/parity` or `$ARCHC_PARITY_DIR`) are missing.

mod common;

use archc::Overrides;
use archc_tests::{root, venv_python};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn parity(what: &str) -> PathBuf {
    archc_tests::parity_fixture("resnext50_32x4d", what)
}

/// Runs `scripts/onnx_check.py` on `models` with `extra` flags: one JSON report per model.
fn check(models: &[PathBuf], extra: &[&str]) -> Vec<Value> {
    let o = Command::new(venv_python())
        .arg(root().join("scripts/onnx_check.py"))
        .args(models)
        .args(extra)
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "onnx_check.py failed on {models:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8(o.stdout).unwrap();
    let reports: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), models.len(), "{out}");
    reports
}

/// `archc export onnx` with `args`, writing `out`; asserts exit 0.
fn export(out: &Path, args: &[&str]) {
    let o = export_onnx(out, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains("wrote "), "{}", stderr(&o));
}

#[test]
fn every_shipped_spec_passes_the_full_checker_with_archc_checks_counts() {
    let dir = scratch("onnx-shipped");
    let specs: Vec<String> = archc_tests::shipped()
        .iter()
        .map(|rel| format!("specs/{rel}"))
        .collect();
    assert!(specs.len() >= 15, "{specs:?}");
    for spec in &specs {
        let o = archc(&["check", "--format", "json", spec]);
        assert_eq!(o.status.code(), Some(0), "{spec}: {}", stderr(&o));
        let nets: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
        for net in &nets {
            let name = net["name"].as_str().unwrap();
            let out = dir.join(format!("{name}.onnx"));
            export(&out, &[spec, "--network", name]);
            let r = &check(std::slice::from_ref(&out), &[])[0];
            std::fs::remove_file(&out).unwrap();
            assert_eq!(r["params"], net["params"], "{spec} {name}: params");
            assert_eq!(r["buffers"], net["buffers"], "{spec} {name}: buffers");
            assert_eq!(r["opset"], 17, "{spec}");
            assert_eq!(r["ir_version"], 8, "{spec}");
            assert_eq!(r["producer"], "archc");
            assert!(
                r["doc_string"].as_str().unwrap().contains("NOT TRAINED"),
                "{spec}: {}",
                r["doc_string"]
            );
            let input = &net["input"];
            assert_eq!(
                r["inputs"],
                serde_json::json!([{"name": "input", "dims": ["batch", input[0], input[1], input[2]]}]),
                "{spec}"
            );
            let output = &net["output"];
            let want = if r["op_types"].as_array().unwrap().contains(&"Gemm".into()) {
                serde_json::json!([{"name": "logits", "dims": ["batch", output[0]]}])
            } else {
                serde_json::json!([{"name": "output", "dims": ["batch", output[0], output[1], output[2]]}])
            };
            assert_eq!(r["outputs"], want, "{spec}");
            println!(
                "{spec} {name}: {} nodes, {} params, {} buffers: full check passed",
                r["nodes"], r["params"], r["buffers"]
            );
        }
    }
}

#[test]
fn resnext50_with_parity_weights_matches_pytorch_in_every_form_and_folded() {
    let dir = scratch("onnx-parity");
    let weights = parity("weights");
    let io = parity("io");
    let mut models = Vec::new();
    let mut cases = Vec::new();
    for form in ["grouped", "concat", "split"] {
        for fold in [false, true] {
            let out = dir.join(format!("{form}-{fold}.onnx"));
            let set = format!("form={form}");
            let mut args = vec![R50X, "--set", &set, "--weights", weights.to_str().unwrap()];
            if fold {
                args.push("--fold-bn");
            }
            export(&out, &args);
            models.push(out);
            cases.push((form, fold));
        }
    }
    // Other opsets than the default.
    for opset in ["13", "21"] {
        let out = dir.join(format!("opset{opset}.onnx"));
        export(
            &out,
            &[
                R50X,
                "--weights",
                weights.to_str().unwrap(),
                "--opset",
                opset,
            ],
        );
        models.push(out);
        cases.push(("grouped", false));
    }
    let reports = check(&models, &["--io", io.to_str().unwrap()]);
    for ((form, fold), r) in cases.iter().zip(&reports) {
        let err = r["rel_l2"].as_f64().unwrap();
        let err1 = r["rel_l2_batch1"].as_f64().unwrap();
        println!(
            "{form} fold={fold} opset {}: relative L2 {err:.3e} (batch 1: {err1:.3e}), {} nodes",
            r["opset"], r["nodes"]
        );
        assert!(err <= 1e-5, "{form} fold={fold}: {err:.3e}");
        assert!(err1 <= 1e-5, "{form} fold={fold}: batch 1 {err1:.3e}");
        assert_eq!(r["logits_shape"], serde_json::json!([2, 1000]));
        let ops = r["op_types"].as_array().unwrap();
        let has_bn = ops.contains(&"BatchNormalization".into());
        assert_eq!(has_bn, !fold, "{form} fold={fold}: {ops:?}");
        if *fold {
            assert_eq!(r["buffers"], 0);
        } else {
            assert_eq!(r["params"], 25_028_904);
            assert_eq!(r["buffers"], 68_224);
        }
        assert!(
            r["doc_string"]
                .as_str()
                .unwrap()
                .contains("resnext50_32x4d.weights.safetensors")
        );
        match *form {
            "grouped" => assert!(ops.contains(&"Conv".into())),
            "concat" => assert!(ops.contains(&"Concat".into())),
            _ => assert!(ops.contains(&"Sum".into())),
        }
    }
    assert_eq!(reports[6]["opset"], 13);
    assert_eq!(reports[6]["ir_version"], 7);
    assert_eq!(reports[7]["opset"], 21);
    assert_eq!(reports[7]["ir_version"], 10);
    assert_eq!(
        reports[0]["node_names"],
        serde_json::json!(["conv1", "bn1", "relu"])
    );
    assert_eq!(
        reports[0]["initializer_names"],
        serde_json::json!(["conv1.weight", "bn1.weight", "bn1.bias"])
    );
}

/// A block whose grouped convolutions come first, then a 1×1.
const SLICED: &str = "network sliced {\n input 3x32x32\n classes 10\n param C = 4\n\
     stem { conv 3x3 -> 32 }\n\
     block b(w) {\n  conv 3x3/stride -> w, groups C\n  conv 3x3 -> w, groups C\n  conv 1x1 -> 64\n }\n\
     stages b(w = 32) {\n  s1: depth 2\n  s2: depth 1, stride 2\n }\n\
     head { avgpool; fc -> classes }\n}\n";

/// A block whose grouped convolution comes first: the concat and split forms slice the input
/// (ONNX `Slice`). One grouped checkpoint gives the same outputs in all three forms.
#[test]
fn sliced_paths_agree_with_the_grouped_convolution() {
    let dir = scratch("onnx-slice");
    let spec = write_file(&dir, "sliced.arch", SLICED);
    // The grouped form's seeded weights, with random batch-norms, as a checkpoint.
    let c = archc::compile_file(&spec, &Overrides::default()).unwrap();
    let mut values = archc::emit::onnx::seeded(&c.graph, 7);
    let mut k = 0u32;
    for (name, v) in values.iter_mut() {
        if name.contains("bn") || name.contains("downsample.1") {
            for x in v.iter_mut() {
                k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *x = 0.5 + (k >> 16) as f32 / 65_536.0;
            }
        }
    }
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = archc::weights::expected(&c.graph)
        .into_iter()
        .map(|(n, s)| {
            let b = values[&n].iter().flat_map(|x| x.to_le_bytes()).collect();
            (n, b, s.iter().map(|&d| d as usize).collect())
        })
        .collect();
    let views = bytes.iter().map(|(n, b, s)| {
        let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
        (n.clone(), v.unwrap())
    });
    let weights = dir.join("grouped.safetensors");
    safetensors::serialize_to_file(views, None, &weights).unwrap();
    let grouped = dir.join("grouped.onnx");
    let spec_s = spec.to_str().unwrap();
    let w = weights.to_str().unwrap();
    export(&grouped, &[spec_s, "--weights", w]);
    let mut models = Vec::new();
    for form in ["concat", "split"] {
        for fold in [false, true] {
            let out = dir.join(format!("{form}-{fold}.onnx"));
            let set = format!("form={form}");
            let mut args = vec![spec_s, "--set", &set, "--weights", w];
            if fold {
                args.push("--fold-bn");
            }
            export(&out, &args);
            models.push(out);
        }
    }
    for r in check(&models, &["--against", grouped.to_str().unwrap()]) {
        let err = r["rel_l2_against"].as_f64().unwrap();
        println!("{}: relative L2 against grouped {err:.3e}", r["model"]);
        assert!(err <= 1e-5, "{}: {err:.3e}", r["model"]);
        assert!(r["op_types"].as_array().unwrap().contains(&"Slice".into()));
    }
}

#[test]
fn weights_that_do_not_fit_are_refused_with_the_listing() {
    let dir = scratch("onnx-bad-weights");
    let c = archc::compile_file(root().join(R18), &Overrides::default()).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, safetensors::Dtype)> =
        archc::weights::expected(&c.graph)
            .into_iter()
            .filter(|(n, _)| n != "conv1.weight" && n != "layer4.1.bn2.running_var")
            .map(|(n, s)| {
                let s = if n == "fc.weight" {
                    vec![10, 512]
                } else {
                    s.iter().map(|&d| d as usize).collect()
                };
                (n, s, safetensors::Dtype::F32)
            })
            .collect();
    tensors.push(("head.extra".into(), vec![3], safetensors::Dtype::F32));
    tensors.push((
        "bn1.num_batches_tracked".into(),
        vec![],
        safetensors::Dtype::I64,
    ));
    let write = |path: &Path, tensors: &[(String, Vec<usize>, safetensors::Dtype)]| {
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, s, d)| vec![0u8; s.iter().product::<usize>() * d.bitsize() / 8])
            .collect();
        let views = tensors.iter().zip(&data).map(|((n, s, d), b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        });
        safetensors::serialize_to_file(views, None, path).unwrap();
    };
    let bad = dir.join("bad.safetensors");
    write(&bad, &tensors);
    // An earlier file at the output path survives a refused export.
    let out = dir.join("r18.onnx");
    std::fs::write(&out, b"earlier").unwrap();
    let o = export_onnx(&out, &[R18, "--weights", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o).replace(bad.to_str().unwrap(), "[FILE]");
    insta::assert_snapshot!(err);
    assert_eq!(std::fs::read(&out).unwrap(), b"earlier");

    // A tensor the network needs in an integer type.
    let mut ints = archc::weights::expected(&c.graph)
        .into_iter()
        .map(|(n, s)| {
            (
                n,
                s.iter().map(|&d| d as usize).collect(),
                safetensors::Dtype::F32,
            )
        })
        .collect::<Vec<_>>();
    ints[0].2 = safetensors::Dtype::I32;
    let int_file = dir.join("ints.safetensors");
    write(&int_file, &ints);
    let o = export_onnx(&out, &[R18, "--weights", int_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_contains(
        &stderr(&o),
        &["tensor `conv1.weight` is I32; weights must be floating point"],
    );
    // Not a safetensors file; a file that does not exist.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a tensor file").unwrap();
    for (w, says) in [
        (junk.to_str().unwrap(), "is not a valid safetensors file"),
        (
            "no/such.safetensors",
            "cannot read weights `no/such.safetensors`",
        ),
    ] {
        let o = export_onnx(&out, &[R18, "--weights", w]);
        assert_eq!(o.status.code(), Some(2));
        assert_contains(&stderr(&o), &[says]);
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"earlier");
    // Nothing else was left behind (no temporary files).
    assert_eq!(
        entries(&dir),
        [
            "bad.safetensors",
            "ints.safetensors",
            "junk.safetensors",
            "r18.onnx"
        ]
    );
}

#[test]
fn an_output_that_cannot_be_written_is_a_clear_error_and_leaves_no_file() {
    let dir = scratch("onnx-unwritable");
    let missing = dir.join("no/such/dir/m.onnx");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("m.onnx");
    let cases = [
        (missing.clone(), "No such file or directory"),
        (dir.clone(), "it is a directory"),
        (under_file.clone(), "Not a directory"),
    ];
    for (out, says) in &cases {
        let o = export_onnx(out, &[R18]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("error: cannot write `{}`: ", out.display())),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
    }
    assert!(!missing.exists());
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1, "only `a-file` is there: {names:?}");
}

/// Two networks; the first breaks its budget.
const SMALL_AND_OTHER: &str = "network small {\n input 3x32x32\n classes 10\n stem { conv 3x3 -> 8 }\n\
     head { avgpool; fc -> classes }\n budget { params <= 100 }\n}\n\
     network other {\n input 3x32x32\n classes 10\n stem { conv 3x3 -> 8 }\n head { avgpool; fc -> classes }\n}\n";

#[test]
fn a_broken_budget_still_writes_the_file_and_exits_1_as_codegen_does() {
    let dir = scratch("onnx-budget");
    let spec = write_file(&dir, "small.arch", SMALL_AND_OTHER);
    let out = dir.join("small.onnx");
    let spec = spec.to_str().unwrap();
    // Two networks: the file needs --network.
    let o = export_onnx(&out, &[spec]);
    assert_eq!(o.status.code(), Some(2));
    assert_contains(
        &stderr(&o),
        &["defines 2 networks (small, other): choose one with --network"],
    );
    assert!(!out.exists());
    let o = export_onnx(&out, &[spec, "--network", "small"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_contains(&stderr(&o), &["params <= 100` is broken"]);
    let r = &check(std::slice::from_ref(&out), &[])[0];
    assert_eq!(r["params"], 8 * 3 * 9 + 16 + 8 * 10 + 10);
    // A spec error exits 2 and writes nothing.
    std::fs::remove_file(&out).unwrap();
    let o = export_onnx(&out, &[R50X, "--set", "C=0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
    // An opset outside the supported range is a usage error.
    let o = export_onnx(Path::new("x.onnx"), &[R50X, "--opset", "9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--opset"), "{}", stderr(&o));
}

#[test]
fn another_input_size_is_the_files_input_shape() {
    let dir = scratch("onnx-input");
    let out = dir.join("r18-64.onnx");
    export(&out, &[R18, "--input", "3x64x48"]);
    let r = &check(std::slice::from_ref(&out), &["--time", "1", "--batch", "3"])[0];
    assert_eq!(
        r["inputs"],
        serde_json::json!([{"name": "input", "dims": ["batch", 3, 64, 48]}])
    );
    assert_eq!(
        r["outputs"],
        serde_json::json!([{"name": "logits", "dims": ["batch", 1000]}])
    );
    assert_eq!(r["batch"], 3);
}
