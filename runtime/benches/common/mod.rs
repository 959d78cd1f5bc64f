//! What the runtime's benchmarks share: where the repository is, the device they run on, and
//! how they write their section of BENCHMARKS.md.
#![allow(dead_code)]

use archc_runtime::parse_device;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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

/// A GPU's dense bf16 tensor-core peak in TFLOP/s (NVIDIA data sheets) by its name, or
/// `ARCHC_GPU_PEAK_TFLOPS`.
pub fn gpu_peak_tflops(gpu_name: &str) -> Option<f64> {
    std::env::var("ARCHC_GPU_PEAK_TFLOPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .or_else(|| {
            [
                ("H200", 989.0),
                ("H100", 989.0),
                ("A100", 312.0),
                ("L40S", 362.0),
                ("L4", 121.0),
                ("A10", 125.0),
            ]
            .iter()
            .find(|(n, _)| gpu_name.contains(n))
            .map(|p| p.1)
        })
}

/// Milliseconds with one decimal, or `n/a`.
pub fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.1} ms"))
}

/// `ours / theirs` with two decimals (below 1.00: we are faster), or `n/a`.
pub fn ratio(ours: f64, theirs: Option<f64>) -> String {
    theirs.map_or("n/a".to_string(), |t| format!("{:.2}", ours / t))
}

/// Three table cells: ours, theirs and the ratio in bold.
pub fn versus(ours: f64, theirs: Option<f64>) -> String {
    let (a, b, r) = (fmt_ms(Some(ours)), fmt_ms(theirs), ratio(ours, theirs));
    format!("{a} | {b} | **{r}**")
}

/// `--name value` pairs as one argument list.
pub fn flags(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.clone()])
        .collect()
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

/// A PyTorch-side script running as a server (`scripts/torch_train_step.py --serve`,
/// `scripts/torch_compiled.py`): it prints one JSON line when it is ready, then answers each
/// request line with one line. Killed when dropped.
pub struct PythonServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The first line it printed.
    pub ready: serde_json::Value,
}

impl PythonServer {
    /// Starts `python scripts/SCRIPT ARGS…` and waits for its ready line; `None` (with the reason
    /// on stderr) when it fails.
    pub fn start(python: &Path, script: &str, args: &[String]) -> Option<PythonServer> {
        let mut child = Command::new(python)
            .arg(root().join("scripts").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| eprintln!("{script}: {e}"))
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        let mut server = PythonServer {
            child,
            stdin,
            stdout,
            ready: serde_json::Value::Null,
        };
        // The first JSON line; anything a library printed before it is passed on.
        loop {
            let line = server.read()?;
            match serde_json::from_str(&line) {
                Ok(v) => {
                    server.ready = v;
                    return Some(server);
                }
                Err(_) => eprint!("{script}: {line}"),
            }
        }
    }

    /// Sends one request line and returns the answer line.
    pub fn ask(&mut self, request: &str) -> Option<String> {
        writeln!(self.stdin, "{request}").ok()?;
        self.stdin.flush().ok()?;
        self.read()
    }

    fn read(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line),
            _ => None,
        }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
