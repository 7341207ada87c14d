#!/bin/bash
# bench_matrix.sh: qtopo_bench over a matrix of wire widths x Open MPI variants x sizes, one
# combined table; with --out also a CSV, a plot and a README with the table.
#
#   examples/bench_matrix.sh [--out DIR] [--cluster] [mpirun options...]
#   examples/bench_matrix.sh --plot-only --out DIR
#
# Every width (coll_qtopo_bits, set through MPI_T by the benchmark) runs once against each
# Open MPI variant of bench_variants.sh (tuned's default choice, tuned's ring, han): qtopo
# and the variant side by side in the same run of examples/qtopo_bench, so speedup = that
# variant's time / qtopo's time in that run. A run that fails is reported (on stderr and in
# the CSV's comments) and the rest of its variant skipped; the other variants still run.
# Other arguments go to the launcher unchanged (--mca K V, -x VAR, ...).
#
#   --out DIR    write DIR/matrix.csv (one row per variant x width x size: the variant, then
#                qtopo_bench's --csv columns; '#' lines first with the date, ranks, layout,
#                rate, host, Open MPI, git revision and the command line), DIR/raw/ (each
#                run's full output), and then, with plot_bench_matrix.py (Debian's
#                python3-matplotlib), DIR/speedup.png (one panel per width, speedup vs size,
#                one line per variant) and DIR/README.md (the tables and the commands)
#   --cluster    on the emulated cluster (test/cluster, needs root): 4 nodes x 2 ranks, 2
#                rails at QTOPO_RATE Mbit/s, brought up and taken down while holding
#                /tmp/qtopo-testbed.lock (flock; do not wrap the script in flock yourself)
#   --plot-only  only redo DIR/speedup.png and DIR/README.md from DIR/matrix.csv
#
# Environment:
#   QTOPO_NP        ranks (default 8, oversubscribed; the cluster has 8 slots)
#   QTOPO_BITS      widths (default "32 16 8 4 2")
#   QTOPO_SIZES     sizes for --sizes (default 256K,1M,4M,16M,64M)
#   QTOPO_ROUNDS    rounds per size (default 3; the best round is kept)
#   QTOPO_VARIANTS  Open MPI variants (default "tuned ring han"; "tuned ring" with the
#                   default one-host launcher: there han disqualifies itself, as all ranks
#                   share a node, and Open MPI runs tuned's default choice instead)
#   QTOPO_ROUNDING  nearest|stochastic (default: the component's setting)
#   QTOPO_PRIORITY  coll_qtopo_priority (default 100: above han's 90, see bench_variants.sh)
#   QTOPO_RATE      with --cluster: Mbit/s per rail (default 500)
#   QTOPO_MPIRUN    launcher and its options (default: mpirun --allow-run-as-root
#                   --oversubscribe --mca btl self,vader,tcp --mca mpi_yield_when_idle 1;
#                   with --cluster: test/cluster/run.sh --timeout 900 --). A last word
#                   "--" is a separator put before the program, as the cluster's runner wants.
#   QTOPO_BENCH     the benchmark binary (default: qtopo_bench next to this script)
#   QTOPO_BUILDDIR  the build whose .libs/mca_coll_qtopo.so is loaded (default: this tree's,
#                   when built; otherwise the installed component)
#   QTOPO_KEEP      a directory for each run's full output (default with --out: DIR/raw)
#   PYTHON          the Python with matplotlib (default /usr/bin/python3)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
# shellcheck source=bench_variants.sh
. "$HERE/bench_variants.sh"
NP=${QTOPO_NP:-8}
BITS=${QTOPO_BITS:-32 16 8 4 2}
SIZES=${QTOPO_SIZES:-256K,1M,4M,16M,64M}
ROUNDS=${QTOPO_ROUNDS:-3}
RATE=${QTOPO_RATE:-500}
BENCH=${QTOPO_BENCH:-$HERE/qtopo_bench}
BUILD=${QTOPO_BUILDDIR:-$TOP}
PYTHON=${PYTHON:-/usr/bin/python3}
LOCK=/tmp/qtopo-testbed.lock
CLUSTER_SH=$TOP/test/cluster/cluster.sh
CLUSTER_UP=0
TMP=""
DEFAULT_MPIRUN="mpirun --allow-run-as-root --oversubscribe --mca btl self,vader,tcp"
DEFAULT_MPIRUN+=" --mca mpi_yield_when_idle 1"

# The full command line of one run, one word a line, for width $1; "$@" after it: extra
# launcher options.
launch_words() {
    local bits=$1 sep=""
    shift
    local -a launcher bench_args component=()
    read -r -a launcher <<<"${QTOPO_MPIRUN:-$DEFAULT_MPIRUN}"
    if [[ ${launcher[-1]} == -- ]]; then
        sep=--
        unset 'launcher[-1]'
    fi
    # The component built with this benchmark, unless the caller chose one (Open MPI would
    # join two values of the parameter into a list).
    if [[ -e $BUILD/.libs/mca_coll_qtopo.so && " $* " != *" mca_base_component_path "* ]]; then
        component=(--mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT")
    fi
    bench_args=(--csv --bits "$bits" --sizes "$SIZES" -r "$ROUNDS")
    [[ -z ${QTOPO_ROUNDING:-} ]] || bench_args+=(--rounding "$QTOPO_ROUNDING")
    printf '%s\n' "${launcher[@]}" -n "$NP" --mca coll_qtopo_priority \
        "${QTOPO_PRIORITY:-$QT_BENCH_PRIORITY}" "${component[@]}" "$@" ${sep:+"$sep"} \
        "$BENCH" "${bench_args[@]}"
}

# Runs variant $1 at width $2 and appends "variant,<qtopo_bench csv row>" to $ROWS, the
# column names to $HEADER (once) and the command to $RUNS; the whole output on failure.
run_one() {
    local variant=$1 bits=$2 out
    shift 2
    local -a cmd extra
    read -r -a extra <<<"${QT_VARIANT[$variant]}"
    mapfile -t cmd < <(launch_words "$bits" "${extra[@]}" "$@")
    out=$(mktemp)
    echo "bench_matrix: $variant, bits=$bits: ${cmd[*]}" >&2
    echo "# run: $variant bits=$bits: ${cmd[*]//$TOP\//./}" >>"$RUNS"
    if ! "${cmd[@]}" >"$out" 2>&1; then
        echo "bench_matrix: run of $variant at bits=$bits failed:" >&2
        cat "$out" >&2
        [[ -z $RAW ]] || cp "$out" "$RAW/$variant-bits$bits.txt"
        rm -f "$out"
        return 1
    fi
    if grep -q '^qtopo_bench: WARNING' "$out"; then
        grep '^qtopo_bench: WARNING' "$out" >&2
    fi
    [[ -z $RAW ]] || cp "$out" "$RAW/$variant-bits$bits.txt"
    [[ -s $HEADER ]] || grep -m1 '^bytes,' "$out" | sed 's/^/variant,/' >"$HEADER"
    grep -E '^[0-9]+,' "$out" | sed "s/^/$variant,/" >>"$ROWS" || true
    rm -f "$out"
}

# Every variant at every width; a failed run skips the rest of its variant.
run_matrix() {
    local variant bits
    for variant in $VARIANTS; do
        for bits in $BITS; do
            if ! run_one "$variant" "$bits" "$@"; then
                echo "# failed: $variant at bits=$bits; its remaining widths skipped" >>"$RUNS"
                echo "bench_matrix: skipping the rest of $variant" >&2
                break
            fi
        done
    done
}

# The matrix on the emulated cluster, holding the test bed's lock from up to down (cleanup
# takes it down if the run is stopped).
run_on_cluster() {
    local status=0
    exec 9>"$LOCK"
    if ! flock -n 9; then
        echo "bench_matrix: waiting for $LOCK (the test bed is in use)" >&2
        flock 9
    fi
    CLUSTER_UP=1
    "$CLUSTER_SH" down >/dev/null
    if ! "$CLUSTER_SH" up 4 2 "${RATE}mbit" >&2; then
        echo "bench_matrix: the test bed did not come up (needs root)" >&2
        return 1
    fi
    run_matrix "$@" || status=$?
    "$CLUSTER_SH" down >/dev/null
    CLUSTER_UP=0
    flock -u 9
    return "$status"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    ((!CLUSTER_UP)) || "$CLUSTER_SH" down >/dev/null 2>&1 || true
    rm -rf "$TMP"
}

# matrix.csv rows (variant, then qtopo_bench's --csv columns) to the combined table.
print_table() {
    awk -F, '
        function human(b) {
            if (b >= 1048576 && b % 1048576 == 0) return (b / 1048576) "M"
            if (b >= 1024 && b % 1024 == 0) return (b / 1024) "K"
            return b
        }
        BEGIN {
            printf "%-6s %4s %6s %12s %12s %10s %13s %11s %8s  %s\n", "ompi", "bits", "size",
                   "qtopo_us", "ompi_us", "eff_busbw", "wire_B/rank", "max_rel_err",
                   "speedup", "ran"
        }
        /^#/ || /^variant,/ { next }
        {
            printf "%-6s %4s %6s %12.1f %12.1f %10.3f %13.0f %11.2e %7.2fx  %s\n", $1, $14,
                   human($2), $3, $10, $4, $5, $9, $12, $13
        }' "$@"
}

# $1 as one shell word, in single quotes where it needs any.
shell_word() {
    if [[ $1 =~ ^[-A-Za-z0-9_.,/:=+]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# The command line that repeats this run: the QTOPO_* settings given, the script, "$@".
command_line() {
    local v words=""
    for v in NP BITS SIZES ROUNDS VARIANTS ROUNDING PRIORITY RATE MPIRUN; do
        v=QTOPO_$v
        [[ -z ${!v:-} ]] || words+="$v=$(shell_word "${!v}") "
    done
    words+=examples/bench_matrix.sh
    for v in "$@"; do
        words+=" $(shell_word "$v")"
    done
    echo "$words"
}

# The '#' lines at the top of matrix.csv: what was run, where, and how to repeat it.
describe_run() {
    local layout rate=-
    if ((CLUSTER)); then
        layout="emulated cluster (test/cluster): 4 nodes x 2 slots, 2 rails"
        rate="$RATE Mbit/s per rail"
    else
        layout="one host ($(hostname)), $NP ranks on $(nproc) cores"
    fi
    echo "# bench_matrix: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# ranks: $NP; layout: $layout; rate: $rate"
    echo "# widths: $BITS; sizes: $SIZES; rounds: $ROUNDS (best kept); rounding:" \
        "${QTOPO_ROUNDING:-component default}; variants: $VARIANTS"
    echo "# host: $(uname -srm), $(nproc) cores; Open MPI $(ompi_info --version 2>/dev/null |
        sed -n 's/^Open MPI v//p'); qtopo $(git -C "$TOP" describe --always --dirty 2>/dev/null ||
        echo unknown)"
    echo "# command: $COMMAND"
    echo "# speedup = the variant's time / qtopo's time, measured in the same run"
    if ((HAN_LEFT_OUT)); then
        echo "# han left out: on one host it disqualifies itself (all ranks share a node)"
    fi
}

plot() {
    "$PYTHON" "$HERE/plot_bench_matrix.py" "$OUT" && return 0
    echo "bench_matrix: plotting failed (apt-get install python3-matplotlib)" >&2
    return 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Options of this script to OUT, CLUSTER, PLOT_ONLY; the rest to LAUNCHER_ARGS.
parse_args() {
    OUT="" CLUSTER=0 PLOT_ONLY=0
    LAUNCHER_ARGS=()
    while (($#)); do
        case $1 in
            --out) OUT=${2:?--out needs a directory}; shift 2 ;;
            --cluster) CLUSTER=1; shift ;;
            --plot-only) PLOT_ONLY=1; shift ;;
            -h | --help) usage ;;
            *) LAUNCHER_ARGS+=("$1"); shift ;;
        esac
    done
}

# The launcher, the variants and the directories of this run.
setup_run() {
    local variant
    [[ -x $BENCH ]] || { echo "bench_matrix: $BENCH not built (make)" >&2; exit 1; }
    ((!CLUSTER)) || QTOPO_MPIRUN=${QTOPO_MPIRUN:-$TOP/test/cluster/run.sh --timeout 900 --}
    VARIANTS=${QTOPO_VARIANTS:-${QT_VARIANT_ORDER[*]}}
    HAN_LEFT_OUT=0
    if [[ -z ${QTOPO_MPIRUN:-} && -z ${QTOPO_VARIANTS:-} ]]; then
        VARIANTS="tuned ring"
        HAN_LEFT_OUT=1
    fi
    for variant in $VARIANTS; do
        [[ -n ${QT_VARIANT[$variant]+set} ]] ||
            { echo "bench_matrix: no variant $variant" >&2; exit 2; }
    done
    RAW=${QTOPO_KEEP:-${OUT:+$OUT/raw}}
    [[ -z $OUT ]] || mkdir -p "$OUT"
    [[ -z $RAW ]] || mkdir -p "$RAW"
    TMP=$(mktemp -d /tmp/qtopo-bench-matrix.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ROWS=$TMP/rows HEADER=$TMP/header RUNS=$TMP/runs
    : >"$ROWS"
    : >"$HEADER"
}

# The table on stdout; with --out the CSV, the plot and the README (status: the plot's).
write_results() {
    cat "$RUNS" "$HEADER" "$ROWS" >"$TMP/matrix.csv"
    print_table "$TMP/matrix.csv"
    grep '^# failed' "$RUNS" >&2 || true
    if [[ -n $OUT ]]; then
        cp "$TMP/matrix.csv" "$OUT/matrix.csv"
        echo "bench_matrix: wrote $OUT/matrix.csv" >&2
        [[ ! -s $ROWS ]] || plot || return 1
    fi
}

main() {
    local status=0
    COMMAND=$(command_line "$@")
    parse_args "$@"
    if ((PLOT_ONLY)); then
        [[ -r $OUT/matrix.csv ]] ||
            { echo "bench_matrix: no --out DIR with a matrix.csv" >&2; exit 2; }
        plot
        exit
    fi
    setup_run
    describe_run >"$RUNS"
    if ((CLUSTER)); then
        run_on_cluster "${LAUNCHER_ARGS[@]}" || status=$?
    else
        run_matrix "${LAUNCHER_ARGS[@]}" || status=$?
    fi
    write_results || status=1
    [[ -s $ROWS ]] || { echo "bench_matrix: no run succeeded" >&2; status=1; }
    exit "$status"
}

main "$@"
