//! Helpers shared by the workspace's tests: this crate's test files and the runtime's.
//!
//! ```
//! let net = archc_tests::compile("resnet/resnet18.arch", &[]);
//! assert_eq!(net.report.total.params, 11_689_512);
//! assert!(archc_tests::shipped().contains(&"resnet/resnet18.arch".to_string()));
//! ```
#![forbid(unsafe_code)]

use archc::{Compiled, Overrides, Spec};
use std::path::{Path, PathBuf};

/// The repository root (or, on a GPU box, the unpacked bundle named by `ARCHC_ROOT`).
pub fn root() -> PathBuf {
    std::env::var_os("ARCHC_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// The shipped specs' folder.
pub fn specs_dir() -> PathBuf {
    root().join("specs")
}

/// A parity fixture of `scripts/parity.py` (`NAME.WHAT.safetensors`, `WHAT` being `weights` or
/// `io`), in `target/parity` or `$ARCHC_PARITY_DIR`; panics if it is missing.
pub fn parity_fixture(name: &str, what: &str) -> PathBuf {
    let dir = std::env::var_os("ARCHC_PARITY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/parity"));
    let p = dir.join(format!("{name}.{what}.safetensors"));
    assert!(
        p.exists(),
        "{} is missing: run `.venv/bin/python3 scripts/parity.py` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The project's venv Python (`.venv/bin/python3`); panics if it is missing.
pub fn venv_python() -> PathBuf {
    let p = root().join(".venv/bin/python3");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-venv.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `--set`-style overrides: `overrides(&[("C", "8")])`.
pub fn overrides(set: &[(&str, &str)]) -> Overrides {
    Overrides {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Overrides::default()
    }
}

/// Parses a shipped spec (`resnet/resnet50.arch`, relative to `specs/`), or panics with the
/// rendered diagnostics.
pub fn spec(rel: &str) -> Spec {
    Spec::from_path(specs_dir().join(rel)).unwrap_or_else(|f| panic!("{}", f.render()))
}

/// Compiles the network of a shipped spec with `--set`-style overrides, or panics with the
/// rendered diagnostics.
pub fn compile(rel: &str, set: &[(&str, &str)]) -> Compiled {
    let spec = spec(rel);
    let name = spec.networks()[0].to_string();
    spec.compile(&name, &overrides(set))
        .unwrap_or_else(|f| panic!("{}", f.render()))
}

/// `--set`-style overrides written in the source, as [`compile`] takes them.
pub type Set = &'static [(&'static str, &'static str)];

/// The shipped specs whose generated code `tests/codegen.rs` (Rust) and `tests/pytorch.rs`
/// (Python) snapshot: the snapshot's name (after the emitter's prefix), the spec (relative to
/// `specs/`) and its `--set` overrides.
pub const SNAPSHOTTED: [(&str, &str, Set); 3] = [
    ("resnet18", "resnet/resnet18.arch", &[]),
    (
        "resnext29_split_form",
        "cifar/resnext29_8x64d.arch",
        &[("form", "split")],
    ),
    (
        "resnext50_concat_form",
        "resnext/resnext50_32x4d.arch",
        &[("form", "concat")],
    ),
];

/// Every shipped spec, relative to `specs/`, sorted.
pub fn shipped() -> Vec<String> {
    let base = specs_dir();
    let mut out = Vec::new();
    let mut dirs = vec![base.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).expect("the specs folder is readable") {
            let p = e.expect("a readable entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "arch") {
                let rel = p.strip_prefix(&base).expect("under specs/");
                out.push(rel.display().to_string().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// A spec whose blocks of one stage have different layouts in the `split` and `concat` forms:
/// the first block of `s2` has cardinality `g * stride` = 2, the second 1 (no paths at all), and
/// `s1` has 4. Emitters make one class per layout; compile it with [`compile_text`]. It is the
/// file `tests/layouts/mixed.arch`, which `tests/layouts/mixed_deep.arch` extends.
pub const MIXED_LAYOUTS: &str = include_str!("../layouts/mixed.arch");

/// A spec whose grouped conv comes first in its block, so that in the `split` and `concat` forms
/// each path reads a slice of the block's input (paper Fig. 3a/3b without a leading 1×1), and in
/// the `split` form the 1×1 after it is split per path and the paths summed.
pub const SLICED_PATHS: &str = "network sliced {
  input 3x16x16
  classes 10
  stem { conv 3x3 -> 16 }
  block b(width, g) {
    conv 3x3/stride -> width, groups g
    conv 1x1 -> width
  }
  stages b(width = 16, g = 4) {
    rule keep_width
    s1: depth 1
    s2: depth 2, stride 2
  }
  head { avgpool; fc -> classes }
}
";

/// Compiles network `name` of a spec given as text, with `--set`-style overrides, or panics.
pub fn compile_text(name: &str, text: &str, set: &[(&str, &str)]) -> Compiled {
    let spec =
        Spec::from_text(&format!("{name}.arch"), text).unwrap_or_else(|f| panic!("{}", f.render()));
    spec.compile(name, &overrides(set))
        .unwrap_or_else(|f| panic!("{}", f.render()))
}

/// Two-stage specs for the code generators' property tests (`tests/codegen.rs`,
/// `tests/pytorch.rs`): every block layout, per-stage cardinality, `g * stride`, three forms.
pub mod two_stage {
    /// A block variant: whether a 1×1 leads into the grouped 3×3, and whether a 1×1 follows.
    #[derive(Debug, Clone, Copy)]
    pub struct Shape {
        /// A 1×1 to `width` before the grouped 3×3.
        pub lead: bool,
        /// A 1×1 to `out` after it.
        pub tail: bool,
    }

    /// A two-stage spec; stage `i` has cardinality `g[i]`, width `24 * d[i]` (a multiple of
    /// every cardinality used, so that every generated spec compiles) and depth `depth[i]`. The
    /// first block of stage 2 gets cardinality `g[1] * stride` when `stride_groups`, so blocks
    /// of one stage differ too.
    pub fn spec(
        form: &str,
        shape: Shape,
        g: [u64; 2],
        d: [u64; 2],
        depth: [u64; 2],
        stride_groups: bool,
    ) -> String {
        let lead = if shape.lead {
            "conv 1x1 -> width\n"
        } else {
            ""
        };
        let tail = if shape.tail { "conv 1x1 -> out\n" } else { "" };
        let groups = if stride_groups { "g * stride" } else { "g" };
        let out = if shape.tail { ", out = 48" } else { "" };
        let params = if shape.tail {
            "width, out, g"
        } else {
            "width, g"
        };
        format!(
            "network t {{
      input 3x16x16
      classes 10
      form {form}
      stem {{ conv 3x3 -> 48 }}
      block b({params}) {{
    {lead}conv 3x3/stride -> width, groups {groups}
    {tail}
      }}
      stages b(width = 8, g = 1{out}) {{
    rule keep_width
    s1: depth {}, g = {}, width = {}
    s2: depth {}, stride 2, g = {}, width = {}
      }}
      head {{ avgpool; fc -> classes }}
    }}
    ",
            depth[0],
            g[0],
            24 * d[0],
            depth[1],
            g[1],
            24 * d[1],
        )
    }
}
