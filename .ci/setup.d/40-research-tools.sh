#!/usr/bin/env bash
# Tools the research-mode tests (cli/tests/research.rs) run to make real
# static call graphs: gcc + binutils (gcc -fcallgraph-info, nm), clang-19
# and opt-19 (LLVM dot/print-callgraph), Go and its callgraph tool, PyCG.
# Runs before `cargo test`, which fails under TRACEMERGE_REQUIRE_ALL=1 when
# one is missing. Installs only what is absent (a no-op on a ready machine).
set -euo pipefail

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v nm >/dev/null 2>&1 || missing+=(binutils)
command -v clang-19 >/dev/null 2>&1 || missing+=(clang-19)
command -v opt-19 >/dev/null 2>&1 || [ -x /usr/lib/llvm-19/bin/opt ] || missing+=(llvm-19)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v callgraph >/dev/null 2>&1 || missing+=(golang-golang-x-tools)
if [ ${#missing[@]} -gt 0 ]; then
    echo "research tools: installing ${missing[*]} (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# PyCG 0.0.8 on PyPI cannot be imported (its package directory is
# `PyCG`, its code imports `pycg`); 0.0.7 works.
if ! python3 -m pycg --help >/dev/null 2>&1; then
    echo "research tools: installing PyCG 0.0.7 (pip)"
    python3 -m pip install -q "pycg==0.0.7"
fi
