#!/bin/bash
# demo_cluster.sh: the demo on the emulated cluster (test/cluster): 4 nodes x 2 ranks, two
# rails at 500 Mbit/s each. One table: Open MPI's default allreduce and its ring (ob1
# striping over both rails), and qtopo lossless, 8-bit and 4-bit (on its own rails), at
# 1, 16 and 64 MiB; each qtopo time is taken in the same run as Open MPI's default
# (examples/qtopo_bench), the speedup is over the better of Open MPI's two in that row,
# and max_rel is the largest error over the largest |exact sum|. Needs root; demo.sh runs
# it (holding the test bed's lock) after building.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
SIZES=${QTOPO_DEMO_SIZES:-1M,16M,64M}
OUT=$(mktemp -d /tmp/qtopo-demo.XXXXXX)
trap '"$CLUSTER" down >/dev/null 2>&1 || true; rm -rf "$OUT"' EXIT

# bench NAME [mpirun options]: qtopo_bench's CSV rows into $OUT/NAME.
bench() {
    local name=$1
    shift
    "$RUN" --timeout 300 --mca coll_qtopo_priority 40 "$@" -- "$HERE/qtopo_bench" --csv \
        --sizes "$SIZES" -r 3 2>/dev/null | grep -E '^[0-9]+,' >"$OUT/$name"
}

echo "== bringing up the test bed: 4 nodes x 2 ranks, 2 rails of 500 Mbit/s =="
"$CLUSTER" down >/dev/null 2>&1 || true
"$CLUSTER" up 4 2 500mbit | tail -n 1
echo "== MPI_Allreduce, float sum, 8 ranks: about a minute =="
bench ring --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4
# the two rails are equal: fixed weights, with which qtopo also sends eagerly over TCP
# (README, Rails: coll_qtopo_rail_eager)
for bits in 32 8 4; do
    bench "q$bits" --mca coll_qtopo_bits "$bits" --mca coll_qtopo_rail_weights 1,1
done
# CSV: bytes,qtopo_us,eff_busbw,wire,code,max_abs,mean_abs,max_rel,ompi_us,...
# columns: bytes; ring; lossless time, max_rel, Open MPI default, who ran it; 8-bit; 4-bit
cols() { cut -d, -f"$1" "$OUT/$2" | LC_ALL=C sort -t, -k1,1; }
LC_ALL=C join -t, <(cols 1,9 ring) <(cols 1,2,8,9,12 q32) | LC_ALL=C join -t, - <(cols 1,2,8 q8) |
    LC_ALL=C join -t, - <(cols 1,2,8 q4) | sort -t, -k1,1n |
    awk -F, 'BEGIN {
        printf "%10s | %-19s | %-27s | %-27s | %-27s\n", "size", "Open MPI s/call",
               "qtopo lossless", "qtopo 8-bit", "qtopo 4-bit"
        printf "%10s | %9s %9s | %8s %7s %10s | %8s %7s %10s | %8s %7s %10s\n", "", "default",
               "ring", "s/call", "speedup", "max_rel", "s/call", "speedup", "max_rel",
               "s/call", "speedup", "max_rel"
    }
    {
        ring = $2 / 1e6; q32 = $3 / 1e6; def = $5 / 1e6; q8 = $7 / 1e6; q4 = $9 / 1e6
        best = ring < def ? ring : def
        mark = $6 == "prev" ? "*" : " "
        printf "%6.0f MiB | %9.3f %9.3f | %8.3f %6.2fx%s%9.1e | %8.3f %6.2fx %10.1e | %8.3f %6.2fx %10.1e\n",
               $1 / 1048576, def, ring, q32, best / q32, mark, $4, q8, best / q8, $8, q4,
               best / q4, $10
        if (mark == "*") {
            handed = 1
        }
    }
    END {
        if (handed) {
            print "* handed on to Open MPI'"'"'s own allreduce (coll_qtopo_exact auto: qtopo was measured"
            print "  slower there); the same code on both sides, so the ratio is noise"
        }
    }'
echo "(Open MPI: ob1 over both rails; qtopo: split-rail on its own UCX rails, one"
echo " qtopo column and Open MPI's default measured in the same run, alternating)"
"$CLUSTER" down >/dev/null
echo "== test bed taken down =="
