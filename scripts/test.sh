#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting, lints, licences, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== dependency licences"
python3 scripts/check-licenses.py

echo "== tests"
cargo nextest run --workspace --all-targets --locked --no-fail-fast
