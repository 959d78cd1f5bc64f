//! The exit codes of `archc`.

use std::process::ExitCode;

/// How a command ends. Ordered from best to worst: over several specs or networks the worst wins
/// ([`Ord::max`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// 0: every spec compiles and meets its budgets (or the command does not check them).
    Ok,
    /// 1: a budget is broken (`check`, `codegen`), or no value fits (`solve`).
    Budget,
    /// 2: a spec error (syntax, names, shapes, an unreadable file) or a usage error.
    Error,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Ok => 0,
            Exit::Budget => 1,
            Exit::Error => 2,
        })
    }
}

/// Reports a usage error on stderr.
pub fn usage(msg: impl std::fmt::Display) -> Exit {
    eprintln!("archc: {msg}");
    Exit::Error
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}
