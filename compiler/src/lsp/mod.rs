//! The language server behind `archc lsp`: the compiler's answers in an editor, over stdio.
//!
//! A synchronous loop, as rust-analyzer's `lsp-server` examples: read one message, answer it,
//! repeat. Every change re-runs the whole pipeline on the document (parse, imports, expansion,
//! lowering, costs), which takes well under a millisecond on the largest shipped spec (see
//! `benches/lsp.rs`), so nothing is cached between versions and nothing runs in the background.
//!
//! It offers diagnostics on open and change (every error the CLI gives, with related locations
//! and help; broken budgets as warnings at the budget line), hover (resolved values, output
//! shapes, params and multiply-adds), inlay hints (each stage's output and cost, each budget
//! line's figure), go to definition, document symbols, completion and formatting (the
//! [`crate::syntax::fmt`] layout).
//!
//! **Architecture invariant:** this module uses the core modules only (syntax, expansion, graph,
//! costs, the report's descriptions); never `tools/`, the CLI or plotting.
//!
//! The transport reads frames itself rather than with `lsp_server::Connection::stdio`, whose
//! reader thread stops at the first message that is not JSON: here a broken message gets a
//! JSON-RPC error (`-32700` parse error, `-32600` invalid request) and the server reads on.

mod analysis;
pub mod text;

pub use analysis::Analysis;

use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types as lsp;
use lsp_types::Url;
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};

/// The largest message the server reads (a spec is a few kilobytes).
const MAX_MESSAGE: usize = 64 << 20;

/// An open document.
#[derive(Debug)]
pub struct Document {
    /// The version the client gave.
    pub version: i32,
    /// The analysis of that version.
    pub analysis: Analysis,
}

/// The server's state: open documents and where the session is in its life cycle.
#[derive(Debug, Default)]
pub struct Server {
    docs: HashMap<Url, Document>,
    initialized: bool,
    shutdown: bool,
}

/// What handling one message gives.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages to send, in order.
    pub send: Vec<Message>,
    /// `Some(code)` when the client said `exit`: 0 after a `shutdown`, 1 otherwise.
    pub exit: Option<i32>,
}

/// What the transport read.
#[derive(Debug)]
pub enum Incoming {
    /// A well-formed message.
    Message(Message),
    /// A frame whose body is not a JSON-RPC message: the error to answer with, and the request
    /// id if one could be read.
    Broken {
        /// `-32700` (not JSON) or `-32600` (JSON, but not a request, response or notification).
        code: ErrorCode,
        /// What was wrong.
        message: String,
        /// The `id` of the broken request, if it had a readable one.
        id: Option<serde_json::Value>,
    },
}

/// Serves the protocol on `input` and `output` until `exit` or the end of the input; returns the
/// process exit code (0 after `shutdown` then `exit`, 1 otherwise).
pub fn serve(mut input: impl BufRead, mut output: impl Write) -> io::Result<i32> {
    let mut server = Server::default();
    while let Some(incoming) = read(&mut input)? {
        match incoming {
            Incoming::Message(msg) => {
                let out = server.handle(msg);
                for m in out.send {
                    m.write(&mut output)?;
                }
                if let Some(code) = out.exit {
                    return Ok(code);
                }
            }
            Incoming::Broken { code, message, id } => {
                let body = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": id.unwrap_or(serde_json::Value::Null),
                    "error": { "code": code as i32, "message": message },
                });
                let text = body.to_string();
                write!(output, "Content-Length: {}\r\n\r\n{text}", text.len())?;
                output.flush()?;
            }
        }
    }
    Ok(1)
}

/// Reads one frame (`Content-Length` header, blank line, body). `None` at the end of the input.
pub fn read(input: &mut impl BufRead) -> io::Result<Option<Incoming>> {
    let broken = |message: String| Incoming::Broken {
        code: ErrorCode::ParseError,
        message,
        id: None,
    };
    let mut length: Option<Result<usize, String>> = None;
    let mut line = String::new();
    let mut saw_header = false;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            if length.is_some() {
                break;
            }
            if saw_header {
                return Ok(Some(broken("no Content-Length header".into())));
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length `{}`", value.trim())),
            );
        }
    }
    let length = match length {
        Some(Ok(n)) if n <= MAX_MESSAGE => n,
        Some(Ok(n)) => {
            io::copy(&mut input.take(n as u64), &mut io::sink())?;
            return Ok(Some(broken(format!(
                "message of {n} bytes is larger than {MAX_MESSAGE}"
            ))));
        }
        Some(Err(e)) => return Ok(Some(broken(e))),
        None => return Ok(None),
    };
    let mut body = vec![0; length];
    input.read_exact(&mut body)?;
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return Ok(Some(broken(format!("the message is not JSON: {e}")))),
    };
    let id = value
        .get("id")
        .filter(|id| id.is_number() || id.is_string())
        .cloned();
    match serde_json::from_value::<Message>(value) {
        Ok(m) => Ok(Some(Incoming::Message(m))),
        Err(e) => Ok(Some(Incoming::Broken {
            code: ErrorCode::InvalidRequest,
            message: format!("not a JSON-RPC request, response or notification: {e}"),
            id,
        })),
    }
}

impl Server {
    /// A server before `initialize`.
    pub fn new() -> Server {
        Server::default()
    }

    /// The open document at `uri`.
    pub fn document(&self, uri: &Url) -> Option<&Document> {
        self.docs.get(uri)
    }

    /// Handles one message.
    pub fn handle(&mut self, msg: Message) -> Outcome {
        match msg {
            Message::Request(req) => Outcome {
                send: vec![Message::Response(self.request(req))],
                exit: None,
            },
            Message::Notification(n) => self.notification(n),
            Message::Response(_) => Outcome::default(),
        }
    }

    fn request(&mut self, req: Request) -> Response {
        let err = |id: RequestId, code: ErrorCode, msg: &str| {
            Response::new_err(id, code as i32, msg.to_string())
        };
        if req.method == lsp::request::Initialize::METHOD {
            if self.initialized {
                return err(req.id, ErrorCode::InvalidRequest, "already initialized");
            }
            self.initialized = true;
            return Response::new_ok(req.id, capabilities());
        }
        if !self.initialized {
            return err(req.id, ErrorCode::ServerNotInitialized, "not initialized");
        }
        if self.shutdown {
            return err(
                req.id,
                ErrorCode::InvalidRequest,
                "the server is shutting down",
            );
        }
        let id = req.id.clone();
        let result = match req.method.as_str() {
            lsp::request::Shutdown::METHOD => {
                self.shutdown = true;
                Ok(serde_json::Value::Null)
            }
            lsp::request::HoverRequest::METHOD => self.with::<lsp::HoverParams, _>(req, |s, p| {
                let tp = p.text_document_position_params;
                s.doc(&tp.text_document.uri)
                    .and_then(|a| a.hover(tp.position))
            }),
            lsp::request::InlayHintRequest::METHOD => self
                .with::<lsp::InlayHintParams, _>(req, |s, p| {
                    s.doc(&p.text_document.uri).map(|a| a.inlay_hints(p.range))
                }),
            lsp::request::GotoDefinition::METHOD => {
                self.with::<lsp::GotoDefinitionParams, _>(req, |s, p| {
                    let tp = p.text_document_position_params;
                    s.doc(&tp.text_document.uri)
                        .and_then(|a| a.definition(tp.position))
                        .map(lsp::GotoDefinitionResponse::Scalar)
                })
            }
            lsp::request::DocumentSymbolRequest::METHOD => self
                .with::<lsp::DocumentSymbolParams, _>(req, |s, p| {
                    s.doc(&p.text_document.uri)
                        .map(|a| lsp::DocumentSymbolResponse::Nested(a.symbols()))
                }),
            lsp::request::Completion::METHOD => {
                self.with::<lsp::CompletionParams, _>(req, |s, p| {
                    s.doc(&p.text_document_position.text_document.uri)
                        .map(|a| lsp::CompletionResponse::Array(a.completion()))
                })
            }
            lsp::request::Formatting::METHOD => {
                match serde_json::from_value::<lsp::DocumentFormattingParams>(req.params) {
                    Err(e) => Err((ErrorCode::InvalidParams, e.to_string())),
                    Ok(p) => match self.doc(&p.text_document.uri) {
                        None => Ok(serde_json::Value::Null),
                        Some(a) => format_edits(a)
                            .map(|edits| serde_json::to_value(edits).unwrap_or_default())
                            .map_err(|m| (ErrorCode::RequestFailed, m)),
                    },
                }
            }
            m => Err((
                ErrorCode::MethodNotFound,
                format!("archc lsp does not handle `{m}`"),
            )),
        };
        match result {
            Ok(v) => Response::new_ok(id, v),
            Err((code, message)) => Response::new_err(id, code as i32, message),
        }
    }

    /// Decodes a request's parameters and answers with `f`'s value (`null` for `None`).
    fn with<P, R>(
        &self,
        req: Request,
        f: impl FnOnce(&Server, P) -> Option<R>,
    ) -> Result<serde_json::Value, (ErrorCode, String)>
    where
        P: serde::de::DeserializeOwned,
        R: serde::Serialize,
    {
        let params: P = serde_json::from_value(req.params)
            .map_err(|e| (ErrorCode::InvalidParams, format!("invalid parameters: {e}")))?;
        Ok(f(self, params)
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or(serde_json::Value::Null))
    }

    fn doc(&self, uri: &Url) -> Option<&Analysis> {
        self.docs.get(uri).map(|d| &d.analysis)
    }

    fn notification(&mut self, n: Notification) -> Outcome {
        if n.method == lsp::notification::Exit::METHOD {
            return Outcome {
                send: Vec::new(),
                exit: Some(if self.shutdown { 0 } else { 1 }),
            };
        }
        if !self.initialized || self.shutdown {
            return Outcome::default();
        }
        let publish = match n.method.as_str() {
            lsp::notification::DidOpenTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp::DidOpenTextDocumentParams>(n.params.clone())
                else {
                    return Outcome::default();
                };
                let doc = p.text_document;
                Some(self.update(doc.uri, doc.version, doc.text))
            }
            lsp::notification::DidChangeTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp::DidChangeTextDocumentParams>(n.params.clone())
                else {
                    return Outcome::default();
                };
                let uri = p.text_document.uri;
                let Some(old) = self.docs.get(&uri) else {
                    return Outcome::default();
                };
                let text = apply_changes(&old.analysis, p.content_changes);
                Some(self.update(uri, p.text_document.version, text))
            }
            lsp::notification::DidCloseTextDocument::METHOD => {
                let Ok(p) =
                    serde_json::from_value::<lsp::DidCloseTextDocumentParams>(n.params.clone())
                else {
                    return Outcome::default();
                };
                self.docs.remove(&p.text_document.uri);
                Some(publish(p.text_document.uri, Vec::new(), None))
            }
            // A spec saved or changed on disk may be imported by the open ones: analyse them
            // all again (imports are read from disk).
            lsp::notification::DidSaveTextDocument::METHOD
            | lsp::notification::DidChangeWatchedFiles::METHOD => {
                return Outcome {
                    send: self.refresh(),
                    exit: None,
                };
            }
            _ => None,
        };
        Outcome {
            send: publish.into_iter().collect(),
            exit: None,
        }
    }

    /// Analyses every open document again; returns their diagnostics, in address order.
    fn refresh(&mut self) -> Vec<Message> {
        let mut uris: Vec<Url> = self.docs.keys().cloned().collect();
        uris.sort();
        uris.into_iter()
            .filter_map(|uri| {
                let doc = self.docs.get(&uri)?;
                let (version, text) = (doc.version, doc.analysis.text.clone());
                Some(self.update(uri, version, text))
            })
            .collect()
    }

    /// Re-analyses a document; returns the diagnostics to publish.
    fn update(&mut self, uri: Url, version: i32, text: String) -> Message {
        let previous = self.docs.remove(&uri);
        let analysis = Analysis::new(uri.clone(), text, previous.as_ref().map(|d| &d.analysis));
        let diagnostics = analysis.diagnostics.clone();
        self.docs
            .insert(uri.clone(), Document { version, analysis });
        publish(uri, diagnostics, Some(version))
    }
}

fn publish(uri: Url, diagnostics: Vec<lsp::Diagnostic>, version: Option<i32>) -> Message {
    Message::Notification(Notification::new(
        lsp::notification::PublishDiagnostics::METHOD.to_string(),
        lsp::PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        },
    ))
}

/// The document's text after the client's changes (whole-text or ranged).
fn apply_changes(a: &Analysis, changes: Vec<lsp::TextDocumentContentChangeEvent>) -> String {
    let mut text = a.text.clone();
    for ch in changes {
        match ch.range {
            None => text = ch.text,
            Some(r) => {
                let index = text::LineIndex::new(&text);
                let start = index.offset(&text, r.start);
                let end = index.offset(&text, r.end).max(start);
                text.replace_range(start..end, &ch.text);
            }
        }
    }
    text
}

/// One edit that replaces the whole document with its formatted text (none if it is formatted).
fn format_edits(a: &Analysis) -> Result<Vec<lsp::TextEdit>, String> {
    match crate::syntax::fmt::format(crate::FileId(0), &a.text) {
        Ok(out) if out == a.text => Ok(Vec::new()),
        Ok(out) => Ok(vec![lsp::TextEdit {
            range: a.index.range(&a.text, 0, a.text.len()),
            new_text: out,
        }]),
        Err(d) => {
            let place = d.primary.as_ref().map(|(s, _)| {
                let p = a.index.position(&a.text, s.start as usize);
                format!(" (line {}, character {})", p.line + 1, p.character + 1)
            });
            Err(format!(
                "cannot format: {}{}",
                d.message,
                place.unwrap_or_default()
            ))
        }
    }
}

/// What the server offers.
pub fn capabilities() -> lsp::InitializeResult {
    lsp::InitializeResult {
        capabilities: lsp::ServerCapabilities {
            position_encoding: Some(lsp::PositionEncodingKind::UTF16),
            text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(
                lsp::TextDocumentSyncKind::INCREMENTAL,
            )),
            hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
            inlay_hint_provider: Some(lsp::OneOf::Left(true)),
            definition_provider: Some(lsp::OneOf::Left(true)),
            document_symbol_provider: Some(lsp::OneOf::Left(true)),
            completion_provider: Some(lsp::CompletionOptions::default()),
            document_formatting_provider: Some(lsp::OneOf::Left(true)),
            ..lsp::ServerCapabilities::default()
        },
        server_info: Some(lsp::ServerInfo {
            name: "archc".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    }
}
