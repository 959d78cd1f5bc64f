//! `archc fmt`: in place, to stdout, `--check`, and refusals that leave files untouched.

mod common;

use common::*;

const MESSY: &str = "network n { input 3x8x8 // in\n  param C=2 }\n";
const TIDY: &str = "network n {\n  input 3x8x8  // in\n  param C = 2\n}\n";

#[test]
fn formats_in_place_and_check_names_the_files_that_would_change() {
    let dir = scratch("fmt_in_place");
    let (messy, tidy) = (dir.join("messy.arch"), dir.join("tidy.arch"));
    std::fs::write(&messy, MESSY).unwrap();
    std::fs::write(&tidy, TIDY).unwrap();
    let (m, t) = (messy.to_str().unwrap(), tidy.to_str().unwrap());

    let o = archc(&["fmt", "--check", m, t]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{m}\n"));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), MESSY);

    let o = archc(&["fmt", m, t]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), TIDY);
    assert_eq!(entries(&dir), ["messy.arch", "tidy.arch"]);

    let o = archc(&["fmt", "--check", m, t]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn stdout_leaves_the_file_alone() {
    let dir = scratch("fmt_stdout");
    let messy = dir.join("messy.arch");
    std::fs::write(&messy, MESSY).unwrap();
    let o = archc(&["fmt", "--stdout", messy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), TIDY);
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), MESSY);
}

#[test]
fn a_dash_reads_standard_input() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(MESSY.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), TIDY);
}

#[test]
fn a_file_that_does_not_parse_is_refused_and_left_as_it_was() {
    let dir = scratch("fmt_refused");
    let (broken, messy) = (dir.join("broken.arch"), dir.join("messy.arch"));
    let text = "network n {\n  param C = \n}\n";
    std::fs::write(&broken, text).unwrap();
    std::fs::write(&messy, MESSY).unwrap();
    let o = archc(&["fmt", broken.to_str().unwrap(), messy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("syntax error: expected an expression, found `}`"),
        "{err}"
    );
    assert!(err.contains(&format!("{}:3:1", broken.display())), "{err}");
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), text);
    // The other file is still formatted, and no temporary file is left behind.
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), TIDY);
    assert_eq!(entries(&dir), ["broken.arch", "messy.arch"]);
}

#[test]
fn a_comment_with_no_place_is_refused() {
    let dir = scratch("fmt_comment");
    let path = dir.join("c.arch");
    let text = "network n {\n  param C = 1 + // why\n    2\n}\n";
    std::fs::write(&path, text).unwrap();
    let o = archc(&["fmt", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("archc::fmt::comment"), "{err}");
    assert!(err.contains(&format!("{}:2:17", path.display())), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn shipped_specs_pass_the_check() {
    let o = archc(&[
        "fmt",
        "--check",
        "specs/resnext/resnext50_32x4d.arch",
        "specs/resnext/resnext101_64x4d.arch",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}
