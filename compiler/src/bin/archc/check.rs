//! `archc check`: compile specs, print their costs and check their budgets. A folder stands for
//! every `.arch` file under it (a budget gate for CI), followed by one summary line.

use crate::args::{Common, Format, parse_convention};
use crate::compile::{each_network, report};
use crate::exit::{Exit, print_json};
use archc::Compiled;
use archc::cost::convention::Convention;
use archc::cost::{self, grouped, resolution, si};
use archc::emit::report as emit;
use std::path::{Path, PathBuf};

/// `archc check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec files, or folders: every `.arch` file under a folder, recursively, in sorted order.
    #[arg(required = true)]
    specs: Vec<PathBuf>,
    /// Output format. JSON is an array with one object per network (see README.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Count macs, flops and activations (and check their budgets) as torchvision (the
    /// default), fvcore or pycls count them.
    #[arg(long, value_parser = parse_convention, default_value = "torchvision")]
    convention: Convention,
    /// Also give multiply-adds and activations for a batch of N images.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch: Option<u64>,
    #[command(flatten)]
    common: Common,
}

/// Checks every spec: 0 when all compile and meet their budgets, 1 when a budget is broken, 2 on
/// a spec error; the worst wins.
pub fn run(a: &Args) -> Exit {
    let mut files = Vec::new();
    for path in &a.specs {
        if path.is_dir() {
            let found = arch_files(path);
            if found.is_empty() {
                eprintln!("archc: no .arch file under `{}`", path.display());
                return Exit::Error;
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut json = Vec::new();
    let outcomes: Vec<Exit> = files
        .iter()
        .map(|path| {
            each_network(path, &a.common, |c, sources| {
                let exit = budgets(c, sources, a.convention);
                match a.format {
                    Format::Text => print!("{}", text(c, a.convention, a.batch)),
                    Format::Json => json.push(to_json(c, a.convention, a.batch)),
                }
                exit.max(batch_fits(c, a.batch))
            })
        })
        .collect();
    if a.format == Format::Json {
        print_json(&json);
    }
    if a.specs.iter().any(|p| p.is_dir()) {
        let line = tally(&outcomes);
        match a.format {
            Format::Text => println!("{line}"),
            // stdout holds the JSON array.
            Format::Json => eprintln!("{line}"),
        }
    }
    outcomes.into_iter().max().unwrap_or(Exit::Ok)
}

/// Every `.arch` file under `dir`, recursively, sorted by path. Unreadable folders are skipped.
fn arch_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "arch") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `12 specs: 11 ok, 1 over budget, 0 with errors`.
fn tally(outcomes: &[Exit]) -> String {
    let count = |e: Exit| outcomes.iter().filter(|o| **o == e).count();
    format!(
        "{} spec{}: {} ok, {} over budget, {} with errors",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" },
        count(Exit::Ok),
        count(Exit::Budget),
        count(Exit::Error)
    )
}

/// Reports the budgets `c` breaks under `conv` on stderr.
fn budgets(c: &Compiled, sources: &archc::SourceMap, conv: Convention) -> Exit {
    match c.report_under(conv) {
        Ok(r) if r.within_budget() => Exit::Ok,
        Ok(r) => {
            report(sources, cost::violations(&r, conv));
            Exit::Budget
        }
        Err(d) => {
            report(sources, vec![d]);
            Exit::Error
        }
    }
}

/// Whether `c`'s figures for a batch of `n` fit in 64 bits.
fn batch_fits(c: &Compiled, batch: Option<u64>) -> Exit {
    match batch {
        Some(n) if resolution::batched(&c.report.total, n).is_none() => {
            eprintln!(
                "error: --batch {n}: `{}`'s figures for {n} images overflow 64 bits",
                c.model.name
            );
            Exit::Error
        }
        _ => Exit::Ok,
    }
}

/// The text of `c` under `conv`, with the batch figures when `batch` is given.
fn text(c: &Compiled, conv: Convention, batch: Option<u64>) -> String {
    let report = c.report_under(conv).unwrap_or_else(|_| c.report.clone());
    let mut o = emit::check_text(c, &report, conv);
    if let Some(n) = batch {
        match resolution::batched(&report.total, n) {
            Some(b) => o.push_str(&format!(
                "  batch {n}: {} {} ({}){}, activations {} (params and buffers are per network)\n",
                conv.compute_name(),
                grouped(b.macs),
                si(b.macs),
                if conv == Convention::Torchvision {
                    format!(", FLOPs {}", grouped(b.flops))
                } else {
                    String::new()
                },
                grouped(b.activations)
            )),
            None => o.push_str(&format!("  batch {n}: the figures overflow 64 bits\n")),
        }
    }
    o
}

/// The JSON object of `c`: the documented contract, plus `convention` (with `--convention`) and
/// `batch` (with `--batch`), both additive.
fn to_json(c: &Compiled, conv: Convention, batch: Option<u64>) -> serde_json::Value {
    let mut v = serde_json::to_value(emit::json(c)).expect("serializable");
    if conv != Convention::Torchvision {
        // `ok` is what the exit code says: the budgets as checked under the convention.
        let ok = match c.report_under(conv) {
            Ok(report) => {
                let j = emit::json_convention(&report, conv);
                v["convention"] = serde_json::to_value(j).expect("serializable");
                report.within_budget()
            }
            Err(_) => false,
        };
        v["ok"] = serde_json::Value::Bool(ok);
    }
    if let Some(n) = batch {
        // Like the top-level figures, `batch` is in torchvision's units: MACs and 2 x MACs.
        v["batch"] =
            serde_json::to_value(resolution::batched(&c.report.total, n)).expect("serializable");
    }
    v
}
