#!/bin/bash
# bench_matrix.sh: qtopo_bench over a matrix of wire widths and sizes, one combined table.
#
#   examples/bench_matrix.sh [mpirun options...]
#
# Runs examples/qtopo_bench once per width (coll_qtopo_bits 32 16 8 4 2, set through
# MPI_T by the benchmark) at 1, 16 and 64 MiB on QTOPO_NP ranks (default 8, oversubscribed)
# and prints bits, size, qtopo time, effective busbw, wire bytes per rank, max relative
# error, the speedup over Open MPI measured in the same run, and which module ran.
# Arguments are passed to the launcher unchanged (--mca K V, -x VAR, ...).
#
# Environment:
#   QTOPO_NP        ranks (default 8)
#   QTOPO_BITS      widths (default "32 16 8 4 2")
#   QTOPO_SIZES     sizes for --sizes (default 1M,16M,64M)
#   QTOPO_ROUNDS    rounds per size (default 3)
#   QTOPO_ROUNDING  nearest|stochastic (default: the component's setting)
#   QTOPO_PRIORITY  coll_qtopo_priority (default 40)
#   QTOPO_MPIRUN    launcher and its options (default: mpirun --allow-run-as-root
#                   --oversubscribe --mca btl self,vader,tcp --mca mpi_yield_when_idle 1).
#                   A last word "--" is a separator put before the program, as the
#                   emulated cluster's runner wants (it adds its own btl, rails, hostfile):
#                     QTOPO_MPIRUN="test/cluster/run.sh --" examples/bench_matrix.sh
#   QTOPO_BENCH     the benchmark binary (default: qtopo_bench next to this script)
#   QTOPO_KEEP      a directory to keep each run's full output (CSV) in
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NP=${QTOPO_NP:-8}
BITS=${QTOPO_BITS:-32 16 8 4 2}
SIZES=${QTOPO_SIZES:-1M,16M,64M}
ROUNDS=${QTOPO_ROUNDS:-3}
BENCH=${QTOPO_BENCH:-$HERE/qtopo_bench}
DEFAULT_MPIRUN="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader,tcp"
DEFAULT_MPIRUN+=" --mca mpi_yield_when_idle 1"

# The full command line of one run, one word a line, for width $1; "$@" after it: extra
# launcher options.
launch_words() {
    local bits=$1 sep=""
    shift
    local -a launcher bench_args
    read -r -a launcher <<<"${QTOPO_MPIRUN:-$DEFAULT_MPIRUN}"
    if [[ ${launcher[-1]} == -- ]]; then
        sep=--
        unset 'launcher[-1]'
    fi
    bench_args=(--csv --bits "$bits" --sizes "$SIZES" -r "$ROUNDS")
    [[ -z ${QTOPO_ROUNDING:-} ]] || bench_args+=(--rounding "$QTOPO_ROUNDING")
    printf '%s\n' "${launcher[@]}" -n "$NP" --mca coll_qtopo_priority "${QTOPO_PRIORITY:-40}" \
        "$@" ${sep:+"$sep"} "$BENCH" "${bench_args[@]}"
}

# Runs width $1 and prints its CSV rows (no header); the whole output on failure.
run_width() {
    local bits=$1 out
    shift
    local -a cmd
    mapfile -t cmd < <(launch_words "$bits" "$@")
    out=$(mktemp)
    echo "bench_matrix: ${cmd[*]}" >&2
    if ! "${cmd[@]}" >"$out" 2>&1; then
        echo "bench_matrix: run for bits=$bits failed:" >&2
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    if grep -q '^qtopo_bench: WARNING' "$out"; then
        grep '^qtopo_bench: WARNING' "$out" >&2
    fi
    [[ -z ${QTOPO_KEEP:-} ]] || cp "$out" "$QTOPO_KEEP/bits$bits.csv"
    grep -E '^[0-9]+,' "$out" || true
    rm -f "$out"
}

# CSV rows (qtopo_bench --csv columns) to the combined table.
print_table() {
    awk -F, '
        function human(b) {
            if (b >= 1048576 && b % 1048576 == 0) return (b / 1048576) "M"
            if (b >= 1024 && b % 1024 == 0) return (b / 1024) "K"
            return b
        }
        BEGIN {
            printf "%4s %6s %12s %10s %13s %11s %8s  %s\n", "bits", "size", "qtopo_us",
                   "eff_busbw", "wire_B/rank", "max_rel_err", "speedup", "ran"
        }
        {
            printf "%4s %6s %12.1f %10.3f %13.0f %11.2e %7.2fx  %s\n", $13, human($1), $2, $3,
                   $4, $8, $11, $12
        }'
}

main() {
    local bits rows=""
    [[ -z ${QTOPO_KEEP:-} ]] || mkdir -p "$QTOPO_KEEP"
    [[ -x $BENCH ]] || { echo "bench_matrix: $BENCH not built (make)" >&2; exit 1; }
    for bits in $BITS; do
        rows+=$(run_width "$bits" "$@")$'\n'
    done
    echo "# bench_matrix: $NP ranks, sizes $SIZES, $ROUNDS rounds (best kept), rounding" \
        "${QTOPO_ROUNDING:-default}; speedup = Open MPI time / qtopo time, same run"
    printf '%s' "$rows" | grep -v '^$' | print_table
}

main "$@"
