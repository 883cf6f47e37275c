#!/bin/sh
# Regenerates tracemerge.bpf.o from tracemerge.bpf.c, reproducibly:
# the same clang version gives the same bytes on any machine and in any
# directory (no debug info, so no paths; no BTF).
#
#   probes/ebpf/bpf/build.sh          rebuild the committed object
#   probes/ebpf/bpf/build.sh --check  fail if the committed object differs
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang-19}"
want="19."
version="$("$CLANG" --version | sed -n 's/.*clang version \([0-9.]*\).*/\1/p' | head -n1)"
case "$version" in
    "$want"*) ;;
    *) echo "build.sh: need clang $want* (the committed object was built with it), found '$version' from $CLANG" >&2; exit 2 ;;
esac
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$CLANG" -target bpf -O2 -mcpu=v3 -Wall -Werror -fno-ident -nostdinc -c tracemerge.bpf.c -o "$out"
if [ "${1:-}" = "--check" ]; then
    if cmp -s "$out" tracemerge.bpf.o; then
        echo "tracemerge.bpf.o matches tracemerge.bpf.c"
    else
        echo "tracemerge.bpf.o is stale: run probes/ebpf/bpf/build.sh and commit the result" >&2
        exit 1
    fi
else
    cp "$out" tracemerge.bpf.o
    echo "wrote $(pwd)/tracemerge.bpf.o"
fi
