//! `archc explain`: why cost conventions differ, layer kind by layer kind.

use crate::args::{Common, Format, parse_convention};
use crate::compile::each_network;
use crate::exit::{Exit, print_json, usage};
use archc::cost::convention::{self, Convention};
use archc::cost::resolution;
use archc::emit::report;
use std::path::PathBuf;

/// `archc explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
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

/// Prints each network's comparison, and in text the compute figure as a function of the input
/// size.
pub fn run(a: &Args) -> Exit {
    let mut convs: Vec<Convention> = Vec::new();
    for c in &a.conventions {
        if !convs.contains(c) {
            convs.push(*c);
        }
    }
    if convs.is_empty() {
        convs = Convention::ALL.to_vec();
    }
    let mut json = Vec::new();
    let exit = each_network(&a.spec, &a.common, |c, _| {
        let Some(e) = convention::explanation(&c.graph, &convs) else {
            return usage(format!("the costs of `{}` overflow 64 bits", c.model.name));
        };
        match a.format {
            Format::Text => {
                print!("{}", report::explain_text(&e));
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
        Exit::Ok
    });
    if a.format == Format::Json {
        print_json(&json);
    }
    exit
}
