//! `archc expand`: the fully instantiated network in a canonical text form.

use crate::args::Common;
use crate::compile::each_network;
use crate::exit::Exit;
use archc::emit::report;
use std::path::PathBuf;

/// `archc expand`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Prints each network's expansion.
pub fn run(a: &Args) -> Exit {
    each_network(&a.spec, &a.common, |c, _| {
        print!("{}", report::expanded(c));
        Exit::Ok
    })
}
