//! `archc lsp` driven over JSON-RPC like an editor would: the built binary, spawned, on stdio.
//! Results are snapshots (absolute paths shown as `$ROOT`).

mod common;

use common::{R50X, strings};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn uri(rel: &str) -> String {
    format!("file://{}", root().join(rel).display())
}

/// A client of one `archc lsp` process.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: i64,
    /// Notifications received while waiting for a response.
    notes: Vec<Value>,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_archc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("archc lsp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Client {
            child,
            stdin,
            stdout,
            next: 1,
            notes: Vec::new(),
        }
    }

    /// Starts a server and initializes it.
    fn initialized() -> Client {
        let mut c = Client::start();
        c.request("initialize", json!({ "capabilities": {} }));
        c.notify("initialized", json!({}));
        c
    }

    fn raw(&mut self, body: &[u8]) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        self.stdin.write_all(body).unwrap();
        self.stdin.flush().unwrap();
    }

    fn send(&mut self, v: Value) {
        self.raw(v.to_string().as_bytes());
    }

    fn recv(&mut self) -> Value {
        let mut len = 0;
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "server closed"
            );
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.stdout.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// The next response (notifications that come first are kept).
    fn response(&mut self) -> Value {
        loop {
            let v = self.recv();
            if v.get("method").is_some() {
                self.notes.push(v);
            } else {
                return redact(v);
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let r = self.response();
        assert_eq!(r["id"], json!(id), "{r}");
        r
    }

    fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        assert!(r.get("error").is_none(), "{r}");
        r["result"].clone()
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// The next `publishDiagnostics` notification's parameters.
    fn diagnostics(&mut self) -> Value {
        if !self.notes.is_empty() {
            let v = self.notes.remove(0);
            assert_eq!(v["method"], "textDocument/publishDiagnostics");
            return redact(v["params"].clone());
        }
        let v = self.recv();
        assert_eq!(v["method"], "textDocument/publishDiagnostics", "{v}");
        redact(v["params"].clone())
    }

    fn open(&mut self, uri: &str, text: &str) -> Value {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "arch", "version": 1, "text": text } }),
        );
        self.diagnostics()
    }

    /// Opens the repository file `rel`: its URI, its text and the first diagnostics.
    fn open_file(&mut self, rel: &str) -> (String, String, Value) {
        let (u, text) = (uri(rel), read(rel));
        let d = self.open(&u, &text);
        (u, text, d)
    }

    fn at(&mut self, method: &str, uri: &str, pos: (u32, u32)) -> Value {
        self.result(
            method,
            json!({ "textDocument": { "uri": uri }, "position": { "line": pos.0, "character": pos.1 } }),
        )
    }

    /// `method` at each `(needle, shift)` place of `text` (see [`pos`]), in order.
    fn at_each(
        &mut self,
        method: &str,
        uri: &str,
        text: &str,
        places: &[(&str, usize)],
    ) -> Vec<Value> {
        places
            .iter()
            .map(|&(needle, shift)| self.at(method, uri, pos(text, needle, shift)))
            .collect()
    }

    /// Shuts down and exits; returns the exit code.
    fn stop(mut self) -> Option<i32> {
        assert_eq!(self.result("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
        self.child.wait().unwrap().code()
    }
}

/// Absolute paths as `$ROOT`.
fn redact(v: Value) -> Value {
    let root = root().display().to_string();
    serde_json::from_str(&v.to_string().replace(&root, "$ROOT")).unwrap()
}

/// The LSP position (UTF-16) of the first occurrence of `needle` in `text`, plus `shift` chars.
fn pos(text: &str, needle: &str, shift: usize) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in text"));
    let before = &text[..at];
    let line = before.matches('\n').count();
    let col: usize = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .map(char::len_utf16)
        .sum();
    (line as u32, (col + shift) as u32)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap()
}

/// An LSP range from `start` to `end`, each (line, character).
fn range(start: (u32, u32), end: (u32, u32)) -> Value {
    json!({
        "start": { "line": start.0, "character": start.1 },
        "end": { "line": end.0, "character": end.1 },
    })
}

#[test]
fn initialize_then_shutdown_and_exit() {
    let mut c = Client::start();
    let r = c.request("initialize", json!({ "capabilities": {} }));
    insta::assert_json_snapshot!(r);
    c.notify("initialized", json!({}));
    assert_eq!(c.stop(), Some(0));
}

#[test]
fn hover_on_stage_template_parameter_budget_and_stem() {
    let mut c = Client::initialized();
    let (u, text, d) = c.open_file(R50X);
    assert_eq!(d["diagnostics"], json!([]), "{d}");
    let hovers = c.at_each(
        "textDocument/hover",
        &u,
        &text,
        &[
            ("conv3: depth 4", 2),
            ("conv 3x3/stride", 0),
            ("width, groups C", 1),
            ("groups C", 7),
            ("macs <= 4.3G", 0),
            ("conv 7x7/2", 0),
            ("resnext50_32x4d {", 1),
            ("out = 256", 0),
            ("head {", 0),
            ("input 3x224x224", 0),
        ],
    );
    insta::assert_json_snapshot!(hovers);
    // Outside any network, there is nothing to say.
    assert_eq!(c.at("textDocument/hover", &u, (0, 3)), Value::Null);
    assert_eq!(c.stop(), Some(0));
}

#[test]
fn inlay_hints_give_stage_costs_and_budget_figures() {
    let mut c = Client::initialized();
    let (u, text, _) = c.open_file(R50X);
    let mut hints = |start, end| {
        c.result(
            "textDocument/inlayHint",
            json!({ "textDocument": { "uri": u }, "range": range(start, end) }),
        )
    };
    insta::assert_json_snapshot!(hints((0, 0), (99, 0)));
    // A range that holds only the budget block gives only its lines.
    let (l, _) = pos(&text, "budget {", 0);
    let some = hints((l, 0), (l + 3, 0));
    assert_eq!(some.as_array().unwrap().len(), 2, "{some}");
    c.stop();
}

#[test]
fn changes_give_diagnostics_with_spans_related_places_and_help() {
    let mut c = Client::initialized();
    let (u, text, _) = c.open_file(R50X);
    let change = |c: &mut Client, version: i32, at: ((u32, u32), (u32, u32)), new: &str| {
        c.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": u, "version": version },
                "contentChanges": [{ "range": range(at.0, at.1), "text": new }],
            }),
        );
        c.diagnostics()
    };
    // d = 8: both budgets break (warnings at the budget lines).
    let at = pos(&text, "param d = 4", 10);
    let over = change(&mut c, 2, (at, (at.0, at.1 + 1)), "8");
    // Two edits in one change: d back to 4, and a group count that does not divide the width:
    // an error in the template, related to the stage line that instantiated it.
    let g = pos(&text, "groups C", 7);
    c.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": u, "version": 3 },
            "contentChanges": [
                { "range": range(at, (at.0, at.1 + 1)), "text": "4" },
                { "range": range(g, (g.0, g.1 + 1)), "text": "5" },
            ],
        }),
    );
    let groups = c.diagnostics();
    // A syntax error.
    let syntax = change(&mut c, 4, (at, (at.0, at.1 + 1)), "");
    // Fixed again: no diagnostics.
    let fixed = change(&mut c, 5, (g, (g.0, g.1 + 1)), "C");
    assert_eq!(fixed["diagnostics"].as_array().unwrap().len(), 1, "{fixed}");
    let fixed = change(&mut c, 6, (at, at), "4");
    assert_eq!(fixed["diagnostics"], json!([]), "{fixed}");
    insta::assert_json_snapshot!([over, groups, syntax]);
    // Hover works on the fixed text, after ranged edits.
    let h = c.at("textDocument/hover", &u, pos(&text, "param d = 4", 6));
    assert_eq!(
        h["contents"]["value"],
        "**d** = 4\n\nparameter of network `resnext50_32x4d`"
    );
    c.stop();
}

#[test]
fn diagnostics_of_imports_and_utf16_ranges() {
    let mut c = Client::initialized();
    let u = uri("specs/scratch/unsaved.arch");
    // `𝔸` is two UTF-16 units: the range ends at character 20, not 19 (chars) or 23 (bytes).
    let d = c.open(&u, "import \"../𝔸×.arch\"\n");
    insta::assert_json_snapshot!(d);
    c.stop();
}

#[test]
fn a_saved_import_is_read_again() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lsp_saved_import");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = "network base {\n  input 3x8x8\n  classes 2\n  param C = 2\n  stem {\n    conv 3x3 -> 8\n  }\n  block b(w) {\n    conv 3x3 -> w, groups C\n  }\n  stages b(w = 8) {\n    s1: depth 1\n  }\n  head {\n    avgpool\n    fc -> classes\n  }\n}\n";
    std::fs::write(dir.join("base.arch"), base).unwrap();
    let child = "import \"base.arch\"\n\nnetwork child extends base {\n  param C = 4\n}\n";
    let mut c = Client::initialized();
    let u = format!("file://{}", dir.join("child.arch").display());
    let d = c.open(&u, child);
    assert_eq!(d["diagnostics"], json!([]), "{d}");
    // The base now breaks the child (8 channels in 3 groups); saving it refreshes the child.
    std::fs::write(dir.join("base.arch"), base.replace("w = 8", "w = 9")).unwrap();
    c.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": format!("file://{}", dir.join("base.arch").display()), "type": 2 }] }),
    );
    let d = c.diagnostics();
    let d = &d["diagnostics"][0];
    assert_eq!(d["code"], "archc::shape::groups", "{d}");
    // The error is in the imported file: shown at the import line, with its place in the base.
    assert_eq!(
        d["range"],
        json!({ "start": { "line": 0, "character": 7 }, "end": { "line": 0, "character": 18 } })
    );
    let related = &d["relatedInformation"][0]["location"];
    let base_uri = format!("file://{}", dir.join("base.arch").display());
    assert_eq!(related["uri"], redact(json!(base_uri)));
    assert_eq!(
        related["range"]["start"],
        json!({ "line": 8, "character": 4 })
    );
    c.stop();
}

#[test]
fn definitions_of_templates_parameters_files_and_bases() {
    let mut c = Client::initialized();
    let (u, text, _) = c.open_file(R50X);
    let mut defs = c.at_each(
        "textDocument/definition",
        &u,
        &text,
        &[
            ("bottleneck(width = C", 3),
            ("groups C", 7),
            ("-> width, groups", 4),
            ("width = C * d", 0),
            ("C * d", 0),
            ("fc -> classes", 8),
        ],
    );
    let (u, text, _) = c.open_file("specs/resnext/resnext101_64x4d.arch");
    defs.extend(c.at_each(
        "textDocument/definition",
        &u,
        &text,
        &[
            ("extends resnext101_32x8d", 10),
            ("resnext101_32x8d.arch", 2),
        ],
    ));
    insta::assert_json_snapshot!(defs);
    c.stop();
}

#[test]
fn formatting_symbols_and_completion() {
    let mut c = Client::initialized();
    let u = uri("specs/scratch/messy.arch");
    let text = "network n { input 3x8x8 // in\nclasses 2 param C=2\nstem{conv 3x3->8}\nblock b(w){conv 1x1->w}\nstages b(w=C*4){s1: depth 1}\nhead{avgpool;fc->classes}}";
    c.open(&u, text);
    let opts = json!({ "tabSize": 2, "insertSpaces": true });
    let edits = c.result(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": u }, "options": opts }),
    );
    let symbols = c.result(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": u } }),
    );
    insta::assert_json_snapshot!([edits, symbols]);
    let items = c.at("textDocument/completion", &u, (1, 0));
    insta::assert_snapshot!(strings(&items, "label").join(" "));
    // A file that does not parse is not formatted: the request fails and says why.
    c.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": u, "version": 2 }, "contentChanges": [{ "text": "network n {" }] }),
    );
    c.diagnostics();
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": u }, "options": opts }),
    );
    insta::assert_json_snapshot!(r);
    // Completion still offers the names of the last version that parsed.
    let items = c.at("textDocument/completion", &u, (0, 0));
    assert!(
        items.as_array().unwrap().iter().any(|i| i["label"] == "b"),
        "{items}"
    );
    c.stop();
}

#[test]
fn broken_messages_and_unknown_methods_get_errors_and_the_server_goes_on() {
    let mut c = Client::start();
    let early = c.request("textDocument/hover", json!({}));
    c.request("initialize", json!({ "capabilities": {} }));
    c.raw(b"{ this is not json");
    let not_json = c.response();
    c.raw(br#"{"jsonrpc": "2.0", "id": 7}"#);
    let not_message = c.response();
    let unknown = c.request("textDocument/teleport", json!({}));
    let bad_params = c.request("textDocument/hover", json!({ "textDocument": 3 }));
    let again = c.request("initialize", json!({ "capabilities": {} }));
    insta::assert_json_snapshot!([early, not_json, not_message, unknown, bad_params, again]);
    // Still serving.
    let u = uri(R50X);
    c.open(&u, &read(R50X));
    assert!(
        c.at("textDocument/hover", &u, (3, 9))
            .get("contents")
            .is_some()
    );
    assert_eq!(c.stop(), Some(0));
}

#[test]
fn exit_without_shutdown_is_status_1() {
    let mut c = Client::initialized();
    c.notify("exit", Value::Null);
    assert_eq!(c.child.wait().unwrap().code(), Some(1));
}
