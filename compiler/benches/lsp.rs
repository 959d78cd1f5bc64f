//! How long the language server takes to answer an edit of the largest shipped spec.
//!
//! One iteration is what an editor waits for after a keystroke in
//! `specs/resnext/resnext101_64x4d.arch`: a `textDocument/didChange` with a ranged edit (the
//! server re-reads the two imported specs from disk, parses all three, expands, lowers and costs
//! the network, checks its budgets and builds the diagnostics it publishes), then a
//! `textDocument/hover` and a `textDocument/inlayHint` over the whole file. Measured in-process
//! on `archc::lsp::Server::handle` (JSON parameters decoded, replies built as JSON values); the
//! stdio framing is left out.
//!
//! 1. A criterion group `lsp` with that benchmark.
//! 2. In benchmark mode only (`cargo bench`), [`SAMPLES`] timed iterations after [`WARMUP`],
//!    whose median, 99th percentile and maximum go into `BENCHMARKS.md` between [`BEGIN`] and
//!    [`END`] (wall-clock time), with the load average at the end of the run: on a shared
//!    machine the tail is mostly time spent waiting for a CPU.
//!
//! Run it with `cargo bench -p archc --bench lsp`.

use archc::lsp::Server;
use criterion::Criterion;
use lsp_server::{Message, Notification, Request, RequestId};
use serde_json::json;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Marker that opens the generated section of `BENCHMARKS.md`.
const BEGIN: &str = "<!-- lsp:begin -->";
/// Marker that closes the generated section of `BENCHMARKS.md`.
const END: &str = "<!-- lsp:end -->";
/// Timed iterations for the percentiles.
const SAMPLES: usize = 5_000;
/// Untimed iterations before them.
const WARMUP: usize = 200;
/// The spec, relative to the repository root.
const SPEC: &str = "specs/resnext/resnext101_64x4d.arch";

/// A server with the spec open, and the edit cycle to run on it.
struct Session {
    server: Server,
    uri: String,
    /// Where `param d = 4`'s value is (line, character).
    at: (u32, u32),
    version: i32,
    next_id: i32,
}

impl Session {
    fn new() -> Session {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .canonicalize()
            .expect("the repository root");
        let path = root.join(SPEC);
        let text = std::fs::read_to_string(&path).expect("the spec");
        let uri = format!("file://{}", path.display());
        let (line, l) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains("param d = "))
            .expect("a `param d` line");
        let at = (line as u32, (l.find("= ").expect("=") + 2) as u32);
        let mut server = Server::new();
        server.handle(Message::Request(Request::new(
            RequestId::from(0),
            "initialize".into(),
            json!({ "capabilities": {} }),
        )));
        let open = server.handle(Message::Notification(Notification::new(
            "textDocument/didOpen".into(),
            json!({ "textDocument": { "uri": uri, "languageId": "arch", "version": 1, "text": text } }),
        )));
        assert_no_diagnostics(&open.send);
        Session {
            server,
            uri,
            at,
            version: 1,
            next_id: 1,
        }
    }

    /// Changes `d` (4 → 5 → 4 ...), then asks for a hover on it and the inlay hints.
    fn cycle(&mut self) -> usize {
        self.version += 1;
        let value = if self.version % 2 == 0 { "5" } else { "4" };
        let (line, ch) = self.at;
        let out = self.server.handle(Message::Notification(Notification::new(
            "textDocument/didChange".into(),
            json!({
                "textDocument": { "uri": self.uri, "version": self.version },
                "contentChanges": [{ "range": {
                    "start": { "line": line, "character": ch },
                    "end": { "line": line, "character": ch + 1 } }, "text": value }],
            }),
        )));
        let mut sent = out.send.len();
        for (method, params) in [
            (
                "textDocument/hover",
                json!({ "textDocument": { "uri": self.uri }, "position": { "line": line, "character": ch } }),
            ),
            (
                "textDocument/inlayHint",
                json!({ "textDocument": { "uri": self.uri }, "range": {
                    "start": { "line": 0, "character": 0 }, "end": { "line": 999, "character": 0 } } }),
            ),
        ] {
            self.next_id += 1;
            let out = self.server.handle(Message::Request(Request::new(
                RequestId::from(self.next_id),
                method.into(),
                params,
            )));
            sent += out.send.len();
        }
        sent
    }
}

fn assert_no_diagnostics(sent: &[Message]) {
    let Some(Message::Notification(n)) = sent.first() else {
        panic!("no diagnostics published");
    };
    assert_eq!(n.params["diagnostics"], json!([]), "{}", n.params);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut session = Session::new();
    criterion.bench_function("lsp/change_hover_inlay/resnext101_64x4d", |b| {
        b.iter(|| black_box(session.cycle()))
    });
    criterion.final_summary();
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut session = Session::new();
    for _ in 0..WARMUP {
        session.cycle();
    }
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        black_box(session.cycle());
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let row = |what: &str, t: &[Duration]| {
        format!(
            "| {what} | {} | {} | {} | {} |",
            fmt(percentile(t, 0.5)),
            fmt(percentile(t, 0.99)),
            fmt(t[t.len() - 1]),
            t.len()
        )
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rows = [row("wall clock", &times)];
    for r in &rows {
        println!("{r}");
    }
    let table = format!(
        "{BEGIN}\n`{SPEC}`, one edit cycle (didChange + hover + inlayHint):\n\n| measure | median | p99 | max | samples |\n|---|--:|--:|--:|--:|\n{}\n\nLoad average {load} on {cores} cores during the run.\n{END}",
        rows.join("\n")
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let Ok(old) = std::fs::read_to_string(&file) else {
        return;
    };
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{table}{}", &old[..b], &old[e + END.len()..]),
        _ => return,
    };
    if let Err(e) = std::fs::write(&file, new) {
        eprintln!("cannot update BENCHMARKS.md: {e}");
    }
}
