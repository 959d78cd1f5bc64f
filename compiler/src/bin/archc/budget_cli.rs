//! The budget commands of the CLI: `solve`, `sweep`, `explain`, and `--convention` / `--batch`
//! for `check` and `summary`. The work is done by `archc::tools::solve`, `archc::tools::sweep`,
//! `archc::cost::convention` and `archc::cost::resolution`; this module reads files, parses flags and owns
//! the exit codes (0 ok, 1 no variant fits a budget or a budget is broken, 2 spec or usage error).

use super::{Common, Format, report_failure};
use archc::cost::convention::{self, Convention};
use archc::cost::{self, resolution};
use archc::tools::solve::{self, BudgetText, Criterion, Problem, SolveReport};
use archc::tools::sweep;
use archc::{Compiled, Diagnostic, Failure, Overrides, Spec};
use clap::ValueEnum;
use std::path::PathBuf;

/// Parses `--convention`.
pub fn parse_convention(s: &str) -> Result<Convention, String> {
    Convention::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Convention::ALL.iter().map(|c| c.name()).collect();
        format!("`{s}` is not a convention; use one of {}", names.join(", "))
    })
}

/// `archc solve`.
#[derive(clap::Args, Debug)]
pub struct SolveArgs {
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

/// `archc sweep`.
#[derive(clap::Args, Debug)]
pub struct SweepArgs {
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

/// `archc explain`.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// Spec file.
    spec: PathBuf,
    /// A convention to compare (repeatable; default: torchvision, fvcore and pycls).
    #[arg(long = "convention", value_parser = parse_convention)]
    conventions: Vec<Convention>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    common: Common,
}

fn base(common: &Common) -> Overrides {
    Overrides {
        set: common.set.clone(),
        input: common.input,
    }
}

fn usage(msg: impl Into<String>) -> u8 {
    eprintln!("archc: {}", msg.into());
    2
}

/// The network a solve or sweep works on: `--network`, or the spec's first.
fn network(spec: &Spec, common: &Common, path: &std::path::Path) -> Result<String, Failure> {
    match (&common.network, spec.networks().first()) {
        (Some(n), _) => Ok(n.clone()),
        (None, Some(n)) => Ok(n.to_string()),
        (None, None) => Err(Failure {
            sources: spec.sources.clone(),
            diagnostics: vec![Diagnostic::new(
                "archc::network",
                format!("`{}` defines no network", path.display()),
            )],
        }),
    }
}

/// `archc solve`: 0 when every assignment has an answer, 1 when some budget cannot be met, 2 on a
/// spec or usage error.
pub fn run_solve(a: &SolveArgs) -> u8 {
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
    let result = (|| -> Result<SolveReport, Failure> {
        let spec = Spec::from_path(&a.spec)?;
        let name = network(&spec, &a.common, &a.spec)?;
        let own = spec.compile(&name, &base(&a.common))?;
        let (budgets, references) =
            solve::budgets_from(&spec, &own, &a.budgets, a.common.input, a.convention)?;
        let problem = Problem {
            network: name.clone(),
            base: base(&a.common),
            param: a.param.clone(),
            each: a.each.clone(),
            budgets: budgets.clone(),
            criteria,
            multiple_of: a.multiple_of,
            max: a.max,
            convention: a.convention,
        };
        if problem.multiple_of == Some(0) {
            return Err(Failure {
                sources: spec.sources.clone(),
                diagnostics: vec![Diagnostic::new(
                    "archc::solve",
                    "--multiple-of must be at least 1",
                )],
            });
        }
        let solutions = solve::solve(&spec, &problem)?;
        Ok(SolveReport {
            network: name,
            param: a.param.clone(),
            convention: a.convention,
            budgets,
            references,
            solutions,
        })
    })();
    let r = match result {
        Ok(r) => r,
        Err(f) => {
            report_failure(&f);
            return 2;
        }
    };
    match a.format {
        Format::Text => print!("{}", solve::text(&r)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("serializable")
        ),
    }
    if r.all_found() {
        0
    } else {
        for s in r.solutions.iter().filter(|s| s.value.is_none()) {
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
        // No value gives a valid network at all: that is a spec error, not a budget verdict.
        let invalid = r
            .solutions
            .iter()
            .any(|s| s.value.is_none() && s.evaluated > 0 && s.skipped == s.evaluated);
        if invalid { 2 } else { 1 }
    }
}

/// `archc sweep`: 0 when the grid is swept (whatever its points' verdicts), 2 on a spec or usage
/// error.
pub fn run_sweep(a: &SweepArgs) -> u8 {
    let result = (|| -> Result<sweep::Sweep, Failure> {
        let spec = Spec::from_path(&a.spec)?;
        let name = network(&spec, &a.common, &a.spec)?;
        let own = spec.compile(&name, &base(&a.common))?;
        let (budgets, _) =
            solve::budgets_from(&spec, &own, &a.budgets, a.common.input, a.convention)?;
        sweep::sweep(
            &spec,
            &name,
            &base(&a.common),
            &a.grid,
            &budgets,
            a.convention,
        )
    })();
    let s = match result {
        Ok(s) => s,
        Err(f) => {
            report_failure(&f);
            return 2;
        }
    };
    // The table comes first: a plot that fails does not take it away.
    match a.format {
        SweepFormat::Text => print!("{}", sweep::text(&s)),
        SweepFormat::Csv => print!("{}", sweep::csv(&s)),
        SweepFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("serializable")
        ),
    }
    if let Some(path) = &a.svg {
        let x =
            a.x.clone()
                .unwrap_or_else(|| s.axes.last().cloned().unwrap_or_default());
        match sweep::svg(&s, &x) {
            Ok(svg) => {
                if let Err(e) = std::fs::write(path, svg) {
                    return usage(format!("cannot write `{}`: {e}", path.display()));
                }
            }
            Err(e) => return usage(format!("cannot plot: {e}")),
        }
    }
    0
}

/// `archc explain`.
pub fn run_explain(a: &ExplainArgs) -> u8 {
    let convs = if a.conventions.is_empty() {
        Convention::ALL.to_vec()
    } else {
        let mut v: Vec<Convention> = Vec::new();
        for c in &a.conventions {
            if !v.contains(c) {
                v.push(*c);
            }
        }
        v
    };
    let (nets, failed) = match super::compile(&a.spec, &a.common) {
        Ok(n) => {
            let failed = n.report_failures();
            (n.nets, failed)
        }
        Err(f) => {
            report_failure(&f);
            return 2;
        }
    };
    let mut json = Vec::new();
    for c in &nets {
        let Some(e) = convention::explanation(&c.graph, &convs) else {
            return usage(format!("the costs of `{}` overflow 64 bits", c.model.name));
        };
        match a.format {
            Format::Text => {
                print!("{}", convention::explain_text(&e));
                if let Some(m) = resolution::ResolutionModel::new(&c.graph, convs[0]) {
                    println!(
                        "as exact functions of the input height H and width W ({} convention):",
                        convs[0].name()
                    );
                    println!(
                        "  {}",
                        m.formula(|c| c.macs, convs[0].compute_name())
                            .replace('\n', "\n  ")
                    );
                }
            }
            Format::Json => json.push(serde_json::to_value(&e).expect("serializable")),
        }
    }
    if a.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("serializable")
        );
    }
    failed
}

/// The report of `c` under `conv` (the standard report for torchvision's).
fn under(c: &Compiled, conv: Convention) -> Result<cost::CostReport, Diagnostic> {
    convention::analyze(&c.graph, &c.model.budgets, conv)
}

/// Whether every budget of `c` holds under `conv`.
pub fn within(c: &Compiled, conv: Convention) -> bool {
    match under(c, conv) {
        Ok(r) => r.budgets.iter().all(|b| b.ok),
        Err(_) => false,
    }
}

/// The broken budgets of `c` under `conv`, as diagnostics.
pub fn violations(c: &Compiled, conv: Convention) -> Vec<Diagnostic> {
    if conv == Convention::Torchvision {
        return c.violations();
    }
    match under(c, conv) {
        Ok(r) => cost::violations(&r)
            .into_iter()
            .map(|mut d| {
                // Under fvcore's and pycls's conventions the figure is that tool's own count.
                let unit = conv.compute_name();
                d.message = d
                    .message
                    .replace(cost::unit(archc::Metric::Macs), unit)
                    .replace(cost::unit(archc::Metric::Flops), unit);
                d.message = format!("{} [{} convention]", d.message, conv.name());
                d
            })
            .collect(),
        Err(d) => vec![d],
    }
}

/// `archc check`'s text for `c` under `conv`, with the batch figures when `batch` is given.
pub fn check_text(c: &Compiled, conv: Convention, batch: Option<u64>) -> String {
    let report = under(c, conv).unwrap_or_else(|_| c.report.clone());
    let mut o = convention::check_text(c, &report, conv);
    if let Some(n) = batch {
        match resolution::batched(&report.total, n) {
            Some(b) => o.push_str(&format!(
                "  batch {n}: {} {} ({}){}, activations {} (params and buffers are per network)\n",
                conv.compute_name(),
                cost::grouped(b.macs),
                cost::si(b.macs),
                if conv == Convention::Torchvision {
                    format!(", FLOPs {}", cost::grouped(b.flops))
                } else {
                    String::new()
                },
                cost::grouped(b.activations)
            )),
            None => o.push_str(&format!("  batch {n}: the figures overflow 64 bits\n")),
        }
    }
    o
}

/// `archc check --format json`'s object for `c`: the documented contract, plus `convention`
/// (with `--convention`) and `batch` (with `--batch`), both additive.
pub fn json(c: &Compiled, conv: Convention, batch: Option<u64>) -> serde_json::Value {
    let mut v = serde_json::to_value(archc::emit::report::json(c)).expect("serializable");
    let report = under(c, conv).unwrap_or_else(|_| c.report.clone());
    if conv != Convention::Torchvision {
        v["convention"] =
            serde_json::to_value(convention::json(&report, conv)).expect("serializable");
        // `ok` is what the exit code says: the budgets as checked under the convention.
        v["ok"] = serde_json::Value::Bool(within(c, conv));
    }
    if let Some(n) = batch {
        // Like the top-level figures, `batch` is in torchvision's units: MACs and 2 x MACs.
        v["batch"] =
            serde_json::to_value(resolution::batched(&c.report.total, n)).expect("serializable");
    }
    v
}

/// `archc summary`'s table for `c` under `conv`.
pub fn summary(c: &Compiled, all: bool, conv: Convention) -> String {
    match under(c, conv) {
        Ok(r) => convention::summary(c, &r, conv, all),
        Err(_) => archc::emit::report::summary(c, all),
    }
}
