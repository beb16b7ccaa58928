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
# Default targets: libraries, binaries and test suites (bench binaries print figures and are
# built by clippy above, but are not test harnesses).
cargo nextest run --workspace --locked --no-fail-fast
