//! Design tools built on the compiler: they compile a spec many times under overrides.
//!
//! - [`solve`]: the value of a parameter that meets the budgets (the paper's Tables 2 and 3).
//! - [`sweep`]: a grid of variants as a table (text, CSV, JSON).
//! - [`plot`] (feature `plot`): the SVG plot of a sweep.
//!
//! Their budgets are [`crate::cost::budget::Limit`]s; a compile error that no value of the varied
//! parameters can remove ([`crate::Failure::is_fatal`]) stops them.

#[cfg(feature = "plot")]
pub mod plot;
pub mod solve;
pub mod sweep;

use crate::expand::Overrides;

/// `base` with `set` on top: a key of `set` replaces the same key of `base.set`.
fn with_set(base: &Overrides, set: &[(String, String)]) -> Overrides {
    let mut overrides = base.clone();
    overrides
        .set
        .retain(|(k, _)| !set.iter().any(|(s, _)| s == k));
    overrides.set.extend(set.iter().cloned());
    overrides
}

use crate::cost::budget::Limit;
use crate::cost::convention::Convention;
use std::fmt::Write as _;

/// The lines that head the text of `solve` and `sweep`: `WHAT (NOTEconvention NAME: COMPUTE =
/// UNIT)`, then each budget, where it comes from and what its figure counts under `conv`.
fn write_head(
    o: &mut String,
    what: &str,
    note: &str,
    compute: &str,
    budgets: &[Limit],
    conv: Convention,
) {
    let _ = writeln!(
        o,
        "{what} ({note}convention {}: {compute} = {})",
        conv.name(),
        conv.compute_unit()
    );
    for b in budgets {
        let _ = writeln!(
            o,
            "  budget {} [{}]: {}",
            b.describe(),
            b.source(),
            b.figure.meaning(conv)
        );
    }
}
