#!/usr/bin/env bash
# The main job, for now: build FerroLB and validate the shipped example configurations with the
# same rules the admission webhook applies. (The lab demo grows with the controller and speaker.)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "run: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
cargo build --release --locked -p ferrolb-controller
./target/release/ferrolb-controller validate examples/
