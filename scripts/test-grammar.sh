#!/usr/bin/env bash
# Tests the VS Code extension's TextMate grammar (editors/vscode/syntaxes/arch.tmLanguage.json)
# with vscode-tmgrammar-test from npm (versions pinned by editors/vscode/package-lock.json):
# 1. editors/vscode/tests/syntax.arch: scope assertions for every kind of token;
# 2. every shipped spec (specs/**/*.arch) against its token snapshot in
#    editors/vscode/tests/snap/ (UPDATE=1 scripts/test-grammar.sh rewrites the snapshots);
# 3. every shipped spec: each token that is not whitespace has a scope, none is invalid.
# Needs Node 20 and npm; installs into editors/vscode/node_modules (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cd editors/vscode

echo "== grammar: npm ci (editors/vscode)"
npm ci --no-audit --no-fund --loglevel=error

echo "== grammar: scope assertions (tests/syntax.arch)"
npx --no-install vscode-tmgrammar-test -g syntaxes/arch.tmLanguage.json "tests/*.arch"

echo "== grammar: snapshots of the shipped specs"
find tests/snap -name '*.arch' -delete 2>/dev/null || true
(cd "$repo/specs" && find . -name '*.arch') | while read -r rel; do
  mkdir -p "tests/snap/$(dirname "$rel")"
  cp "$repo/specs/$rel" "tests/snap/$rel"
done
update=()
if [[ "${UPDATE:-}" == 1 ]]; then update=(--updateSnapshot); fi
npx --no-install vscode-tmgrammar-snap -g syntaxes/arch.tmLanguage.json -s source.arch \
  "${update[@]}" "tests/snap/**/*.arch"

echo "== grammar: every token of the shipped specs has a scope"
node tests/coverage.js
