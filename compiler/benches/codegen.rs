//! The `resnext!` macro's expansion work for resnext101_64x4d: reading and parsing the spec,
//! expansion, lowering, costing and code generation (`archc::emit::rust::emit`), which is what the
//! proc-macro does inside rustc. Writes the median into BENCHMARKS.md (section `codegen`).
//! Rerun: `cargo bench -p archc --bench codegen`.

use archc::emit::rust::{Names, emit, type_name};
use criterion::Criterion;
use std::fmt::Write as _;
use std::path::Path;

/// Compiles a spec and generates its code; returns the code's length in bytes.
fn expand(path: &Path) -> usize {
    let c = archc::compile_file(path, &Default::default()).expect("shipped spec compiles");
    let names = Names {
        type_name: type_name(&c.model.name),
        vis: quote::quote!(pub),
        origin: "bench".to_string(),
    };
    emit(&c, &names).to_string().len()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let specs = [
        "specs/resnext/resnext101_64x4d.arch",
        "specs/resnext/resnext50_32x4d.arch",
        "specs/variants/resnext50_32x4d_split.arch",
    ];
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3));
    for s in specs {
        let path = root.join(s);
        let id = Path::new(s)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        c.bench_function(&format!("codegen/{id}"), |b| b.iter(|| expand(&path)));
    }
    c.final_summary();
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut body = String::from(
        "Expansion work of `resnext!` (parse, expand, lower, cost, generate tokens), criterion median, one run:\n\n| spec | median | generated code |\n|---|---:|---:|\n",
    );
    for s in specs {
        let id = Path::new(s)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let est = target.join(format!("criterion/codegen_{id}/new/estimates.json"));
        let median = std::fs::read_to_string(&est)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["median"]["point_estimate"].as_f64());
        let tokens = expand(&root.join(s));
        let shown = median.map_or("n/a".to_string(), |ns| format!("{:.2} ms", ns / 1e6));
        let _ = writeln!(body, "| `{s}` | {shown} | {} kB of tokens |", tokens / 1000);
    }
    let file = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    let (b, e) = ("<!-- codegen:begin -->", "<!-- codegen:end -->");
    let section = format!("{b}\n{body}{e}");
    let new = match (old.find(b), old.find(e)) {
        (Some(i), Some(j)) if j > i => format!("{}{section}{}", &old[..i], &old[j + e.len()..]),
        _ => format!(
            "{}\n\n## resnext! expansion time\n\n{section}\n",
            old.trim_end()
        ),
    };
    std::fs::write(&file, new).expect("BENCHMARKS.md is writable");
    println!("{body}");
}
