//! The `archc` command-line tool. See `archc --help`.
//!
//! Each subcommand lives in its own file under `archc/`: its arguments and a `run` that returns
//! an [`exit::Exit`]. `archc/compile.rs` compiles the requested networks and reports what fails,
//! `archc/args.rs` holds the options every command shares, `archc/exit.rs` the exit codes.

#[path = "archc/args.rs"]
mod args;
#[path = "archc/check.rs"]
mod check;
#[path = "archc/codegen.rs"]
mod codegen;
#[path = "archc/compile.rs"]
mod compile;
#[path = "archc/exit.rs"]
mod exit;
#[path = "archc/expand.rs"]
mod expand;
#[path = "archc/explain.rs"]
mod explain;
#[path = "archc/export.rs"]
mod export;
#[path = "archc/fmt.rs"]
mod fmt;
#[path = "archc/graph.rs"]
mod graph;
#[path = "archc/lsp.rs"]
mod lsp;
#[path = "archc/solve.rs"]
mod solve;
#[path = "archc/summary.rs"]
mod summary;
#[path = "archc/sweep.rs"]
mod sweep;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// An architecture compiler for ResNeXt-family networks.
///
/// Exit status: 0 when every spec compiles (and, for `check`, `codegen` and `export`, meets its
/// budgets); 1 when `check`, `codegen` or `export` finds a broken budget, or `solve` finds no
/// value that fits;
/// 2 on a spec error (syntax, names, shapes) or a usage error. `summary`, `graph`, `expand` and
/// `explain` describe a network whatever its budgets. Over several specs, the worst status wins.
#[derive(Parser, Debug)]
#[command(name = "archc", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse, expand, infer shapes, count costs and check budgets.
    Check(check::Args),
    /// A per-layer table (path, op, output shape, params, multiply-adds) that adds up to the totals.
    Summary(summary::Args),
    /// Solve for a parameter under budgets: for each `--each` value, the largest (or nearest)
    /// value of `--for` that meets every budget, and which budget binds (paper Tables 2 and 3).
    Solve(solve::Args),
    /// Compile every point of a parameter grid: a table (text, CSV, JSON) and an SVG plot.
    Sweep(sweep::Args),
    /// Why cost conventions differ: per layer kind, what torchvision, fvcore and pycls count.
    Explain(explain::Args),
    /// Graphviz DOT of the layer graph, stages and blocks as clusters.
    Graph(args::SpecArgs),
    /// The Rust code the `resnext!` macro generates for the spec, formatted.
    Codegen(codegen::Args),
    /// The fully instantiated network in a canonical text form.
    Expand(args::SpecArgs),
    /// Export a network (and its weights) for other tools: `archc export onnx SPEC -o model.onnx`.
    Export(export::ExportArgs),
    /// Rewrite specs in the one canonical layout (`--check` lists the files that would change).
    Fmt(fmt::FmtArgs),
    /// The language server over stdio: diagnostics, hover, inlay hints, definitions, symbols,
    /// completion and formatting, for any editor that speaks LSP.
    Lsp(lsp::LspArgs),
}

fn main() -> ExitCode {
    // SIGPIPE back to its default action (Rust ignores it, and `print!` would panic once the
    // reader of stdout is gone, as with `| head`): the tool then ends quietly, as Unix tools do.
    sigpipe::reset();
    let exit = match Cli::parse().command {
        Command::Check(a) => check::run(&a),
        Command::Summary(a) => summary::run(&a),
        Command::Solve(a) => solve::run(&a),
        Command::Sweep(a) => sweep::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Graph(a) => graph::run(&a),
        Command::Codegen(a) => codegen::run(&a),
        Command::Expand(a) => expand::run(&a),
        Command::Export(a) => export::run(&a),
        // `fmt` and `lsp` have exit statuses of their own (1: files would change; the LSP
        // protocol's exit), not a budget verdict.
        Command::Fmt(a) => return fmt::run(&a),
        Command::Lsp(a) => return lsp::run(&a),
    };
    exit.into()
}
