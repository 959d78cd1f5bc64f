//! `archc fmt` on every shipped spec: each is already formatted, and formatting keeps every
//! comment and the meaning (the expanded graph), from the spec as written and from the same spec
//! with its comments and layout thrown away.

use archc::syntax::fmt::{format, scan_comments};
use archc::{FileId, Overrides, Spec};
use archc_tests::{shipped, specs_dir};
use std::path::Path;

/// The expanded graph of the one network of `text`, whose imports resolve against `dir`.
fn expanded(name: &str, text: &str, dir: &Path) -> String {
    let spec =
        Spec::from_text_in(name, text, Some(dir)).unwrap_or_else(|f| panic!("{}", f.render()));
    let net = spec.networks()[0].to_string();
    let c = spec
        .compile(&net, &Overrides::default())
        .unwrap_or_else(|f| panic!("{}", f.render()));
    archc::emit::report::expanded(&c)
}

fn comments(text: &str) -> Vec<&str> {
    scan_comments(text)
        .into_iter()
        .map(|c| &text[c.start..c.end])
        .collect()
}

/// The spec with its comments removed and every run of whitespace made one space: one line.
fn squashed(text: &str) -> String {
    let mut bare = String::new();
    let mut at = 0;
    for c in scan_comments(text) {
        bare.push_str(&text[at..c.start]);
        at = c.end;
    }
    bare.push_str(&text[at..]);
    bare.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_shipped_spec_is_formatted() {
    let specs = shipped();
    assert_eq!(specs.len(), 15);
    let unformatted: Vec<&String> = specs
        .iter()
        .filter(|rel| {
            let text = std::fs::read_to_string(specs_dir().join(rel)).expect("readable");
            format(FileId(0), &text).expect("formats") != text
        })
        .collect();
    assert!(unformatted.is_empty(), "run `archc fmt` on {unformatted:?}");
}

#[test]
fn formatting_keeps_comments_and_meaning() {
    for rel in shipped() {
        let path = specs_dir().join(&rel);
        let dir = path.parent().expect("in a folder");
        let text = std::fs::read_to_string(&path).expect("readable");
        let out = format(FileId(0), &text).expect("formats");
        assert_eq!(comments(&out), comments(&text), "{rel}");
        assert!(!comments(&text).is_empty(), "{rel} has comments");
        let before = expanded(&rel, &text, dir);
        assert_eq!(expanded(&rel, &out, dir), before, "{rel}");
        // From one line with no comments, the formatter rebuilds the same network.
        let flat = squashed(&text);
        assert_eq!(flat.lines().count(), 1);
        let rebuilt = format(FileId(0), &flat).expect("formats");
        assert_eq!(expanded(&rel, &rebuilt, dir), before, "{rel}");
        assert_eq!(
            format(FileId(0), &rebuilt).expect("formats"),
            rebuilt,
            "{rel}"
        );
    }
}
