//! `archc fmt`: rewrites specs in the canonical layout (`archc::syntax::fmt`).

use archc::SourceMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `archc fmt`.
#[derive(clap::Args, Debug)]
pub struct FmtArgs {
    /// Spec files to format in place; `-` reads standard input and writes standard output.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write nothing: list the files that are not formatted and exit with 1 if there are any.
    #[arg(long, conflicts_with = "stdout")]
    check: bool,
    /// Print the formatted text on standard output instead of rewriting the files.
    #[arg(long)]
    stdout: bool,
}

/// Runs `archc fmt`. Exit status: 0 when done (or, with `--check`, when every file is
/// formatted); 1 when `--check` finds a file that would change; 2 when a file cannot be read,
/// parsed or written (that file is left as it was).
pub fn run(args: &FmtArgs) -> ExitCode {
    let mut status = 0u8;
    for path in &args.files {
        let (name, text) = if path.as_os_str() == "-" {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("error: cannot read standard input: {e}");
                status = 2;
                continue;
            }
            ("<stdin>".to_string(), text)
        } else {
            let mut sources = SourceMap::new();
            match sources.load(path) {
                Ok(id) => {
                    let f = sources.file(id);
                    (f.name.clone(), f.text.clone())
                }
                Err(e) => {
                    report(&sources, &e.diagnostic("read", path));
                    status = 2;
                    continue;
                }
            }
        };
        let mut sources = SourceMap::new();
        let id = sources.add(name.clone(), text.clone());
        let formatted = match archc::syntax::fmt::format(id, &text) {
            Ok(f) => f,
            Err(d) => {
                report(&sources, &d);
                status = 2;
                continue;
            }
        };
        let to_stdout = args.stdout || path.as_os_str() == "-";
        if args.check {
            if formatted != text {
                println!("{name}");
                status = status.max(1);
            }
        } else if to_stdout {
            print!("{formatted}");
        } else if formatted != text {
            if let Err(e) = replace(path, &formatted) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                status = 2;
            }
        }
    }
    if let Err(e) = std::io::stdout().flush() {
        eprintln!("error: cannot write standard output: {e}");
        status = 2;
    }
    ExitCode::from(status)
}

fn report(sources: &SourceMap, d: &archc::Diagnostic) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprintln!("{}", d.render_with(sources, color));
}

/// Writes `text` to a temporary file next to `path`, then renames it over `path`: a reader (or a
/// crash) sees the old file or the new one, never half of one.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = archc::temp_beside(path, "archc-fmt");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
