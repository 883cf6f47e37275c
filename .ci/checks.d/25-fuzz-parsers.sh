#!/usr/bin/env bash
# A brief libFuzzer run of every parser of outside data besides the ETL
# decoder (fuzzed by 20-etl.sh), built as that script builds its target:
# - sources/fuzz: the NDJSON stream (`ndjson`), Stella callgraph documents
#   and format detection (`stella_callgraph`), Stella runtime facts, both
#   forms, and RFC 3339 times (`stella_facts`), the replay log (`tmlog`);
# - probes/ebpf/fuzz: the eBPF collector's ELF symbol reader (`elf`).
# Seeds: the sources crate's test inputs and, for ELF, /bin/true and a tiny
# program compiled here; all copied to temporary corpora, nothing written
# to the repository. PARSER_FUZZ_SECONDS (default 8) per target.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${PARSER_FUZZ_SECONDS:-8}"
host="$(rustc -vV | sed -n 's/^host: //p')"
# Shared with 20-etl.sh: same flags, so libFuzzer and the common crates are
# built once.
fuzz_target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
build() {
  (
    cd "$1"
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$fuzz_target_dir" \
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions" \
      cargo build --release --target "$host" --bins
  )
}
echo "== fuzz: build the parser targets"
build sources/fuzz
build probes/ebpf/fuzz

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
data=sources/tests/data
seed() { # seed TARGET FILE...
  local target="$1"
  shift
  mkdir -p "$work/corpus/$target"
  cp "$@" "$work/corpus/$target/"
}
seed ndjson "$data"/*.ndjson
seed stella_callgraph "$data"/callgraph*.json "$data"/runtime_facts_document.json "$data"/stream.ndjson
seed stella_facts "$data"/runtime_facts*
# The tmlog target writes a log of the NDJSON records it is given, then reads it.
seed tmlog "$data"/stream.ndjson "$data"/runtime_facts.ndjson
seed elf /bin/true
if command -v cc >/dev/null; then
  printf '%s\n' 'int leaf(int x) { return x * 3; }' 'int mid(int x) { return leaf(x) + 1; }' \
    'int main(int c, char **v) { (void)v; return mid(c); }' >"$work/seed.c"
  cc -O1 -fno-omit-frame-pointer -o "$work/corpus/elf/small.elf" "$work/seed.c"
fi

for target in ndjson stella_callgraph stella_facts tmlog elf; do
  echo "== fuzz: $target for ${seconds}s"
  mkdir -p "$work/artifacts/$target"
  if ! (cd "$work/artifacts/$target" && "$fuzz_target_dir/$host/release/$target" "$work/corpus/$target" \
      -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$work/$target.log" 2>&1); then
    tail -n 60 "$work/$target.log"
    echo "fuzz: $target found a crash (input above, as hex in the log)" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|Done ' "$work/$target.log" || true
done
echo "fuzz: every parser target ran without a crash"
