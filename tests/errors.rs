//! Error snapshots: every spec in `tests/errors/` is malformed in exactly one way, named by its
//! file and stated by its first line (`// expect: ...`). For each, the whole pipeline runs as
//! `archc check` runs it (parse with imports, then compile each network in order, stopping at the
//! first that fails, then check the budgets of those that compile) and the rendered diagnostics,
//! without colours, are snapshotted in `tests/snapshots/errors__diagnostics@NAME.arch.snap`.
//!
//! Paths are given relative to this crate's directory (`errors/NAME.arch`), so the snapshots do
//! not depend on where the workspace lives.

use archc::{Diagnostic, Overrides, SourceMap, Spec};
use std::path::Path;

/// What the pipeline reported for one spec.
struct Outcome {
    /// Everything rendered, as a user sees it.
    rendered: String,
    /// Each diagnostic with the sources it points into.
    diagnostics: Vec<(Diagnostic, SourceMap)>,
}

impl Outcome {
    fn failure(f: &archc::Failure) -> Outcome {
        Outcome {
            rendered: f.render(),
            diagnostics: f
                .diagnostics
                .iter()
                .map(|d| (d.clone(), f.sources.clone()))
                .collect(),
        }
    }
}

/// Parses `path`, compiles every network it defines and collects budget violations.
fn run(path: &str) -> Outcome {
    let spec = match Spec::from_path(path) {
        Ok(spec) => spec,
        Err(f) => return Outcome::failure(&f),
    };
    let mut rendered = Vec::new();
    let mut diagnostics = Vec::new();
    for name in spec.networks() {
        match spec.compile(name, &Overrides::default()) {
            Ok(compiled) => {
                for d in compiled.violations() {
                    rendered.push(d.render(&spec.sources));
                    diagnostics.push((d, spec.sources.clone()));
                }
            }
            Err(f) => {
                let failed = Outcome::failure(&f);
                rendered.push(failed.rendered);
                diagnostics.extend(failed.diagnostics);
                break;
            }
        }
    }
    Outcome {
        rendered: rendered.join("\n"),
        diagnostics,
    }
}

/// `:LINE:COL` with both numbers present.
fn is_line_col(rest: &str) -> bool {
    let mut parts = rest.split(':');
    parts.next() == Some("")
        && parts.clone().count() == 2
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn diagnostics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("cd to the tests crate");
    let mut seen = 0;
    insta::glob!("errors/*.arch", |path| {
        seen += 1;
        let rel = path
            .strip_prefix(root)
            .expect("spec under the tests crate")
            .to_str()
            .expect("UTF-8 path")
            .replace('\\', "/");
        let text =
            String::from_utf8_lossy(&std::fs::read(path).expect("readable spec")).into_owned();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| {
                panic!("{rel}: the first line must be `// expect: <what is wrong>`")
            });

        let outcome = std::panic::catch_unwind(|| run(&rel))
            .unwrap_or_else(|_| panic!("{rel}: archc panicked instead of reporting an error"));

        assert_eq!(
            outcome.diagnostics.len(),
            1,
            "{rel}: expected exactly one diagnostic, got:\n{}",
            outcome.rendered
        );
        let (diag, sources) = &outcome.diagnostics[0];
        assert!(
            !outcome.rendered.contains('\x1b'),
            "{rel}: the rendering has colours"
        );
        let location = diag.location(sources).unwrap_or_else(|| {
            panic!(
                "{rel}: the diagnostic points nowhere:\n{}",
                outcome.rendered
            )
        });
        let rest = location.strip_prefix(&rel).unwrap_or_else(|| {
            panic!("{rel}: the diagnostic points into another file: {location}")
        });
        assert!(is_line_col(rest), "{rel}: bad location `{location}`");
        assert!(
            outcome.rendered.contains(&location),
            "{rel}: the rendering does not show `{location}`:\n{}",
            outcome.rendered
        );
        if diag.code == "archc::io" {
            // A file that cannot be read must still be blamed on the import that names it.
            let line: usize = rest
                .split(':')
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let source = text.lines().nth(line.wrapping_sub(1)).unwrap_or("");
            assert!(
                source.trim_start().starts_with("import"),
                "{rel}: an io error must point at the import line, not line {line}: `{source}`"
            );
        }

        insta::with_settings!({
            description => format!("expect: {expect}"),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(outcome.rendered);
        });
    });
    assert!(seen >= 24, "only {seen} specs in tests/errors/");
}
