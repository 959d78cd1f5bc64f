//! Benchmark of the whole archc pipeline over every shipped spec, compared with Python counters.
//!
//! 1. A criterion group `pipeline` with one benchmark per `specs/**/*.arch` (named by the file
//!    stem). Each iteration is what a caller of the library pays: `Spec::from_path` (file reads,
//!    parsing, imports) and `compile` of every network the spec defines (expansion, lowering to
//!    the layer graph with shapes, costs, budgets).
//! 2. In benchmark mode only (`cargo bench`, not `cargo test --benches`), whole-process timings
//!    of `archc check --format json SPEC` (the release binary, median of
//!    [`ARCHC_RUNS`]) and, for the models that `scripts/reference.py` can build, of
//!    `.venv/bin/python3 scripts/count.py macs NAME` and `scripts/count.py fvcore NAME`
//!    (median of [`PYTHON_RUNS`]). The MAC total printed by the torchvision counter is checked
//!    against archc's `report.total.macs`.
//! 3. The results go into `BENCHMARKS.md` at the repository root, between [`BEGIN`] and [`END`];
//!    the rest of that file is left as it is.
//!
//! Run it with `scripts/bench.sh`, which also builds the release binary and the Python venv.

use std::collections::BTreeMap;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use archc::cost::grouped;
use archc::{Compiled, Overrides, Spec};
use criterion::Criterion;

/// Marker that opens the generated section of `BENCHMARKS.md`.
const BEGIN: &str = "<!-- pipeline:begin -->";
/// Marker that closes the generated section of `BENCHMARKS.md`.
const END: &str = "<!-- pipeline:end -->";
/// Models that `scripts/count.py` can build; each is
/// also the name of a shipped spec (file stem) and of the network it defines.
const PYTHON_MODELS: [&str; 11] = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "resnext29_8x64d",
    "resnext29_16x64d",
];
/// Runs of each Python process; the median is reported.
const PYTHON_RUNS: usize = 3;
/// Runs of each `archc check` process; the median is reported.
const ARCHC_RUNS: usize = 5;
/// The command that reproduces the figures, as written into `BENCHMARKS.md`.
const RERUN: &str = "scripts/bench.sh";

/// One shipped spec: where it is, its benchmark id and what compiling it once gave.
struct Shipped {
    /// Path of the `.arch` file.
    path: PathBuf,
    /// Path relative to the repository root, for messages.
    rel: String,
    /// Benchmark id: the file stem (made unique if two specs share a stem).
    id: String,
    /// Total multiply-adds of the network named like the file (or of the first network), or
    /// why the spec did not compile.
    macs: Result<u64, String>,
}

/// What was measured for one spec outside criterion.
#[derive(Default)]
struct Row {
    /// Median wall time of the whole `archc check --format json SPEC` process.
    archc_process: Option<Result<Duration, String>>,
    /// Median wall time of the whole `count.py macs` process.
    torchvision: Option<Result<Duration, String>>,
    /// Median wall time of the whole `count.py fvcore` process.
    fvcore: Option<Result<Duration, String>>,
    /// MAC total printed by `count.py macs`.
    torchvision_macs: Option<u64>,
}

/// Repository root: the parent of the `compiler` package.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the compiler package lives in the workspace")
        .to_path_buf()
}

/// Every `*.arch` file under `dir`, recursively, sorted by path.
fn walk_arch(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk_arch(&path, out);
        } else if path.extension().is_some_and(|e| e == "arch") {
            out.push(path);
        }
    }
}

/// Parses and compiles every network of one spec: the work each benchmark iteration does.
fn pipeline(path: &Path) -> Result<Vec<Compiled>, archc::Failure> {
    let spec = Spec::from_path(path)?;
    let overrides = Overrides::default();
    spec.networks()
        .iter()
        .map(|n| spec.compile(n, &overrides))
        .collect()
}

/// Finds the shipped specs and compiles each once, outside any timing.
fn shipped_specs(root: &Path) -> Vec<Shipped> {
    let mut paths = Vec::new();
    walk_arch(&root.join("specs"), &mut paths);
    paths.sort();
    let mut stems: BTreeMap<String, usize> = BTreeMap::new();
    for p in &paths {
        *stems.entry(stem(p)).or_default() += 1;
    }
    paths
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            let mut id = stem(&path);
            if stems[&id] > 1 {
                let dir = path
                    .parent()
                    .and_then(Path::file_name)
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default();
                id = format!("{dir}-{id}");
            }
            let macs = match pipeline(&path) {
                Ok(nets) => {
                    let own = nets.iter().find(|c| c.model.name == stem(&path));
                    own.or(nets.first())
                        .map(|c| c.report.total.macs)
                        .ok_or_else(|| "defines no network".to_string())
                }
                Err(f) => Err(f.render()),
            };
            if let Err(e) = &macs {
                eprintln!("warning: {rel} does not compile; it is not benchmarked:\n{e}");
            }
            Shipped {
                path,
                rel,
                id,
                macs,
            }
        })
        .collect()
}

/// A file's name without its extension.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Registers the `pipeline` group: one benchmark per spec that compiles.
fn bench_pipeline(c: &mut Criterion, specs: &[Shipped]) {
    let mut group = c.benchmark_group("pipeline");
    for s in specs.iter().filter(|s| s.macs.is_ok()) {
        group.bench_function(s.id.as_str(), |b| {
            b.iter(|| pipeline(black_box(&s.path)).expect("compiled before"))
        });
    }
    group.finish();
}

/// Whether criterion runs real benchmarks, decided from the arguments the way criterion does:
/// `--bench` without `--test`, `--list` or `--profile-time`.
fn benchmark_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    has("--bench") && !has("--test") && !has("--list") && !has("--profile-time")
}

/// The cargo target directory, found like criterion finds it (`CARGO_TARGET_DIR`, then
/// `cargo metadata`, then `target/` at the repository root).
fn target_dir(root: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["target_directory"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| root.join("target"))
}

/// Criterion's output directory (`CRITERION_HOME` or `<target>/criterion`).
fn criterion_dir(target: &Path) -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => target.join("criterion"),
    }
}

/// The median point estimate of one benchmark, if criterion wrote it during this run.
fn criterion_median(dir: &Path, id: &str, since: SystemTime) -> Option<Duration> {
    let file = dir
        .join("pipeline")
        .join(id)
        .join("new")
        .join("estimates.json");
    let fresh = fs::metadata(&file).and_then(|m| m.modified()).ok()? >= since;
    if !fresh {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&file).ok()?).ok()?;
    let ns = v["median"]["point_estimate"].as_f64()?;
    Some(Duration::from_secs_f64(ns / 1e9))
}

/// Runs a command `runs` times and returns the median wall time of the whole process and the
/// standard output of the last run. Exit codes outside `ok_codes` are an error.
fn time_process(
    make: impl Fn() -> Command,
    runs: usize,
    ok_codes: &[i32],
) -> Result<(Duration, String), String> {
    let mut times = Vec::with_capacity(runs);
    let mut stdout = String::new();
    for _ in 0..runs {
        let mut cmd = make();
        let start = Instant::now();
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
        times.push(start.elapsed());
        if !out.status.code().is_some_and(|c| ok_codes.contains(&c)) {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "{cmd:?} failed ({}): {}",
                out.status,
                tail.join(" / ")
            ));
        }
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    times.sort();
    Ok((times[times.len() / 2], stdout))
}

/// Formats a duration with three significant figures and a fitting unit.
fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else {
        (s * 1e6, "µs")
    };
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.decimals$} {unit}")
}

/// Formats `a / b` with three significant figures, e.g. `7.5×`, `42×` or `12,400×`.
fn fmt_ratio(a: Duration, b: Duration) -> String {
    let r = a.as_secs_f64() / b.as_secs_f64();
    if r >= 100.0 {
        // Three significant figures: 12,345 → 12,300.
        let step = 10f64.powi(r.log10().floor() as i32 - 2);
        format!("{}×", grouped(((r / step).round() * step) as u64))
    } else if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

/// A table cell for an optional measurement.
fn cell(m: &Option<Result<Duration, String>>) -> String {
    match m {
        None => "—".into(),
        Some(Ok(d)) => fmt_duration(*d),
        Some(Err(_)) => "failed".into(),
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock (civil-from-days).
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The output of `nproc`, or the available parallelism if `nproc` cannot run.
fn nproc() -> String {
    Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into())
        })
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Measures the whole processes (archc binary, Python counters) for every spec.
fn measure_processes(
    root: &Path,
    archc_bin: &Path,
    python: Option<&Path>,
    specs: &[Shipped],
) -> BTreeMap<String, Row> {
    let mut rows = BTreeMap::new();
    for s in specs {
        let mut row = Row::default();
        if archc_bin.is_file() && s.macs.is_ok() {
            println!(
                "timing: archc check --format json {} (x{ARCHC_RUNS})",
                s.rel
            );
            let t = time_process(
                || {
                    let mut c = Command::new(archc_bin);
                    c.args(["check", "--format", "json"])
                        .arg(&s.rel)
                        .current_dir(root);
                    c
                },
                ARCHC_RUNS,
                &[0, 1], // 1: a budget is broken, the work is the same
            );
            row.archc_process = Some(t.map(|(d, _)| d));
        }
        let name = stem(&s.path);
        if let Some(py) = python.filter(|_| PYTHON_MODELS.contains(&name.as_str())) {
            let run = |counter: &str| {
                println!(
                    "timing: .venv/bin/python3 scripts/count.py {counter} {name} (x{PYTHON_RUNS})"
                );
                time_process(
                    || {
                        let mut c = Command::new(py);
                        c.arg("scripts/count.py")
                            .arg(counter)
                            .arg(&name)
                            .current_dir(root);
                        c
                    },
                    PYTHON_RUNS,
                    &[0],
                )
            };
            let tv = run("macs");
            row.torchvision_macs = tv
                .as_ref()
                .ok()
                .and_then(|(_, out)| out.lines().last()?.trim().parse().ok());
            row.torchvision = Some(tv.map(|(d, _)| d));
            row.fvcore = Some(run("fvcore").map(|(d, _)| d));
        }
        for (what, m) in [
            ("archc", &row.archc_process),
            ("torchvision", &row.torchvision),
            ("fvcore", &row.fvcore),
        ] {
            if let Some(Err(e)) = m {
                eprintln!("warning: {} ({what}): {e}", s.id);
            }
        }
        rows.insert(s.id.clone(), row);
    }
    rows
}

/// Everything the generated section of `BENCHMARKS.md` is made from.
struct Results<'a> {
    /// The shipped specs, in table order.
    specs: &'a [Shipped],
    /// Criterion medians by benchmark id.
    in_process: BTreeMap<String, Duration>,
    /// Whole-process figures by benchmark id.
    rows: BTreeMap<String, Row>,
    /// Median of a bare `import torch, torchvision`, if Python ran.
    torch_import: Option<Duration>,
    /// Lines explaining skipped parts (no venv, no binary).
    notes: Vec<String>,
}

/// Renders the generated section (without the markers).
fn render(r: &Results) -> String {
    let mut out = String::new();
    out.push_str(
        "| model | archc in-process (median) | archc whole process | \
         torchvision hook counter whole process | fvcore whole process | \
         ratio fvcore/archc (whole process) | ratio fvcore/archc in-process |\n",
    );
    out.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
    let mut warnings = Vec::new();
    let mut agreed = 0;
    let mut compared = 0;
    for s in r.specs {
        let row = r.rows.get(&s.id);
        let inproc = r.in_process.get(&s.id).copied();
        let archc_proc = row.and_then(|w| w.archc_process.as_ref()?.as_ref().ok().copied());
        let fv = row.and_then(|w| w.fvcore.as_ref()?.as_ref().ok().copied());
        let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) if !b.is_zero() => fmt_ratio(a, b),
            _ => "—".into(),
        };
        let inproc_cell = match (&s.macs, inproc) {
            (Err(_), _) => "does not compile".into(),
            (Ok(_), Some(d)) => fmt_duration(d),
            (Ok(_), None) => "not run".into(),
        };
        let none = Row::default();
        let row_ref = row.unwrap_or(&none);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            s.id,
            inproc_cell,
            cell(&row_ref.archc_process),
            cell(&row_ref.torchvision),
            cell(&row_ref.fvcore),
            ratio(fv, archc_proc),
            ratio(fv, inproc),
        ));
        if let (Some(theirs), Ok(ours)) = (row_ref.torchvision_macs, &s.macs) {
            compared += 1;
            if theirs == *ours {
                agreed += 1;
            } else {
                warnings.push(format!(
                    "- **warning** {}: `count.py macs` printed {} MACs, archc counts {}",
                    s.id,
                    grouped(theirs),
                    grouped(*ours)
                ));
            }
        } else if matches!(row_ref.torchvision, Some(Ok(_))) {
            warnings.push(format!(
                "- **warning** {}: could not compare MACs (no number printed or spec failed)",
                s.id
            ));
        }
        if let Some(Err(e)) = &row_ref.torchvision {
            warnings.push(format!("- **warning** {}: torchvision counter: {e}", s.id));
        }
        if let Some(Err(e)) = &row_ref.fvcore {
            warnings.push(format!("- **warning** {}: fvcore: {e}", s.id));
        }
        if let Some(Err(e)) = &row_ref.archc_process {
            warnings.push(format!("- **warning** {}: archc check: {e}", s.id));
        }
        if let Err(e) = &s.macs {
            let first = e.lines().next().unwrap_or_default();
            warnings.push(format!(
                "- **warning** {}: does not compile: {first}",
                s.rel
            ));
        }
    }
    out.push('\n');
    if compared > 0 {
        out.push_str(&format!(
            "The MAC total printed by `count.py macs` equals archc's `report.total.macs` \
             for {agreed} of {compared} models compared.\n\n",
        ));
    }
    if !warnings.is_empty() {
        for w in &warnings {
            out.push_str(w);
            out.push('\n');
        }
        out.push('\n');
    }
    if let Some(t) = r.torch_import {
        out.push_str(&format!(
            "A bare `.venv/bin/python3 -c 'import torch, torchvision'` takes {} \
             (median of {PYTHON_RUNS}).\n\n",
            fmt_duration(t)
        ));
    }
    for n in &r.notes {
        out.push_str(n);
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "Measured {} on {} CPUs (`nproc`), {}. Rerun: `{RERUN}` \
         (or `cargo bench -p archc --bench pipeline` after `cargo build --release --bin archc`).\n",
        today(),
        nproc(),
        cpu_model(),
    ));
    out
}

/// Replaces the text between the markers of `file`, creating the file or the markers if absent.
fn write_section(file: &Path, body: &str) -> std::io::Result<()> {
    let section = format!("{BEGIN}\n{body}{END}");
    let old = match fs::read_to_string(file) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let new = match old {
        None => format!("# Benchmarks\n\n{section}\n"),
        Some(old) => match old.find(BEGIN).and_then(|b| {
            let e = old[b..].find(END)? + b + END.len();
            Some((b, e))
        }) {
            Some((b, e)) => format!("{}{section}{}", &old[..b], &old[e..]),
            None => {
                let sep = if old.is_empty() || old.ends_with("\n\n") {
                    ""
                } else if old.ends_with('\n') {
                    "\n"
                } else {
                    "\n\n"
                };
                format!("{old}{sep}{section}\n")
            }
        },
    };
    fs::write(file, new)
}

/// Runs criterion, then the whole-process comparison, and updates `BENCHMARKS.md`.
fn main() {
    let root = repo_root();
    let specs = shipped_specs(&root);
    let started = SystemTime::now();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_pipeline(&mut criterion, &specs);
    criterion.final_summary();
    if !benchmark_mode() {
        return;
    }

    let target = target_dir(&root);
    let crit_dir = criterion_dir(&target);
    let in_process: BTreeMap<String, Duration> = specs
        .iter()
        .filter_map(|s| Some((s.id.clone(), criterion_median(&crit_dir, &s.id, started)?)))
        .collect();

    let mut notes = Vec::new();
    let archc_bin = target.join("release").join("archc");
    if !archc_bin.is_file() {
        let msg = format!(
            "{} is missing: run `cargo build --release --bin archc` (scripts/bench.sh does) \
             for the whole-process archc column.",
            archc_bin.display()
        );
        eprintln!("note: {msg}");
        notes.push(format!("Note: {msg}"));
    }
    let venv_python = root.join(".venv").join("bin").join("python3");
    let python = if venv_python.is_file() {
        Some(venv_python.as_path())
    } else {
        let msg = ".venv/bin/python3 is missing: run `scripts/setup-venv.sh` (scripts/bench.sh \
                   does) for the torchvision and fvcore columns; they are skipped.";
        eprintln!("note: {msg}");
        notes.push(format!("Note: {msg}"));
        None
    };
    let torch_import = python.and_then(|py| {
        println!("timing: .venv/bin/python3 -c 'import torch, torchvision' (x{PYTHON_RUNS})");
        time_process(
            || {
                let mut c = Command::new(py);
                c.args(["-c", "import torch, torchvision"])
                    .current_dir(&root);
                c
            },
            PYTHON_RUNS,
            &[0],
        )
        .map_err(|e| eprintln!("warning: {e}"))
        .ok()
        .map(|(d, _)| d)
    });
    let rows = measure_processes(&root, &archc_bin, python, &specs);
    let body = render(&Results {
        specs: &specs,
        in_process,
        rows,
        torch_import,
        notes,
    });
    println!("\n{body}");
    let file = root.join("BENCHMARKS.md");
    match write_section(&file, &body) {
        Ok(()) => println!("wrote {}", file.display()),
        Err(e) => eprintln!("error: cannot write {}: {e}", file.display()),
    }
}
