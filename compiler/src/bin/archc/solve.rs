//! `archc solve`: the value of a parameter that meets every budget, for each assignment of
//! others (the paper's Tables 2 and 3).

use crate::args::{Common, Format, parse_convention};
use crate::compile::{one_network, reported};
use crate::exit::{Exit, print_json, usage};
use archc::Failure;
use archc::cost::convention::Convention;
use archc::tools::solve::{self, BudgetText, Criterion, Problem, Solution, SolveReport};
use archc::tools::sweep;
use clap::ValueEnum;
use std::path::PathBuf;

/// `archc solve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    /// The parameter to solve for, e.g. `d`.
    #[arg(long = "for", value_name = "PARAM")]
    param: String,
    /// Solve once for each value of another parameter: `--each C=1,2,4,8,32` (lists, ranges
    /// `1..64` inclusive, steps `8..64:8`). Repeat it for the product of several.
    #[arg(long = "each", value_name = "KEY=VALUES", value_parser = sweep::parse_axis)]
    each: Vec<(String, Vec<String>)>,
    /// A budget, `FIGURE<=VALUE` or `FIGURE>=VALUE`. FIGURE is params, weights (no batch-norm),
    /// buffers, macs, flops or activations; VALUE is a quantity (25.6M, 69632) or `@SPEC`, that
    /// spec's first network's figure (`@` alone: this spec with the --set given). Repeatable; when
    /// given, the spec's own budget block is ignored.
    #[arg(long = "budget", value_name = "FIGURE<=VALUE", value_parser = solve::parse_budget)]
    budgets: Vec<BudgetText>,
    /// The value closest to the first budget from either side (`--criterion nearest`).
    #[arg(long)]
    nearest: bool,
    /// Which value to report: the largest that meets every budget, the nearest to the first
    /// budget, or both.
    #[arg(long, value_enum)]
    criterion: Option<CriterionArg>,
    /// Every convolution's output channels must be a multiple of N (e.g. 8).
    #[arg(long = "multiple-of", value_name = "N")]
    multiple_of: Option<u64>,
    /// The largest value tried.
    #[arg(long, default_value_t = solve::DEFAULT_MAX)]
    max: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// How macs, flops and activations are counted: torchvision, fvcore or pycls.
    #[arg(long, value_parser = parse_convention, default_value = "torchvision")]
    convention: Convention,
    #[command(flatten)]
    common: Common,
}

/// `--criterion`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriterionArg {
    /// The largest value at which every budget holds (the default).
    Largest,
    /// The value whose figure is closest to the first budget's limit, from either side.
    Nearest,
    /// Both, each labelled.
    Both,
}

/// 0 when every assignment has an answer, 1 when some budget cannot be met, 2 on a spec or usage
/// error (or when no value gives a valid network at all).
pub fn run(a: &Args) -> Exit {
    let criteria = match (a.nearest, a.criterion) {
        (false, None) | (false, Some(CriterionArg::Largest)) => vec![Criterion::Largest],
        (_, Some(CriterionArg::Nearest)) | (true, None) => vec![Criterion::Nearest],
        (false, Some(CriterionArg::Both)) => vec![Criterion::Largest, Criterion::Nearest],
        (true, Some(c)) => {
            return usage(format!(
                "--nearest contradicts --criterion {}",
                c.to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default()
            ));
        }
    };
    let Some(r) = reported(solve_report(a, criteria)) else {
        return Exit::Error;
    };
    match a.format {
        Format::Text => print!("{}", solve::text(&r)),
        Format::Json => print_json(&r),
    }
    if r.all_found() {
        return Exit::Ok;
    }
    let missing: Vec<&Solution> = r.solutions.iter().filter(|s| s.value.is_none()).collect();
    for s in &missing {
        no_fit(s);
    }
    // No value gives a valid network at all: that is a spec error, not a budget verdict.
    if missing
        .iter()
        .any(|s| s.evaluated > 0 && s.skipped == s.evaluated)
    {
        Exit::Error
    } else {
        Exit::Budget
    }
}

fn solve_report(a: &Args, criteria: Vec<Criterion>) -> Result<SolveReport, Failure> {
    let (spec, name, own) = one_network(&a.spec, &a.common)?;
    let (budgets, references) =
        solve::budgets_from(&spec, &own, &a.budgets, a.common.input, a.convention)?;
    if a.multiple_of == Some(0) {
        return Err(Failure {
            sources: spec.sources.clone(),
            diagnostics: vec![archc::Diagnostic::new(
                "archc::solve",
                "--multiple-of must be at least 1",
            )],
        });
    }
    let problem = Problem {
        network: name.clone(),
        base: a.common.overrides(),
        param: a.param.clone(),
        each: a.each.clone(),
        budgets: budgets.clone(),
        criteria,
        multiple_of: a.multiple_of,
        max: a.max,
        convention: a.convention,
    };
    let solutions = solve::solve(&spec, &problem)?;
    Ok(SolveReport {
        network: name,
        param: a.param.clone(),
        convention: a.convention,
        budgets,
        references,
        solutions,
    })
}

/// Says on stderr why an assignment has no answer.
fn no_fit(s: &Solution) {
    let who: Vec<String> = s
        .assignment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "archc: no {} fits{}: {}",
        s.param,
        if who.is_empty() {
            String::new()
        } else {
            format!(" for {}", who.join(" "))
        },
        s.reason.as_deref().unwrap_or("no value meets every budget")
    );
}
