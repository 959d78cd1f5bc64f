//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `archc` from the repository root, without colours.
pub fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("NO_COLOR", "1")
        .output()
        .expect("archc runs")
}

/// Runs `archc` and asserts its exit status (standard error in the message).
pub fn archc_exits(args: &[&str], code: i32) -> Output {
    let o = archc(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    o
}

/// `archc export onnx` with `args`, writing `out`.
pub fn export_onnx(out: &Path, args: &[&str]) -> Output {
    let mut all = vec!["export", "onnx"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", out.to_str().unwrap()]);
    archc(&all)
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts that `text` contains every one of `needles` (the text in the message).
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// The string `key` of every element of the JSON array `v`.
pub fn strings<'a>(v: &'a serde_json::Value, key: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap())
        .collect()
}

/// A fresh folder for one test's files, under the target directory (names are shared by every
/// test file of the package).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/name` and returns the file's path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The names in a folder, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The shipped ResNeXt-50 (32×4d) spec.
pub const R50X: &str = "specs/resnext/resnext50_32x4d.arch";
/// The shipped ResNet-50 spec.
pub const R50: &str = "specs/resnet/resnet50.arch";
/// The shipped ResNet-18 spec.
pub const R18: &str = "specs/resnet/resnet18.arch";
