//! What the runtime's benchmarks share: where the repository is, the device they run on, and
//! how they write their section of BENCHMARKS.md.
#![allow(dead_code)]

use archc_runtime::parse_device;
use std::path::{Path, PathBuf};
use tch::Device;

/// The repository (or, on a GPU box, the unpacked bundle: `ARCHC_ROOT`).
pub fn root() -> PathBuf {
    std::env::var_os("ARCHC_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// An environment variable parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Handles the bench binary's arguments: `None` under `cargo test --benches` (which passes
/// `--test`: build-check only), else the device of `--device cpu|cuda|auto` (after `--` with
/// cargo bench), or `ARCHC_DEVICE`, default `auto`, with the name as given. A bad device exits
/// with 2.
pub fn device_from_args() -> Option<(Device, String)> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test") {
        return None;
    }
    let name = args
        .iter()
        .position(|a| a == "--device")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("ARCHC_DEVICE").ok())
        .unwrap_or_else(|| "auto".to_string());
    match parse_device(&name) {
        Ok(d) => Some((d, name)),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

/// PyTorch's name for `device` (`cpu`, `cuda:0`), for the Python side of a benchmark.
pub fn torch_device(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    }
}

/// The Python that runs the PyTorch side: `ARCHC_PYTHON`, or the project's venv.
pub fn python() -> PathBuf {
    std::env::var_os("ARCHC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python3"))
}

/// Replaces (or appends) the section `<!-- name:begin -->…<!-- name:end -->` of BENCHMARKS.md.
pub fn write_section(name: &str, body: &str) {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let file = root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&file).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let section = format!("{begin}\n{body}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n{section}\n", old.trim_end()),
    };
    std::fs::write(&file, new).expect("BENCHMARKS.md is writable");
}

/// Today's date (UTC), as `date -u +%Y-%m-%d` prints it.
pub fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The CPU's model name from /proc/cpuinfo (empty where there is none).
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}
