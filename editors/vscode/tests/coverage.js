// Every shipped spec (specs/**/*.arch), tokenized with the grammar: each character that is not
// whitespace must get a scope of its own (not just `source.arch`), and no token may be marked
// invalid. Exits 1 and lists the places otherwise.
"use strict";

const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const root = path.resolve(__dirname, "../../..");
const grammarPath = path.join(__dirname, "../syntaxes/arch.tmLanguage.json");

function specs(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return specs(p);
    return e.name.endsWith(".arch") ? [p] : [];
  });
}

async function main() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (s) => new oniguruma.OnigScanner(s),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () =>
      vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.arch");
  const files = specs(path.join(root, "specs")).sort();
  const problems = [];
  for (const file of files) {
    const rel = path.relative(root, file);
    let state = vsctm.INITIAL;
    fs.readFileSync(file, "utf8")
      .split(/\r\n|\r|\n/)
      .forEach((line, i) => {
        const r = grammar.tokenizeLine(line, state);
        for (const t of r.tokens) {
          const text = line.slice(t.startIndex, t.endIndex);
          const where = `${rel}:${i + 1}:${t.startIndex + 1}`;
          if (t.scopes.length === 1 && text.trim() !== "") {
            problems.push(`${where}: \`${text}\` has no scope`);
          }
          if (t.scopes.some((s) => s.startsWith("invalid"))) {
            problems.push(`${where}: \`${text}\` is marked invalid`);
          }
        }
        state = r.ruleStack;
      });
  }
  if (files.length === 0) problems.push("no shipped specs found under specs/");
  if (problems.length > 0) {
    console.error(problems.join("\n"));
    process.exit(1);
  }
  console.log(`✓ ${files.length} shipped specs: every token has a scope`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
