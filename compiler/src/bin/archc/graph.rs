//! `archc graph`: Graphviz DOT of the layer graph.

use crate::args::Common;
use crate::compile::each_network;
use crate::exit::Exit;
use archc::emit::report;
use std::path::PathBuf;

/// `archc graph`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Prints each network's graph.
pub fn run(a: &Args) -> Exit {
    each_network(&a.spec, &a.common, |c, _| {
        print!("{}", report::dot(c));
        Exit::Ok
    })
}
