#!/bin/bash
# ebound_bench.sh: the error-bounded mode (coll_qtopo_error_bound) next to the fixed widths,
# per data kind, on the emulated cluster (test/cluster: 4 nodes x 2 ranks x 2 rails at
# QTOPO_RATE Mbit/s each). Needs root (network namespaces); brings the cluster up and takes
# it down. On a shared host run it under `flock /tmp/qtopo-testbed.lock`.
#
#   examples/ebound_bench.sh            (after make)
#   examples/ebound_bench.sh --table F  (print the table again from a kept CSV file)
#
# For every data kind (qtopo_bench --data) it runs qtopo_bench once per setting: the fixed
# widths QTOPO_BITS and the absolute bounds QTOPO_BOUNDS, qtopo (auto algorithm: split-rail
# here) against Open MPI's default in the same run. Printed per kind, setting and size:
# qtopo's time, wire bytes per rank (node phase included), the compression of the bytes that
# cross the network (the rail phase: fp32 bytes 2(M-1)/M * size/L over the encoded ones,
# the node phase's 2(L-1)/L * size being taken off the wire count), the largest error of
# any element against the exact double sum, and the speedup over Open MPI.
#
# Environment: QTOPO_RATE (default 500), QTOPO_SIZES (default 16M), QTOPO_ROUNDS (2),
# QTOPO_DATA (default "gauss student smooth sparse"), QTOPO_BITS ("32 16 8 4"),
# QTOPO_BOUNDS ("1e-2 1e-3 1e-4"), QTOPO_COMPONENT_DIR (a directory searched before the
# installed components, e.g. the build's .libs), QTOPO_KEEP (directory for the CSV rows).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
RATE=${QTOPO_RATE:-500}
SIZES=${QTOPO_SIZES:-16M}
ROUNDS=${QTOPO_ROUNDS:-2}
DATA=${QTOPO_DATA:-gauss student smooth sparse}
BITS=${QTOPO_BITS:-32 16 8 4}
BOUNDS=${QTOPO_BOUNDS:-1e-2 1e-3 1e-4}
NODES=4
RAILS=2
PPN=2
ROWS=$(mktemp /tmp/qtopo-ebound-bench.XXXXXX)

cleanup() {
    "$CLUSTER" down >/dev/null 2>&1 || true
    rm -f "$ROWS"
}

# One run; appends "data,setting,<qtopo_bench csv row>" to $ROWS.
run_one() {
    local data=$1 setting=$2 out
    local -a args=(--mca coll_qtopo_priority 100)
    [[ -z ${QTOPO_COMPONENT_DIR:-} ]] \
        || args+=(--mca mca_base_component_path "$QTOPO_COMPONENT_DIR:SYS_DEFAULT")
    if [[ $setting == e* ]]; then
        args+=(--mca coll_qtopo_error_bound "${setting#e}")
    else
        args+=(--mca coll_qtopo_bits "$setting")
    fi
    out=$(mktemp)
    echo "ebound_bench: $data $setting" >&2
    if ! "$RUN" --timeout 600 "${args[@]}" -- "$HERE/qtopo_bench" --csv --sizes "$SIZES" \
        -r "$ROUNDS" --data "$data" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    grep '^qtopo_bench: WARNING' "$out" >&2 || true
    grep -E '^[0-9]+,' "$out" | sed "s/^/$data,$setting,/" >>"$ROWS"
    rm -f "$out"
}

print_table() {
    awk -F, -v M="$NODES" -v L="$PPN" '
        function human(b) {
            if (b >= 1048576 && b % 1048576 == 0) return (b / 1048576) "M"
            return b
        }
        BEGIN {
            printf "%-8s %-8s %6s %10s %12s %8s %10s %8s  %s\n", "data", "setting", "size",
                   "qtopo_ms", "wire_B/rank", "net_cmp", "max_err", "speedup", "ran"
        }
        {
            node = 2 * (L - 1) / L * $3; rail32 = 2 * (M - 1) / M * $3 / L
            setting = $2 ~ /^e/ ? "E=" substr($2, 2) : $2 "-bit"
            printf "%-8s %-8s %6s %10.1f %12.0f %7.2fx %10.2e %7.2fx  %s\n", $1, setting,
                   human($3), $4 / 1000, $6, rail32 / ($6 - node), $8, $13, $14
        }' "$1"
}

if [[ ${1:-} == --table ]]; then
    print_table "$2"
    exit 0
fi
[[ -x $HERE/qtopo_bench ]] || { echo "build first: make examples/qtopo_bench" >&2; exit 1; }
trap cleanup EXIT
"$CLUSTER" down >/dev/null
"$CLUSTER" up "$NODES" "$RAILS" "${RATE}mbit" >&2
for data in $DATA; do
    for bits in $BITS; do
        run_one "$data" "$bits"
    done
    for bound in $BOUNDS; do
        run_one "$data" "e$bound"
    done
done
[[ -z ${QTOPO_KEEP:-} ]] || { mkdir -p "$QTOPO_KEEP" && cp "$ROWS" "$QTOPO_KEEP/ebound_bench.csv"; }
print_table "$ROWS"
