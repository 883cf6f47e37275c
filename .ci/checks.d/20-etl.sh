#!/usr/bin/env bash
# ETL decoder (sources/etl) and live ETW collector (probes/etw): the CI steps
# the workspace's `cargo test`/`cargo clippy` do not cover. (Their tests, with
# the real traces of ../shared/data/etw required, already ran there under
# TRACEMERGE_REQUIRE_ALL=1.)
# - the Windows collector type-checked on Linux (feature `typecheck`)
# - a brief libFuzzer run of the decoder (cargo-fuzz target in sources/etl/fuzz)
set -euo pipefail
cd "$(dirname "$0")/../.."

export TRACEMERGE_REQUIRE_ALL="${TRACEMERGE_REQUIRE_ALL:-1}"

echo "== etl: the Windows collector type-checked"
cargo clippy -p tracemerge-etw --features typecheck --all-targets -- -D warnings

echo "== etl: fuzz the decoder for ${ETL_FUZZ_SECONDS:-30}s"
# What `cargo fuzz build` does, without needing cargo-fuzz installed: build
# with SanitizerCoverage (nightly flags through RUSTC_BOOTSTRAP) for the host
# target, in a target dir of its own so the main build is not invalidated.
host="$(rustc -vV | sed -n 's/^host: //p')"
# Shared with 25-fuzz-parsers.sh (same flags).
fuzz_target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
(
  cd sources/etl/fuzz
  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$fuzz_target_dir" \
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions" \
    cargo build --release --target "$host" --bin decode
)
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
# Seeds: the small shipped traces, read from ../shared (copied to a temp corpus only).
for f in ../shared/data/etw/perfview-SelfDescribingSingleEvent.etl ../shared/data/etw/airbus-lxcore_kernel.etl; do
  if [ -f "$f" ]; then cp "$f" "$corpus/"; fi
done
(cd "$corpus" && "$fuzz_target_dir/$host/release/decode" "$corpus" \
  -max_total_time="${ETL_FUZZ_SECONDS:-30}" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12)
echo "etl: fuzz run finished without a crash"
