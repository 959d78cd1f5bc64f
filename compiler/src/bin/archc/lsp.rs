//! `archc lsp`: the language server (`archc::lsp`) on standard input and output.

use std::process::ExitCode;

/// Arguments of `archc lsp`.
#[derive(clap::Args, Debug)]
pub struct LspArgs {
    /// Accepted for editors that pass it (VS Code's language client does); stdio is the only
    /// transport.
    #[arg(long)]
    stdio: bool,
}

/// Runs the server until the client says `exit`. Exit status: 0 after `shutdown` then `exit`;
/// 1 when the client exits without `shutdown` or the input ends; 2 when stdio fails.
pub fn run(args: &LspArgs) -> ExitCode {
    let _ = args.stdio;
    match archc::lsp::serve(std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: archc lsp: {e}");
            ExitCode::from(2)
        }
    }
}
