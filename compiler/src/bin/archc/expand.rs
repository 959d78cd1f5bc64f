//! `archc expand`: the fully instantiated network in a canonical text form.

use crate::args::SpecArgs;
use crate::compile::print_each;
use crate::exit::Exit;
use archc::emit::report;

/// Prints each network's expansion.
pub fn run(a: &SpecArgs) -> Exit {
    print_each(a, report::expanded)
}
