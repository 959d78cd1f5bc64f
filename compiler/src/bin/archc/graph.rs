//! `archc graph`: Graphviz DOT of the layer graph, stages and blocks as clusters.

use crate::args::SpecArgs;
use crate::compile::print_each;
use crate::exit::Exit;
use archc::emit::report;

/// Prints each network's graph.
pub fn run(a: &SpecArgs) -> Exit {
    print_each(a, report::dot)
}
