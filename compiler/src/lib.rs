//! # archc: an architecture compiler for ResNeXt-family networks
//!
//! `archc` reads `.arch` specs (a small DSL for the template rules of Xie et al., *Aggregated
//! Residual Transformations for Deep Neural Networks*, CVPR 2017), expands them into a layer graph,
//! infers every shape, counts parameters, multiply-adds and activations exactly, and checks them
//! against the spec's budgets.
//!
//! ```
//! let text = r#"
//! network tiny {
//!   input 3x32x32
//!   classes 10
//!   param C = 4
//!   param d = 8
//!   stem { conv 3x3 -> 64 }
//!   block bottleneck(width, out) {
//!     conv 1x1 -> width
//!     conv 3x3/stride -> width, groups C
//!     conv 1x1 -> out
//!   }
//!   stages bottleneck(width = C * d, out = 128) {
//!     s1: depth 1
//!     s2: depth 1, stride 2
//!   }
//!   head { avgpool; fc -> classes }
//!   budget { params <= 1M }
//! }
//! "#;
//! let spec = archc::Spec::from_text("tiny.arch", text).expect("parses");
//! let net = spec.compile("tiny", &archc::Overrides::default()).expect("compiles");
//! assert_eq!(net.output(), [10, 1, 1]);
//! assert_eq!(net.report.total.params, 89_546);
//! assert!(net.report.budgets.iter().all(|b| b.ok));
//! ```
//!
//! The pipeline is `syntax::parse` → `expand::expand` → `graph::lower` (with `shape::infer` per
//! node) → `cost::analyze`; ARCHITECTURE.md describes it.
#![forbid(unsafe_code)]

#[cfg(feature = "chart")]
pub mod chart;
pub mod cost;
pub mod diag;
pub mod emit;
pub mod expand;
pub mod graph;
#[cfg(feature = "lsp")]
pub mod lsp;
pub mod source;
pub mod syntax;
#[cfg(feature = "tools")]
pub mod tools;
pub mod weights;

pub use cost::{Cost, CostReport};
pub use diag::Diagnostic;
pub use expand::Overrides;
pub use graph::LayerGraph;
pub use source::{FileId, SourceMap, Span};
pub use syntax::ast::{Form, Metric};

use cost::convention::Convention;
use std::fmt;
use std::path::{Path, PathBuf};
use syntax::ast;

/// Diagnostics together with the sources they point into, so they can be rendered.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The files read so far.
    pub sources: SourceMap,
    /// What went wrong, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Failure {
    /// Whether some diagnostic is fatal ([`Diagnostic::is_fatal`]): the request itself is wrong,
    /// so no value of a varied parameter can make the spec compile.
    pub fn is_fatal(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_fatal)
    }

    /// All diagnostics rendered, without colours.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(&self.sources))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Failure {}

/// A parsed spec file with its imports.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Every file read: the spec and what it imports.
    pub sources: SourceMap,
    files: Vec<(FileId, ast::File)>,
    root: FileId,
}

impl Spec {
    /// Reads and parses a spec file and, recursively, the files it imports.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Spec, Failure> {
        let path = path.as_ref();
        let mut sources = SourceMap::new();
        let root = match sources.load(path) {
            Ok(id) => id,
            Err(e) => {
                let diagnostics = vec![e.diagnostic("read", path)];
                return Err(Failure {
                    sources,
                    diagnostics,
                });
            }
        };
        Spec::parse_from(sources, root, path.parent().map(Path::to_path_buf))
    }

    /// Parses a spec held in memory. Its imports resolve against the current directory.
    pub fn from_text(name: &str, text: &str) -> Result<Spec, Failure> {
        Spec::from_text_in(name, text, None)
    }

    /// Parses a spec held in memory whose imports resolve against `base`.
    pub fn from_text_in(name: &str, text: &str, base: Option<&Path>) -> Result<Spec, Failure> {
        let mut sources = SourceMap::new();
        let root = sources.add(name, text);
        Spec::parse_from(sources, root, base.map(Path::to_path_buf))
    }

    fn parse_from(
        mut sources: SourceMap,
        root: FileId,
        base: Option<PathBuf>,
    ) -> Result<Spec, Failure> {
        let mut files = Vec::new();
        let mut pending = vec![(root, base)];
        while let Some((id, dir)) = pending.pop() {
            let parsed = match syntax::parse(id, &sources.file(id).text) {
                Ok(f) => f,
                Err(d) => {
                    return Err(Failure {
                        sources,
                        diagnostics: vec![d],
                    });
                }
            };
            for imp in &parsed.imports {
                let path = normalize(&match &dir {
                    Some(d) => d.join(&imp.path),
                    None => PathBuf::from(&imp.path),
                });
                if sources.find(&path).is_some() {
                    continue;
                }
                match sources.load(&path) {
                    Ok(new) => pending.push((new, path.parent().map(Path::to_path_buf))),
                    Err(e) => {
                        let d = e.diagnostic("import", &path);
                        let d = match d.primary {
                            Some(_) => d.also(imp.span, "imported here"),
                            None => d.at(imp.span, "imported here"),
                        };
                        return Err(Failure {
                            sources,
                            diagnostics: vec![d],
                        });
                    }
                }
            }
            files.push((id, parsed));
        }
        Ok(Spec {
            sources,
            files,
            root,
        })
    }

    /// Names of the networks the spec file itself defines (not its imports), in order.
    pub fn networks(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(id, _)| *id == self.root)
            .flat_map(|(_, f)| f.networks.iter().map(|n| n.name.name.as_str()))
            .collect()
    }

    /// The syntax trees of the spec and its imports.
    pub fn files(&self) -> impl Iterator<Item = &ast::File> {
        self.files.iter().map(|(_, f)| f)
    }

    fn fail(&self, diagnostics: Vec<Diagnostic>) -> Failure {
        Failure {
            sources: self.sources.clone(),
            diagnostics,
        }
    }

    /// Expands, lowers and costs one network of the spec.
    pub fn compile(&self, network: &str, overrides: &Overrides) -> Result<Compiled, Failure> {
        let scope = expand::Scope::new(self.files.iter().flat_map(|(_, f)| &f.networks))
            .map_err(|d| self.fail(vec![d]))?;
        let Some(net) = scope.get(network) else {
            return Err(self.fail(vec![Diagnostic::new(
                "archc::network",
                format!(
                    "no network `{network}` in the spec; it defines: {}",
                    self.networks().join(", ")
                ),
            )]));
        };
        let model = expand::expand(&scope, net, overrides).map_err(|d| self.fail(d))?;
        let graph = graph::lower(&model).map_err(|d| self.fail(vec![d]))?;
        let limits = cost::budget::merge(
            model.budgets.iter().map(cost::budget::Limit::from_spec),
            &overrides.budgets,
        );
        let report = cost::analyze(&graph, &limits).map_err(|d| self.fail(vec![d]))?;
        Ok(Compiled {
            model,
            graph,
            report,
        })
    }
}

/// A compiled network: the expanded model, its layer graph and its costs.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The expanded model.
    pub model: expand::ir::Model,
    /// The layer graph, with shapes.
    pub graph: LayerGraph,
    /// Costs and budget verdicts.
    pub report: CostReport,
}

impl Compiled {
    /// The network's output shape (per batch element).
    pub fn output(&self) -> [u64; 3] {
        self.graph.graph[self.graph.output].shape.to_array()
    }

    /// Whether every budget holds.
    pub fn within_budget(&self) -> bool {
        self.report.within_budget()
    }

    /// Diagnostics for broken budgets.
    pub fn violations(&self) -> Vec<Diagnostic> {
        cost::violations(&self.report, Convention::Torchvision)
    }

    /// The cost report counted under `conv`, with the same budgets: [`Compiled::report`] itself
    /// for torchvision's convention.
    pub fn report_under(&self, conv: Convention) -> Result<CostReport, Diagnostic> {
        match conv {
            Convention::Torchvision => Ok(self.report.clone()),
            other => cost::convention::analyze(&self.graph, &self.report.limits(), other),
        }
    }
}

/// Removes `.` and `dir/..` from a path without touching the file system, so diagnostics show
/// `specs/resnext/x.arch` rather than `specs/variants/../resnext/x.arch`.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The path of a temporary file next to `path`, `.NAME.TAG-PID.tmp`, for writing a file whole
/// and renaming it over `path` (same folder, so the rename is atomic). The folder of a bare file
/// name is `.`.
pub fn temp_beside(path: &Path, tag: &str) -> PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.{tag}-{}.tmp", std::process::id()))
}

/// Compiles the single network defined in a spec file (the first one, if there are several).
pub fn compile_file(path: impl AsRef<Path>, overrides: &Overrides) -> Result<Compiled, Failure> {
    let spec = Spec::from_path(path)?;
    let Some(first) = spec.networks().first().map(|s| s.to_string()) else {
        return Err(spec.fail(vec![Diagnostic::new(
            "archc::network",
            "the spec defines no network",
        )]));
    };
    spec.compile(&first, overrides)
}

/// What the library's unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Compiles the shipped spec `specs/REL` in `form`, or panics.
    pub(crate) fn shipped_in_form(rel: &str, form: &str) -> Compiled {
        let path = format!("{}/../specs/{rel}", env!("CARGO_MANIFEST_DIR"));
        let overrides = Overrides {
            set: vec![("form".to_string(), form.to_string())],
            ..Default::default()
        };
        compile_file(path, &overrides).unwrap_or_else(|f| panic!("{}", f.render()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "network tiny {\n  input 3x32x32\n  classes 10\n  param w = 8\n  \
        stem { conv 3x3 -> w }\n  head { avgpool; fc -> classes }\n}\n\
        network headless {\n  input 3x32x32\n  classes 10\n  stem { conv 3x3 -> 8 }\n}\n";

    fn failure(network: &str, set: &[(&str, &str)]) -> Failure {
        let spec = Spec::from_text("tiny.arch", TINY).expect("parses");
        let overrides = Overrides {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Overrides::default()
        };
        spec.compile(network, &overrides).expect_err("fails")
    }

    #[test]
    fn is_fatal_classifies_the_codes() {
        // The request is wrong: no value of a varied parameter helps.
        let fatal = [
            failure("tiny", &[("bogus", "1")]),
            failure("tiny", &[("w", "wide")]),
            failure("nowhere", &[]),
            failure("headless", &[]),
        ];
        for f in &fatal {
            assert!(f.is_fatal(), "{:?} should be fatal", f.diagnostics);
        }
        let codes: Vec<&str> = fatal.iter().map(|f| f.diagnostics[0].code).collect();
        assert_eq!(
            codes,
            [
                diag::code::OVERRIDE,
                diag::code::OVERRIDE,
                diag::code::NETWORK,
                diag::code::MISSING
            ]
        );
        // A value that makes no network rules out that value only.
        let variant = failure("tiny", &[("w", "0")]);
        assert!(!variant.is_fatal(), "{:?}", variant.diagnostics);
        assert!(!Diagnostic::new("archc::budget::exceeded", "over").is_fatal());
    }

    #[test]
    fn budget_overrides_replace_the_same_bound() {
        use cost::budget::{Cmp, Figure, Limit, Origin};
        let text = TINY.replace(
            "head { avgpool; fc -> classes }\n}",
            "head { avgpool; fc -> classes }\n  budget { params <= 1M; macs <= 1G }\n}",
        );
        let spec = Spec::from_text("tiny.arch", &text).expect("parses");
        let own = spec
            .compile("tiny", &Overrides::default())
            .expect("compiles");
        assert!(own.within_budget());
        let tight = Limit::new(Figure::Params, Cmp::AtMost, 100, "100", Origin::Override);
        let overrides = Overrides {
            budgets: vec![tight.clone()],
            ..Overrides::default()
        };
        let c = spec.compile("tiny", &overrides).expect("compiles");
        let limits = c.report.limits();
        assert_eq!(limits.len(), 2, "{limits:?}");
        assert_eq!(limits[0].figure, Figure::Macs);
        assert!(matches!(limits[0].origin, Origin::Spec(_)));
        assert_eq!(limits[1], tight);
        assert!(!c.within_budget());
        let broken = c.violations();
        assert_eq!(broken.len(), 1);
        assert!(broken[0].message.contains("`params <= 100` is broken"));
        assert!(
            broken[0].primary.is_none(),
            "an override has no place in the spec"
        );
    }
}
