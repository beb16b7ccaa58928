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

echo "== fuzz (bounded: each decoder of network input for ${FUZZ_SECONDS:-20} s)"
# Short runs from the seeds, to catch a regression; the long runs are in proto/fuzz-*/README.md.
# One target dir for both fuzz workspaces, so that their shared dependencies build once.
fuzz_corpus=$(mktemp -d)
for spec in fuzz-bgp:bgp_frame:seeds:4096 fuzz-l2:arp:seeds/arp:512 fuzz-l2:ndp:seeds/ndp:512 \
  fuzz-bfd:bfd_packet:seeds:512; do
  IFS=: read -r dir target seeds max_len <<<"$spec"
  mkdir -p "$fuzz_corpus/$target"
  (cd proto && cargo +nightly fuzz run --fuzz-dir "$dir" --target-dir ../target/fuzz "$target" \
    "$fuzz_corpus/$target" "$dir/$seeds" -- -max_total_time="${FUZZ_SECONDS:-20}" -max_len="$max_len")
done
rm -rf "$fuzz_corpus"
