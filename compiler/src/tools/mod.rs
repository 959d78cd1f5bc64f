//! Design tools built on the compiler: they compile a spec many times under overrides.
//!
//! - [`solve`]: the value of a parameter that meets the budgets (the paper's Tables 2 and 3).
//! - [`sweep`]: a grid of variants as a table or an SVG plot (feature `plot`).

pub mod solve;
pub mod sweep;
