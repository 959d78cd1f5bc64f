//! `archc summary`: the per-layer table, as text, JSON or CSV.

use crate::args::{Common, parse_convention};
use crate::compile::{each_network, report};
use crate::exit::{Exit, print_json};
use archc::cost::convention::Convention;
use archc::emit::report as emit;
use clap::ValueEnum;
use std::path::PathBuf;

/// `archc summary`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    /// Also list layers that cost nothing (ReLU, pooling, additions).
    #[arg(long)]
    all: bool,
    /// Count the compute and activations columns as torchvision, fvcore or pycls do.
    #[arg(long, value_parser = parse_convention, default_value = "torchvision")]
    convention: Convention,
    /// Output format: an aligned table, a JSON array with one object per network, or CSV with one
    /// row per layer and network (`macs` is the convention's compute figure).
    #[arg(long, value_enum, default_value_t = SummaryFormat::Text)]
    format: SummaryFormat,
    #[command(flatten)]
    common: Common,
}

/// `archc summary --format`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryFormat {
    /// An aligned table, with totals.
    Text,
    /// `[{name, convention, layers: [{path, op, output, params, buffers, macs, activations}],
    /// total}]`.
    Json,
    /// `network,layer,op,output,params,buffers,macs,activations`, then a `total` row per network.
    Csv,
}

/// Prints each network's table.
pub fn run(a: &Args) -> Exit {
    let mut json = Vec::new();
    if a.format == SummaryFormat::Csv {
        println!("{}", emit::SUMMARY_CSV_HEADER);
    }
    let exit = each_network(&a.spec, &a.common, |c, sources| {
        let r = match c.report_under(a.convention) {
            Ok(r) => r,
            Err(d) => {
                report(sources, vec![d]);
                return Exit::Error;
            }
        };
        match a.format {
            SummaryFormat::Text => print!("{}", emit::summary(c, &r, a.convention, a.all)),
            SummaryFormat::Csv => print!("{}", emit::summary_csv(c, &r, a.all)),
            SummaryFormat::Json => json.push(
                serde_json::to_value(emit::summary_json(c, &r, a.convention, a.all))
                    .expect("serializable"),
            ),
        }
        Exit::Ok
    });
    if a.format == SummaryFormat::Json {
        print_json(&json);
    }
    exit
}
