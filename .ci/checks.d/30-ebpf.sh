#!/usr/bin/env bash
# eBPF collector (probes/ebpf): the committed BPF object must be exactly what
# its C source compiles to. clang is needed only here, never for `cargo build`.
# (The probe tests themselves run with the workspace's `cargo test`, as root;
# TRACEMERGE_REQUIRE_ALL=1 turns their skips into failures.)
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v clang-19 >/dev/null 2>&1; then
    echo "30-ebpf: installing clang-19 (Debian) to check the BPF object"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends clang-19 >/dev/null
fi
# Symbol names of libc's local functions (libc.so.6!msort_with_tmp…) come
# from its separate debug file; without it such callers read libc.so.6+0x….
if [ ! -d /usr/lib/debug/.build-id ] || ! dpkg -s libc6-dbg >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends libc6-dbg >/dev/null 2>&1 || true
fi

probes/ebpf/bpf/build.sh --check
