#!/bin/bash
# wire_bench.sh: how close split-rail comes to the wire, and where its time goes, on the
# emulated cluster (test/cluster: 4 nodes x 2 ranks, 2 rails of QTOPO_RATE Mbit/s each,
# default 500). Needs root; holds /tmp/qtopo-testbed.lock.
#
#   examples/wire_bench.sh
#
# For one rail (rail0) and two rails (qtopo's UCX rails, striped with fixed equal weights,
# so that they send eagerly: README, Rails, coll_qtopo_rail_eager), exact and 8-bit
# split-rail (coll_qtopo_algorithm hier), one examples/qtopo_bench run of QTOPO_SIZES
# (default 16M,64M), best of QTOPO_ROUNDS rounds (default 3). Prints per row: qtopo's time,
# the wire bound and the share of it reached, and qtopo's own split of its time over the
# whole run, summed over the ranks (coll_qtopo_verbose 1 summaries): node reduce-scatter,
# network phase (coding included), node allgather, coding.
#
# Wire bound: every node must send 2(M-1)/M of the buffer across the network (M = 4
# nodes), at R x RATE; quantized, the buffer is the codes: with blocks of 256 values,
# (256 * bits / 8 + 8) bytes per 1024 bytes of fp32 (1.03/4 at 8 bits).
#
# With iperf3 installed it first measures what TCP itself delivers on the test bed in
# the same pattern (every node streams to the next one on every rail at once, 4 s) and
# prints it as a share of the rate: the ceiling any TCP-based allreduce can reach here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
BUILD=${QTOPO_BUILDDIR:-$TOP}
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
# shellcheck source=../test/cluster/common.sh
. "$TOP/test/cluster/common.sh"
RATE=${QTOPO_RATE:-500}
SIZES=${QTOPO_SIZES:-16M,64M}
ROUNDS=${QTOPO_ROUNDS:-3}
Q=(--mca coll_qtopo_priority 40 --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT"
   --mca coll_qtopo_algorithm hier --mca coll_qtopo_exact always --mca coll_qtopo_verbose 1
   --mca coll_qtopo_transport ucx)

# One run: rails $1 (rail0 or rail0,rail1), bits $2; prints the table rows.
run_row() {
    local rails=$1 bits=$2 nrails out
    nrails=$(tr ',' '\n' <<<"$rails" | wc -l)
    out=$(mktemp)
    if ! "$RUN" --timeout 900 "${Q[@]}" --mca coll_qtopo_rails "$rails" \
        --mca coll_qtopo_rail_weights "$(sed 's/rail[0-9]*/1/g' <<<"$rails")" -- \
        "$BUILD/examples/qtopo_bench" --csv --bits "$bits" --sizes "$SIZES" -r "$ROUNDS" \
        >"$out" 2>&1; then
        echo "wire_bench: rails $rails bits $bits failed:" >&2
        tail -n 20 "$out" >&2
        rm -f "$out"
        return 1
    fi
    awk -F, -v rails="$nrails" -v rate="$RATE" -v bits="$bits" '
        /summary for .*MPI COMMUNICATOR/ {
            # "...; T s in qtopo (node reduce-scatter A, network B, node allgather C;
            # coding D of them), E s agreeing"
            line = $0
            sub(/.* s in qtopo \(node reduce-scatter /, "", line)
            split(line, v, /[^0-9.]+/)
            rs += v[1]; net += v[2]; ag += v[3]; code += v[4]
        }
        /^[0-9]+,/ { n++; size[n] = $1; tq[n] = $2 / 1e6; to[n] = $9 / 1e6 }
        END {
            c = bits == 32 ? 1 : (256 * bits / 8 + 8) / 1024
            all = rs + net + ag
            for (i = 1; i <= n; i++) {
                bound = 2 * 3 / 4 * size[i] * 8 * c / (rails * rate * 1e6)
                printf "%-5d %-4d %7.0fM %9.4f %9.4f %6.0f%% %9.4f  %3.0f%% %3.0f%% %3.0f%% %3.0f%%\n",
                       rails, bits, size[i] / 1048576, tq[i], bound, 100 * bound / tq[i], to[i],
                       100 * rs / all, 100 * net / all, 100 * ag / all, 100 * code / all
            }
        }' "$out"
    rm -f "$out"
}

# iperf3 ring: node i -> node i+1 on every rail of $1 (rail indices, e.g. "0 1"); prints
# the mean goodput of the streams as a share of RATE.
tcp_ceiling() {
    local k i tmp pids=()
    tmp=$(mktemp -d)
    for k in $1; do
        for i in 0 1 2 3; do
            ip netns exec "$QT_NODE_PREFIX$i" iperf3 -s -1 -D -p $((5300 + k)) >/dev/null 2>&1
        done
    done
    sleep 0.5
    for k in $1; do
        for i in 0 1 2 3; do
            ip netns exec "$QT_NODE_PREFIX$i" iperf3 -c "$(qt_rail_addr $(((i + 1) % 4)) "$k")" \
                -p $((5300 + k)) -t 4 -f m >"$tmp/$i.$k" 2>&1 &
            pids+=($!)
        done
    done
    wait "${pids[@]}" || true
    awk -v rate="$RATE" '/receiver$/ { s += $(NF - 2); n++ }
        END { if (n) printf "%.1f%%", 100 * s / n / rate; else printf "n/a" }' "$tmp"/*
    rm -rf "$tmp"
}

exec 9>/tmp/qtopo-testbed.lock
flock 9
"$CLUSTER" down >/dev/null 2>&1 || true
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
"$CLUSTER" up 4 2 "${RATE}mbit" >&2
echo "# $(date -u '+%F %T UTC') rate=${RATE}mbit sizes=$SIZES rounds=$ROUNDS"
if command -v iperf3 >/dev/null; then
    echo "# TCP ceiling (iperf3, every node to the next at once): one rail $(tcp_ceiling 0)," \
         "two rails $(tcp_ceiling "0 1") of the rate"
fi
echo "# phase shares: of qtopo's time in the whole run, all ranks (node RS, network, node AG; coding is inside network)"
printf '%-5s %-4s %8s %9s %9s %7s %9s  %4s %4s %4s %4s\n' rails bits size qtopo_s bound_s \
    of_bound ompi_s rs net ag code
for rails in rail0 rail0,rail1; do
    for bits in 32 8; do
        run_row "$rails" "$bits"
    done
done
"$CLUSTER" down >/dev/null
trap - EXIT
