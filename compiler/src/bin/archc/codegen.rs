//! `archc codegen`: the Rust code the `resnext!` macro generates, formatted, or (`--target
//! pytorch`) one Python module for PyTorch.

use crate::args::Common;
use crate::compile::{compile, report, reported};
use crate::exit::Exit;
use archc::Compiled;
use clap::ValueEnum;
use std::path::{Path, PathBuf};

/// What `archc codegen` writes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Rust for archc-runtime: what the `resnext!` macro generates.
    #[default]
    Rust,
    /// One Python module for PyTorch (`nn.Module` classes with torchvision's names).
    Pytorch,
}

/// `archc codegen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    /// The generated struct's name (default: the network name in CamelCase; Rust only).
    #[arg(long = "type")]
    type_name: Option<String>,
    /// What to generate: `rust` (the `resnext!` code) or `pytorch` (one module needing only
    /// `torch`).
    #[arg(long, value_enum, default_value_t = Target::Rust)]
    target: Target,
    /// Write the code to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// Generates the code of every network of the spec that compiles. Like the macro, which refuses
/// a spec that breaks its budgets, it reports broken budgets and exits 1 (the code is written
/// all the same).
pub fn run(a: &Args) -> Exit {
    match (a.target, a.type_name.as_deref()) {
        (Target::Pytorch, Some(_)) => {
            eprintln!(
                "error: --type names the Rust struct; the PyTorch target names each class after its network"
            );
            return Exit::Error;
        }
        (Target::Rust, Some(t)) if syn::parse_str::<syn::Ident>(t).is_err() => {
            eprintln!(
                "error: --type {t:?} is not a Rust identifier (use a struct name such as ResNeXt50)"
            );
            return Exit::Error;
        }
        _ => {}
    }
    let Some((nets, mut exit)) = reported(compile(&a.spec, &a.common)) else {
        return Exit::Error;
    };
    for c in &nets.nets {
        let violations = c.violations();
        if !violations.is_empty() {
            report(&nets.sources, violations);
            exit = exit.max(Exit::Budget);
        }
    }
    let code = match a.target {
        Target::Rust => nets
            .nets
            .iter()
            .map(|c| rust(c, &a.spec.display().to_string(), a.type_name.as_deref()))
            .collect(),
        Target::Pytorch => {
            let mut origin = format!("`{}`", a.spec.display());
            for (k, v) in &a.common.set {
                origin.push_str(&format!(" `--set {k}={v}`"));
            }
            archc::emit::pytorch::module(&nets.nets, &origin)
        }
    };
    match write(&code, a.output.as_deref()) {
        Ok(()) => exit,
        Err(e) => {
            eprintln!("{e}");
            Exit::Error
        }
    }
}

/// The macro's output for a network, formatted with prettyplease.
fn rust(c: &Compiled, origin: &str, type_name: Option<&str>) -> String {
    let names = archc::emit::rust::Names {
        type_name: type_name.map_or_else(
            || archc::emit::rust::type_name(&c.model.name),
            str::to_string,
        ),
        vis: quote::quote!(pub),
        origin: format!("`{origin}`"),
    };
    let tokens = archc::emit::rust::emit(c, &names);
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

/// Writes generated code to `out`, or to stdout.
fn write(code: &str, out: Option<&Path>) -> Result<(), String> {
    match out {
        None => {
            print!("{code}");
            Ok(())
        }
        Some(path) => std::fs::write(path, code)
            .map_err(|e| format!("error: cannot write {}: {e}", path.display())),
    }
}
