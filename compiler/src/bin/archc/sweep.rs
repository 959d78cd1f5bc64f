//! `archc sweep`: every point of a parameter grid, as a table and an SVG plot.

use crate::args::{Common, parse_convention};
use crate::compile::{one_network, reported};
use crate::exit::{Exit, print_json, usage};
use archc::Failure;
use archc::cost::convention::Convention;
use archc::tools::solve::{self, BudgetText};
use archc::tools::{plot, sweep};
use clap::ValueEnum;
use std::path::PathBuf;

/// `archc sweep`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    /// A grid axis, `KEY=VALUES`: `C=1,2,4,8`, `d=1..64` (inclusive), `d=8..64:8`, `form=grouped,split`,
    /// or `res=160..320:32` (input height = width; or `320x480`). Repeat for more axes.
    #[arg(long = "grid", value_name = "KEY=VALUES", value_parser = sweep::parse_axis, required = true)]
    grid: Vec<(String, Vec<String>)>,
    /// A budget (see `archc solve --help`); when given, the spec's own budgets are ignored.
    #[arg(long = "budget", value_name = "FIGURE<=VALUE", value_parser = solve::parse_budget)]
    budgets: Vec<BudgetText>,
    /// Output format of the table.
    #[arg(long, value_enum, default_value_t = SweepFormat::Text)]
    format: SweepFormat,
    /// Also draw the sweep as an SVG plot into this file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// The axis to plot against (default: the last --grid).
    #[arg(long, value_name = "KEY")]
    x: Option<String>,
    /// How macs, flops and activations are counted: torchvision, fvcore or pycls.
    #[arg(long, value_parser = parse_convention, default_value = "torchvision")]
    convention: Convention,
    #[command(flatten)]
    common: Common,
}

/// `archc sweep --format`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepFormat {
    /// An aligned table.
    Text,
    /// Comma-separated values, one row per point.
    Csv,
    /// A JSON object with every point.
    Json,
}

/// 0 when the grid is swept (whatever its points' verdicts), 2 on a spec or usage error.
pub fn run(a: &Args) -> Exit {
    let Some(s) = reported(grid(a)) else {
        return Exit::Error;
    };
    // The table comes first: a plot that fails does not take it away.
    match a.format {
        SweepFormat::Text => print!("{}", sweep::text(&s)),
        SweepFormat::Csv => print!("{}", sweep::csv(&s)),
        SweepFormat::Json => print_json(&s),
    }
    let Some(path) = &a.svg else {
        return Exit::Ok;
    };
    let x =
        a.x.clone()
            .unwrap_or_else(|| s.axes.last().cloned().unwrap_or_default());
    match plot::svg(&s, &x) {
        Ok(svg) => match std::fs::write(path, svg) {
            Ok(()) => Exit::Ok,
            Err(e) => usage(format!("cannot write `{}`: {e}", path.display())),
        },
        Err(e) => usage(format!("cannot plot: {e}")),
    }
}

fn grid(a: &Args) -> Result<sweep::Sweep, Failure> {
    let (spec, name, own) = one_network(&a.spec, &a.common)?;
    let (budgets, _) = solve::budgets_from(&spec, &own, &a.budgets, a.common.input, a.convention)?;
    sweep::sweep(
        &spec,
        &name,
        &a.common.overrides(),
        &a.grid,
        &budgets,
        a.convention,
    )
}
