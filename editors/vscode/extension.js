// The archc extension: starts `archc lsp` (stdio) for `.arch` files. Highlighting comes from
// syntaxes/arch.tmLanguage.json; everything else (diagnostics, hover, inlay hints, definitions,
// symbols, completion, formatting) from the language server.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  const command = vscode.workspace.getConfiguration("archc").get("path", "archc");
  const run = { command, args: ["lsp"] };
  client = new LanguageClient(
    "archc",
    "archc language server",
    { run, debug: run },
    {
      documentSelector: [{ language: "arch" }],
      synchronize: {
        // Imported specs may change on disk; the server re-reads them on each edit.
        fileEvents: vscode.workspace.createFileSystemWatcher("**/*.arch"),
      },
    },
  );
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("archc.path") && client) {
        await client.stop();
        await activate(context);
      }
    }),
  );
  await client.start();
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
