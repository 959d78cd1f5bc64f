//! `archc codegen --target`: which code generator `codegen` runs, and the PyTorch target.

use super::{CompiledSpec, report_budgets};
use clap::ValueEnum;
use std::path::Path;

/// What `archc codegen` writes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Rust for archc-runtime: what the `resnext!` macro generates.
    #[default]
    Rust,
    /// One Python module for PyTorch (`nn.Module` classes with torchvision's names).
    Pytorch,
}

/// The PyTorch module for every network of the spec that compiled, and the exit status its
/// budgets call for (1 when one is broken, as for the Rust target; the module is still written).
/// `--type` names the Rust struct only: with it, an error.
pub fn pytorch(
    nets: &CompiledSpec,
    spec: &Path,
    set: &[(String, String)],
    type_name: Option<&str>,
) -> Result<(String, u8), String> {
    if type_name.is_some() {
        return Err(
            "error: --type names the Rust struct; the PyTorch target names each class after its network"
                .to_string(),
        );
    }
    let mut status = 0;
    for c in nets.iter() {
        if !report_budgets(&nets.sources, c.violations()) {
            status = 1;
        }
    }
    let mut origin = format!("`{}`", spec.display());
    for (k, v) in set {
        origin.push_str(&format!(" `--set {k}={v}`"));
    }
    Ok((archc::emit::pytorch::module(nets, &origin), status))
}

/// Writes generated code to `out`, or to stdout.
pub fn write(code: &str, out: Option<&Path>) -> Result<(), String> {
    match out {
        None => {
            print!("{code}");
            Ok(())
        }
        Some(path) => std::fs::write(path, code)
            .map_err(|e| format!("error: cannot write {}: {e}", path.display())),
    }
}
