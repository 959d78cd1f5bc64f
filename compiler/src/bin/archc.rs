//! The `archc` command-line tool. See `archc --help`.

use archc::emit::report;
use archc::{Compiled, Failure, Overrides, Spec};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "archc/budget_cli.rs"]
mod budget_cli;
#[path = "archc/codegen_pytorch.rs"]
mod codegen_pytorch;

/// An architecture compiler for ResNeXt-family networks.
///
/// Exit status: 0 when every spec compiles (and, for `check` and `codegen`, meets its budgets);
/// 1 when `check` or `codegen` finds a broken budget, or `solve` finds no value that fits;
/// 2 on a spec error (syntax, names, shapes) or a usage error. `summary`, `graph`, `expand` and
/// `explain` describe a network whatever its budgets.
#[derive(Parser, Debug)]
#[command(name = "archc", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Override a parameter (or `form`, `classes`): `--set C=8 --set d=14`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set, global = true)]
    set: Vec<(String, String)>,
    /// Cost the network at another input size, e.g. `3x320x320`.
    #[arg(long, value_name = "CxHxW", value_parser = parse_dims, global = true)]
    input: Option<[u64; 3]>,
    /// Only this network of each spec (default: every network the file defines).
    #[arg(long, global = true)]
    network: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse, expand, infer shapes, count costs and check budgets.
    Check {
        /// Spec files.
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Output format. JSON is an array with one object per network (see README.md).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Count macs, flops and activations (and check their budgets) as torchvision (the
        /// default), fvcore or pycls count them.
        #[arg(long, value_parser = budget_cli::parse_convention, default_value = "torchvision")]
        convention: archc::cost::convention::Convention,
        /// Also give multiply-adds and activations for a batch of N images.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// A per-layer table (path, op, output shape, params, multiply-adds) that adds up to the totals.
    Summary {
        /// Spec file.
        spec: PathBuf,
        /// Also list layers that cost nothing (ReLU, pooling, additions).
        #[arg(long)]
        all: bool,
        /// Count the compute and activations columns as torchvision, fvcore or pycls do.
        #[arg(long, value_parser = budget_cli::parse_convention, default_value = "torchvision")]
        convention: archc::cost::convention::Convention,
        #[command(flatten)]
        common: Common,
    },
    /// Solve for a parameter under budgets: for each `--each` value, the largest (or nearest)
    /// value of `--for` that meets every budget, and which budget binds (paper Tables 2 and 3).
    Solve(budget_cli::SolveArgs),
    /// Compile every point of a parameter grid: a table (text, CSV, JSON) and an SVG plot.
    Sweep(budget_cli::SweepArgs),
    /// Why cost conventions differ: per layer kind, what torchvision, fvcore and pycls count.
    Explain(budget_cli::ExplainArgs),
    /// Graphviz DOT of the layer graph, stages and blocks as clusters.
    Graph {
        /// Spec file.
        spec: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// The Rust code the `resnext!` macro generates for the spec, formatted, or (`--target
    /// pytorch`) a PyTorch module.
    Codegen {
        /// Spec file.
        spec: PathBuf,
        /// The generated struct's name (default: the network name in CamelCase; Rust only).
        #[arg(long = "type")]
        type_name: Option<String>,
        /// What to generate.
        #[arg(long, value_enum, default_value_t = codegen_pytorch::Target::Rust)]
        target: codegen_pytorch::Target,
        /// Write to this file instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// The fully instantiated network in a canonical text form.
    Expand {
        /// Spec file.
        spec: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.trim().is_empty() {
        return Err(format!("`{s}` has no key"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn parse_dims(s: &str) -> Result<[u64; 3], String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    let nums: Result<Vec<u64>, _> = parts.iter().map(|p| p.trim().parse::<u64>()).collect();
    match nums {
        Ok(n) if n.len() == 3 && n.iter().all(|v| *v > 0) => Ok([n[0], n[1], n[2]]),
        _ => Err(format!(
            "`{s}` is not CxHxW with positive integers, e.g. 3x224x224"
        )),
    }
}

/// The macro's output for a network, formatted with prettyplease.
fn codegen(c: &Compiled, origin: &str, type_name: Option<&str>) -> String {
    let names = archc::emit::rust::Names {
        type_name: type_name.map_or_else(
            || archc::emit::rust::type_name(&c.model.name),
            str::to_string,
        ),
        vis: quote::quote!(pub),
        origin: format!("`{origin}`"),
    };
    let tokens = archc::emit::rust::emit(c, &names);
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

fn report_failure(f: &Failure) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for d in &f.diagnostics {
        eprintln!("{}", d.render_with(&f.sources, color));
    }
}

/// Compiles the selected networks of one spec file. `--input` with the spec's own channel count
/// re-costs the compiled graph at the new height and width (`resolution::recost`: no expansion or
/// lowering again); other channel counts change the first layer, so they recompile.
fn compile(path: &PathBuf, common: &Common) -> Result<CompiledSpec, Failure> {
    let spec = Spec::from_path(path)?;
    let overrides = Overrides {
        set: common.set.clone(),
        input: None,
    };
    let at_input = |c: Compiled| -> Result<Compiled, Failure> {
        let fail = |d| Failure {
            sources: spec.sources.clone(),
            diagnostics: vec![d],
        };
        match common.input {
            None => Ok(c),
            Some(i) if i[0] == c.model.input[0] => archc::cost::resolution::recost(&c, i)
                .map_err(|d| fail(d.at_if_unplaced(c.model.input_span, "the network's input"))),
            Some(i) => spec.compile(
                &c.model.name,
                &Overrides {
                    set: common.set.clone(),
                    input: Some(i),
                },
            ),
        }
    };
    let names: Vec<String> = match &common.network {
        Some(n) => vec![n.clone()],
        None => spec.networks().iter().map(|s| s.to_string()).collect(),
    };
    if names.is_empty() {
        return Err(Failure {
            sources: spec.sources.clone(),
            diagnostics: vec![archc::Diagnostic::new(
                "archc::network",
                format!("`{}` defines no network", path.display()),
            )],
        });
    }
    let (mut nets, mut failures) = (Vec::new(), Vec::new());
    for n in &names {
        match spec.compile(n, &overrides).and_then(at_input) {
            Ok(c) => nets.push(c),
            Err(f) => failures.push(f),
        }
    }
    if nets.is_empty() {
        return Err(Failure {
            sources: spec.sources.clone(),
            diagnostics: failures.into_iter().flat_map(|f| f.diagnostics).collect(),
        });
    }
    Ok(CompiledSpec {
        sources: spec.sources.clone(),
        nets,
        failures,
    })
}

/// The networks of one spec file, with the sources their diagnostics point into. A file with
/// several networks reports the ones that fail and still shows the others.
struct CompiledSpec {
    sources: archc::SourceMap,
    nets: Vec<Compiled>,
    failures: Vec<Failure>,
}

impl CompiledSpec {
    /// Reports the networks that failed; returns the exit status they call for (2 or 0).
    fn report_failures(&self) -> u8 {
        self.failures.iter().for_each(report_failure);
        if self.failures.is_empty() { 0 } else { 2 }
    }
}

impl std::ops::Deref for CompiledSpec {
    type Target = Vec<Compiled>;
    fn deref(&self) -> &Vec<Compiled> {
        &self.nets
    }
}

/// Reports broken budgets on stderr; returns whether all hold.
fn report_budgets(sources: &archc::SourceMap, diagnostics: Vec<archc::Diagnostic>) -> bool {
    let ok = diagnostics.is_empty();
    if !ok {
        report_failure(&Failure {
            sources: sources.clone(),
            diagnostics,
        });
    }
    ok
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut status = 0u8;
    match &cli.command {
        Command::Check {
            specs,
            format,
            convention,
            batch,
            common,
        } => {
            let mut json = Vec::new();
            for path in specs {
                match compile(path, common) {
                    Err(f) => {
                        report_failure(&f);
                        status = 2;
                    }
                    Ok(nets) => {
                        status = status.max(nets.report_failures());
                        for c in nets.iter() {
                            if let Some(n) = batch {
                                if archc::cost::resolution::batched(&c.report.total, *n).is_none() {
                                    eprintln!(
                                        "error: --batch {n}: `{}`'s figures for {n} images overflow 64 bits",
                                        c.model.name
                                    );
                                    status = 2;
                                }
                            }
                            if !budget_cli::within(c, *convention) {
                                status = status.max(1);
                                report_budgets(
                                    &nets.sources,
                                    budget_cli::violations(c, *convention),
                                );
                            }
                            match format {
                                Format::Text => {
                                    print!("{}", budget_cli::check_text(c, *convention, *batch))
                                }
                                Format::Json => json.push(budget_cli::json(c, *convention, *batch)),
                            }
                        }
                    }
                }
            }
            if *format == Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json).expect("serializable")
                );
            }
        }
        Command::Summary {
            spec,
            all,
            convention,
            common,
        } => match compile(spec, common) {
            Ok(nets) => {
                status = status.max(nets.report_failures());
                nets.iter()
                    .for_each(|c| print!("{}", budget_cli::summary(c, *all, *convention)))
            }
            Err(f) => {
                report_failure(&f);
                status = 2;
            }
        },
        Command::Solve(args) => status = budget_cli::run_solve(args),
        Command::Sweep(args) => status = budget_cli::run_sweep(args),
        Command::Explain(args) => status = budget_cli::run_explain(args),
        Command::Graph { spec, common } => match compile(spec, common) {
            Ok(nets) => {
                status = status.max(nets.report_failures());
                nets.iter().for_each(|c| print!("{}", report::dot(c)))
            }
            Err(f) => {
                report_failure(&f);
                status = 2;
            }
        },
        Command::Codegen {
            spec,
            type_name,
            target,
            output,
            common,
        } => match compile(spec, common) {
            Ok(nets) if *target == codegen_pytorch::Target::Pytorch => {
                status = status.max(nets.report_failures());
                match codegen_pytorch::pytorch(&nets, spec, &common.set, type_name.as_deref())
                    .and_then(|(code, budgets)| {
                        codegen_pytorch::write(&code, output.as_deref()).map(|()| budgets)
                    }) {
                    Ok(budgets) => status = status.max(budgets),
                    Err(e) => {
                        eprintln!("{e}");
                        status = 2;
                    }
                }
            }
            Ok(nets) => {
                status = status.max(nets.report_failures());
                if let Some(t) = type_name
                    .as_deref()
                    .filter(|t| syn::parse_str::<syn::Ident>(t).is_err())
                {
                    eprintln!(
                        "error: --type {t:?} is not a Rust identifier (use a struct name such as ResNeXt50)"
                    );
                    return ExitCode::from(2);
                }
                let mut code = String::new();
                for c in nets.iter() {
                    // The macro refuses a spec that breaks its budgets: say so, and exit 1.
                    if !report_budgets(&nets.sources, c.violations()) {
                        status = status.max(1);
                    }
                    code.push_str(&codegen(
                        c,
                        &spec.display().to_string(),
                        type_name.as_deref(),
                    ));
                }
                if let Err(e) = codegen_pytorch::write(&code, output.as_deref()) {
                    eprintln!("{e}");
                    status = 2;
                }
            }
            Err(f) => {
                report_failure(&f);
                status = 2;
            }
        },
        Command::Expand { spec, common } => match compile(spec, common) {
            Ok(nets) => {
                status = status.max(nets.report_failures());
                nets.iter().for_each(|c| print!("{}", report::expanded(c)))
            }
            Err(f) => {
                report_failure(&f);
                status = 2;
            }
        },
    }
    ExitCode::from(status)
}
