//! `archc-run`: runs archc specs on libtorch: `bench` times the forward pass, `train` trains a
//! spec on real images, `eval` measures accuracy, `predict` classifies image files, `plot` draws
//! runs' learning curves into one picture.
//!
//! ```text
//! archc-run train specs/digits/resnext_digits.arch --data data/digits --recipe recipes/digits.toml --out runs/digits
//! archc-run eval specs/digits/resnext_digits.arch --weights runs/digits/model.safetensors --data data/digits
//! archc-run predict specs/digits/resnext_digits.arch --weights runs/digits/model.safetensors data/digits/test/3/0013.png
//! archc-run bench specs/resnext/resnext50_32x4d.arch --device auto --batch 8 --mode fast --dtype bf16
//! ```
//!
//! Exit codes, as `archc`'s: 0 success, 1 a failed check (`--min-accuracy`, a diverged run),
//! 2 bad input (spec, recipe, data, weights, flags), 130 interrupted by Ctrl-C after writing a
//! checkpoint.

mod bench;
mod eval;
mod train;

use clap::{Parser, Subcommand};
use std::path::Path;
use std::process::ExitCode;

/// Run, train and evaluate archc specs on libtorch (CPU or CUDA).
#[derive(Parser, Debug)]
#[command(name = "archc-run", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Time a spec's forward pass (images per second).
    Bench(bench::BenchArgs),
    /// Train a spec on a data folder (CIFAR-10/100 binary or ImageFolder) with a recipe.
    Train(train::TrainArgs),
    /// Measure a spec's top-1, top-5 and per-class accuracy with given weights.
    Eval(eval::EvalArgs),
    /// Classify image files (top-k with class names).
    Predict(eval::PredictArgs),
    /// Draw runs' learning curves (their metrics.jsonl) into one SVG.
    Plot(train::PlotArgs),
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
pub enum Fail {
    /// A check that did not pass (exit 1).
    Check(String),
    /// Bad input: spec, recipe, data, weights or flags (exit 2).
    Input(String),
    /// Stopped by Ctrl-C after writing a checkpoint (exit 130).
    Interrupted(String),
}

/// Compiles a spec with `--set KEY=VALUE` overrides and an optional `--input CxHxW`.
pub fn compile(spec: &Path, set: &[String], input: Option<&str>) -> Result<archc::Compiled, Fail> {
    let mut pairs = Vec::new();
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .ok_or(Fail::Input(format!("--set {kv}: expected KEY=VALUE")))?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    let input = match input {
        None => None,
        Some(s) => {
            let n: Vec<u64> = s.split('x').filter_map(|p| p.parse().ok()).collect();
            match n[..] {
                [c, h, w] if c > 0 && h > 0 && w > 0 => Some([c, h, w]),
                _ => {
                    return Err(Fail::Input(format!(
                        "--input {s}: expected CxHxW, e.g. 3x224x224"
                    )));
                }
            }
        }
    };
    let overrides = archc::Overrides {
        set: pairs,
        input,
        ..Default::default()
    };
    archc::compile_file(spec, &overrides).map_err(|f| Fail::Input(f.render()))
}

/// `NAME: P params, M MACs/image`: how `bench` and `train` start their first line.
pub fn headline(c: &archc::Compiled) -> String {
    let t = c.report.total;
    format!(
        "{}: {} params, {} MACs/image",
        c.model.name,
        archc::cost::grouped(t.params),
        archc::cost::si(t.macs)
    )
}

/// Sets libtorch's intra-op threads when asked.
pub fn threads(n: Option<i32>) {
    if let Some(t) = n {
        tch::set_num_threads(t.max(1));
    }
}

fn main() -> ExitCode {
    // SIGPIPE back to its default action (Rust ignores it, and `print!` would panic once the
    // reader of stdout is gone, as with `| head`): the tool then ends quietly, as Unix tools do.
    sigpipe::reset();
    let cli = Cli::parse();
    let out = match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run_eval(a),
        Command::Predict(a) => eval::run_predict(a),
        Command::Plot(a) => train::run_plot(a),
    };
    match out {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail::Check(e)) => {
            eprintln!("check failed: {e}");
            ExitCode::from(1)
        }
        Err(Fail::Input(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Fail::Interrupted(e)) => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
    }
}
