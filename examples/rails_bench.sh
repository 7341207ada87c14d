#!/bin/bash
# rails_bench.sh: qtopo's own rails against Open MPI on the emulated cluster (test/cluster):
# 4 nodes x 2 ranks, two rails shaped equal (500 + 500 Mbit/s) and unequal (400 + 100).
# Needs root (network namespaces) and qtopo built with UCX. One qtopo_bench run per row:
# qtopo and Open MPI's allreduce side by side in the same run, so every speedup is a
# ratio taken under the same load.
#
#   examples/rails_bench.sh            (after make; about 15 minutes on 2 cores)
#
# Rows, per rail setup and width (lossless, 8-bit):
#   rails stripe   qtopo on its rails, every message cut by the adaptive weights (auto,
#                  re-estimated every call here); Open MPI column: ob1 over both rails
#   rails aligned  local rank l sends on rail l mod 2
#   rails 1 rail   qtopo on rail0 alone (transport ucx)
#   pml            qtopo's algorithms over the PML (transport pml); Open MPI column: ob1
#                  over both rails with tuned's ring algorithm
# (Open MPI over its UCX PML is not a row: with the test bed's launcher options, Open MPI
# 4.1.4's mpirun crashed in its command-line parser whenever --mca pml ucx was given.)
# Printed: qtopo and Open MPI time per call (best of the rounds), speedup, qtopo's share
# of the wire bound of the rails it used (split-rail: each node sends 2(M-1)/M of the
# buffer; fp32 bytes, or the 8-bit format's 1.03125/4 of them), and the bytes rank 0
# sent on each rail (coll_qtopo_verbose 1 summary).
#
# Environment: QTOPO_SIZES (default 16M,64M), QTOPO_ROUNDS (default 3), QTOPO_SETUPS
# (default "500mbit 400mbit,100mbit"), QTOPO_BITS (default "32 8"), QTOPO_ROWS (default
# "stripe aligned 1rail pml"), QTOPO_KEEP (directory for every run's output),
# QTOPO_BUILDDIR (the build whose component runs; default the tree).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
SIZES=${QTOPO_SIZES:-16M,64M}
ROUNDS=${QTOPO_ROUNDS:-3}
SETUPS=${QTOPO_SETUPS:-500mbit 400mbit,100mbit}
BITS=${QTOPO_BITS:-32 8}
BUILD=${QTOPO_BUILDDIR:-$TOP}
KEEP=${QTOPO_KEEP:-$(mktemp -d /tmp/qtopo-rails-bench.XXXXXX)}
mkdir -p "$KEEP"
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT

COMMON=(--mca coll_qtopo_priority 100 --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT"
        --mca coll_qtopo_verbose 1 --mca coll_qtopo_rail_adapt_calls 1)
declare -A ROW=(
    [stripe]="--mca coll_qtopo_transport ucx --mca coll_qtopo_rails rail0,rail1"
    [aligned]="--mca coll_qtopo_transport ucx --mca coll_qtopo_rails rail0,rail1 --mca coll_qtopo_rail_policy aligned"
    [1rail]="--mca coll_qtopo_transport ucx --mca coll_qtopo_rails rail0"
    [pml]="--mca coll_qtopo_transport pml --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
)
read -r -a ORDER <<<"${QTOPO_ROWS:-stripe aligned 1rail pml}"
declare -A OMPI=([stripe]="ob1 default" [aligned]="ob1 default" [1rail]="ob1 default"
                 [pml]="ob1 ring")

# rate_sum SETUP ROW: Mbit/s of the rails the row's qtopo uses.
rate_sum() {
    local -a r
    IFS=, read -r -a r <<<"$1"
    ((${#r[@]} == 2)) || r=("${r[0]}" "${r[0]}")
    r=("${r[@]%mbit}")
    [[ $2 == 1rail ]] && echo "${r[0]}" || echo $((r[0] + r[1]))
}

table_rows() {
    local setup=$1 bits=$2 row=$3 file=$4 rate
    rate=$(rate_sum "$setup" "$row")
    awk -F, -v setup="$setup" -v bits="$bits" -v row="$row" -v ompi="${OMPI[$row]}" \
        -v rate="$rate" -v rails="$(grep -o "rank 0 of [^:]*: rail [0-9] ([a-z0-9]*, weight [0-9]*): [0-9]* bytes sent" "$file" |
            sed -E 's/.*rail [0-9] \(([a-z0-9]*), weight ([0-9]*)\): ([0-9]*) bytes.*/\1 w\2 \3/' |
            awk '{ printf "%s%s %s %.0fMB", (NR > 1 ? ", " : ""), $1, $2, $3 / 1e6 }')" '
        /^#/ || /^bytes/ || NF < 10 { next }
        {
            bytes = $1; q = $2 / 1e6; o = $9 / 1e6
            wire = 2 * 3 / 4 * bytes * 8 / (rate * 1e6) * (bits == 8 ? 1.03125 / 4 : 1)
            printf "| %s | %d | %s MiB | %s (%s) | %.3f | %s %.3f | %.2fx | %.0f%% | %s |\n",
                setup, bits, bytes / 1048576, row, $12, q, ompi, o, o / q, 100 * wire / q, rails
        }' < <(grep -v "^#" "$file" | grep -E "^[0-9]+,")
}

echo "| rails | bits | size | qtopo | qtopo s | Open MPI s | speedup | wire bound | rank 0 bytes per rail |"
echo "|---|---|---|---|---|---|---|---|---|"
for setup in $SETUPS; do
    "$CLUSTER" down >/dev/null 2>&1 || true
    "$CLUSTER" up 4 2 "$setup" >/dev/null
    for bits in $BITS; do
        for row in "${ORDER[@]}"; do
            out=$KEEP/$setup-$bits-$row.txt
            read -r -a args <<<"${ROW[$row]}"
            echo "rails_bench: $setup $bits bits $row" >&2
            if "$RUN" --timeout 900 "${COMMON[@]}" "${args[@]}" -- "$HERE/qtopo_bench" --csv \
                --sizes "$SIZES" -r "$ROUNDS" --bits "$bits" >"$out" 2>&1; then
                table_rows "$setup" "$bits" "$row" "$out"
            else
                echo "| $setup | $bits | | $row | failed, see $out | | | | |"
            fi
        done
    done
    "$CLUSTER" down >/dev/null
done
echo "raw outputs: $KEEP" >&2
