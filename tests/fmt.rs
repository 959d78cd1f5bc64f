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
    assert!(
        specs.len() >= 16,
        "only {} shipped specs found",
        specs.len()
    );
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

mod props {
    use super::*;
    use archc::lsp::Analysis;
    use proptest::prelude::*;

    fn texts() -> Vec<(String, String)> {
        shipped()
            .into_iter()
            .map(|rel| {
                let text = std::fs::read_to_string(specs_dir().join(&rel)).expect("readable");
                (rel, text)
            })
            .collect()
    }

    /// Byte offsets of `text` outside comments and strings that touch whitespace: inserting
    /// layout there cannot join or split a token.
    fn gaps(text: &str) -> Vec<usize> {
        let comments = scan_comments(text);
        let b = text.as_bytes();
        let mut in_string = false;
        let mut out = Vec::new();
        for i in 0..=b.len() {
            if i > 0 && b[i - 1] == b'"' {
                in_string = !in_string;
            }
            let in_comment = comments.iter().any(|c| c.start < i && i <= c.end);
            let ws = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_whitespace());
            if !in_string && !in_comment && (ws(i) || (i > 0 && ws(i - 1))) {
                out.push(i);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

        /// Blank lines, spaces, `;` and comments inserted between tokens: the formatter either
        /// refuses a comment it cannot place, or gives a layout that formats to itself, keeps
        /// every comment and means the same network.
        #[test]
        fn layout_changes_keep_meaning(
            which in 0usize..64,
            inserts in prop::collection::vec((any::<usize>(), prop::sample::select(vec![
                " ", "\n", "\n\n\n", "\t", ";", "\r\n", "\n// note\n", " # note\n", "  // x\n",
            ])), 1..6),
        ) {
            let specs = texts();
            let (rel, original) = &specs[which % specs.len()];
            let mut text = original.clone();
            for (at, s) in inserts {
                let gaps = gaps(&text);
                let at = gaps[at % gaps.len()];
                text.insert_str(at, s);
            }
            let dir = specs_dir().join(rel);
            let dir = dir.parent().expect("a folder");
            match format(FileId(0), &text) {
                Err(d) => prop_assert_eq!(d.code, "archc::fmt::comment", "{}", d.message),
                Ok(out) => {
                    prop_assert_eq!(&format(FileId(0), &out).expect("formats"), &out);
                    prop_assert_eq!(comments(&out), comments(&text));
                    prop_assert_eq!(expanded(rel, &out, dir), expanded(rel, original, dir));
                }
            }
        }

        /// Mangled text never panics the formatter or the language server's analysis and
        /// answers, wherever the cursor is.
        #[test]
        fn mangled_text_never_panics(
            which in 0usize..64,
            edits in prop::collection::vec((any::<usize>(), 0usize..8, prop::sample::select(vec![
                "", "{", "}", "(", "x", "\u{1d538}", "×", "\"", "//", "#", "->", "=", "\r", "\n",
                "conv 3x3 -> 0", "groups 7", "depth 0", "param C = C", "extends q", "1.5M",
            ])), 1..5),
            cursor in any::<usize>(),
        ) {
            let specs = texts();
            let (rel, original) = &specs[which % specs.len()];
            let mut chars: Vec<char> = original.chars().collect();
            for (at, del, s) in edits {
                let at = at % (chars.len() + 1);
                let end = (at + del).min(chars.len());
                chars.splice(at..end, s.chars());
            }
            let text: String = chars.into_iter().collect();
            if let Ok(out) = format(FileId(0), &text) {
                prop_assert_eq!(&format(FileId(0), &out).expect("formats"), &out);
            }
            let path = specs_dir().join(rel);
            let uri = lsp_types::Url::from_file_path(&path).expect("an absolute path");
            let a = Analysis::new(uri, text.clone(), None);
            let lines = text.lines().count() as u32 + 2;
            let p = lsp_types::Position::new(cursor as u32 % lines, (cursor / 7) as u32 % 90);
            let _ = a.hover(p);
            let _ = a.definition(p);
            let _ = a.symbols();
            let _ = a.completion();
            let all = lsp_types::Range::new(lsp_types::Position::new(0, 0), lsp_types::Position::new(lines, 0));
            let _ = a.inlay_hints(all);
            for d in &a.diagnostics {
                prop_assert!(d.range.start <= d.range.end);
            }
        }
    }
}
