//! `archc codegen --target pytorch` and `-o`: what the binary writes, where, and its exit codes.

mod common;

use common::*;

/// The library's module for the shipped ResNeXt-50 with `--set` overrides.
fn expected(set: &[(&str, &str)]) -> String {
    let spec = archc::Spec::from_path(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(R50X),
    )
    .unwrap();
    let overrides = archc::Overrides {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let c = spec.compile("resnext50_32x4d", &overrides).unwrap();
    let mut origin = format!("`{R50X}`");
    for (k, v) in set {
        origin.push_str(&format!(" `--set {k}={v}`"));
    }
    archc::emit::pytorch::module(&[c], &origin)
}

#[test]
fn pytorch_target_writes_the_module_to_stdout() {
    let o = archc(&[
        "codegen",
        "--target",
        "pytorch",
        R50X,
        "--set",
        "form=split",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), expected(&[("form", "split")]));
    assert!(stdout(&o).contains("class Resnext50_32x4dBottleneckPath(nn.Module):"));
}

#[test]
fn output_file_gets_the_same_text_and_rust_stays_the_default() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("codegen-pytorch");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rx50.py");
    let file_arg = file.to_str().unwrap();
    let o = archc(&["codegen", "--target", "pytorch", R50X, "-o", file_arg]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected(&[]));

    let rust = archc(&["codegen", R50X]);
    assert_eq!(rust.status.code(), Some(0));
    assert!(stdout(&rust).contains("pub struct Resnext50_32x4d {"));
    let file = dir.join("rx50.rs");
    let o = archc(&[
        "codegen",
        "--target",
        "rust",
        R50X,
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout(&rust));
}

#[test]
fn unwritable_output_is_exit_2_and_a_broken_budget_exit_1() {
    let o = archc(&[
        "codegen",
        "--target",
        "pytorch",
        R50X,
        "-o",
        "/nonexistent-dir/x.py",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot write /nonexistent-dir/x.py"),
        "{}",
        stderr(&o)
    );

    // C = 64 breaks the spec's parameter budget: the module is still written, the exit is 1.
    let o = archc(&["codegen", "--target", "pytorch", R50X, "--set", "C=64"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("archc::budget"), "{}", stderr(&o));
    assert_eq!(stdout(&o), expected(&[("C", "64")]));

    let o = archc(&["codegen", "--target", "onnx", R50X]);
    assert_eq!(o.status.code(), Some(2));
    let o = archc(&["codegen", "--target", "pytorch", "--type", "X", R50X]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--type names the Rust struct"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}
