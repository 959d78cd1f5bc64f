//! Compiling the networks a command asks for, and reporting what fails.

use crate::args::{Common, SpecArgs};
use crate::exit::Exit;
use archc::{Compiled, Diagnostic, Failure, Overrides, SourceMap, Spec};
use std::io::IsTerminal;
use std::path::Path;

/// Renders a failure's diagnostics on stderr, in colour on a terminal unless `NO_COLOR` is set.
pub fn report_failure(f: &Failure) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for d in &f.diagnostics {
        eprintln!("{}", d.render_with(&f.sources, color));
    }
}

/// The value of `r`, or `None` once its failure is reported ([`report_failure`]).
pub fn reported<T>(r: Result<T, Failure>) -> Option<T> {
    r.map_err(|f| report_failure(&f)).ok()
}

/// Renders `diagnostics` (pointing into `sources`) on stderr.
pub fn report(sources: &SourceMap, diagnostics: Vec<Diagnostic>) {
    report_failure(&Failure {
        sources: sources.clone(),
        diagnostics,
    });
}

/// The networks of one spec file that compile, with the sources their diagnostics point into.
pub struct Networks {
    /// The spec and its imports.
    pub sources: SourceMap,
    /// The networks that compile, in the spec's order.
    pub nets: Vec<Compiled>,
}

/// Compiles the selected networks of one spec file, reports those that fail, and calls `each` on
/// the others. A file with several networks reports the ones that fail and still shows the
/// others. Returns the worst of the failures ([`Exit::Error`]) and what `each` returns.
pub fn each_network(
    path: &Path,
    common: &Common,
    mut each: impl FnMut(&Compiled, &SourceMap) -> Exit,
) -> Exit {
    let Some((spec, failed)) = reported(compile(path, common)) else {
        return Exit::Error;
    };
    spec.nets
        .iter()
        .fold(failed, |exit, c| exit.max(each(c, &spec.sources)))
}

/// Prints `text` of each network of a spec ([`each_network`]).
pub fn print_each(a: &SpecArgs, text: impl Fn(&Compiled) -> String) -> Exit {
    each_network(&a.spec, &a.common, |c, _| {
        print!("{}", text(c));
        Exit::Ok
    })
}

/// Compiles the selected networks of one spec file and reports those that fail (the exit they
/// call for comes with the others). `Err` when none compiles. `--input` with the spec's own
/// channel count re-costs the compiled graph at the new height and width
/// (`resolution::recost`: no expansion or lowering again); other channel counts change the first
/// layer, so they recompile.
pub fn compile(path: &Path, common: &Common) -> Result<(Networks, Exit), Failure> {
    let spec = Spec::from_path(path)?;
    let fail = |diagnostics| Failure {
        sources: spec.sources.clone(),
        diagnostics,
    };
    let names = common.networks(&spec);
    if names.is_empty() {
        return Err(fail(vec![no_network(path)]));
    }
    let (mut nets, mut failures) = (Vec::new(), Vec::new());
    for n in &names {
        match at_input(&spec, n, common) {
            Ok(c) => nets.push(c),
            Err(f) => failures.push(f),
        }
    }
    if nets.is_empty() {
        return Err(fail(
            failures.into_iter().flat_map(|f| f.diagnostics).collect(),
        ));
    }
    failures.iter().for_each(report_failure);
    let exit = if failures.is_empty() {
        Exit::Ok
    } else {
        Exit::Error
    };
    let sources = spec.sources;
    Ok((Networks { sources, nets }, exit))
}

/// One network compiled with `--set`, at `--input`.
fn at_input(spec: &Spec, name: &str, common: &Common) -> Result<Compiled, Failure> {
    let overrides = Overrides {
        set: common.set.clone(),
        ..Overrides::default()
    };
    let c = spec.compile(name, &overrides)?;
    match common.input {
        None => Ok(c),
        Some(i) if i[0] == c.model.input[0] => {
            archc::cost::resolution::recost(&c, i).map_err(|d| Failure {
                sources: spec.sources.clone(),
                diagnostics: vec![d.at_if_unplaced(c.model.input_span, "the network's input")],
            })
        }
        Some(i) => spec.compile(
            name,
            &Overrides {
                input: Some(i),
                ..overrides
            },
        ),
    }
}

fn no_network(path: &Path) -> Diagnostic {
    Diagnostic::new(
        archc::diag::code::NETWORK,
        format!("`{}` defines no network", path.display()),
    )
}

/// The one network a solve or sweep works on: the spec, `--network` (or the spec's first
/// network), and that network compiled with `--set` and `--input`.
pub fn one_network(path: &Path, common: &Common) -> Result<(Spec, String, Compiled), Failure> {
    let spec = Spec::from_path(path)?;
    let Some(name) = common.networks(&spec).into_iter().next() else {
        return Err(Failure {
            sources: spec.sources.clone(),
            diagnostics: vec![no_network(path)],
        });
    };
    let own = spec.compile(&name, &common.overrides())?;
    Ok((spec, name, own))
}
