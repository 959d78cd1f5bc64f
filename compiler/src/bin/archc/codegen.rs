//! `archc codegen`: the Rust code the `resnext!` macro generates, formatted.

use crate::args::Common;
use crate::compile::{each_network, report};
use crate::exit::Exit;
use archc::Compiled;
use std::path::PathBuf;

/// `archc codegen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec file.
    spec: PathBuf,
    /// The generated struct's name (default: the network name in CamelCase).
    #[arg(long = "type")]
    type_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Prints each network's code. Like the macro, which refuses a spec that breaks its budgets, it
/// reports broken budgets and exits 1 (the code is printed all the same).
pub fn run(a: &Args) -> Exit {
    if let Some(t) = a
        .type_name
        .as_deref()
        .filter(|t| syn::parse_str::<syn::Ident>(t).is_err())
    {
        eprintln!(
            "error: --type {t:?} is not a Rust identifier (use a struct name such as ResNeXt50)"
        );
        return Exit::Error;
    }
    each_network(&a.spec, &a.common, |c, sources| {
        let violations = c.violations();
        let exit = if violations.is_empty() {
            Exit::Ok
        } else {
            report(sources, violations);
            Exit::Budget
        };
        print!(
            "{}",
            code(c, &a.spec.display().to_string(), a.type_name.as_deref())
        );
        exit
    })
}

/// The macro's output for a network, formatted with prettyplease.
fn code(c: &Compiled, origin: &str, type_name: Option<&str>) -> String {
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
