#!/bin/bash
# Before/after throughput of the qtopo codec, for the table in docs/CODEC_BENCH.md:
# bench_codec.c is built twice, against this tree's codec and against the codec of a git
# revision (default: main), and the two run in turns (ABBA) REPS times (default 5) in
# one session.  Each run measures memcpy in the same process; the table gives, per width,
# rounding and operation, the median GB/s and the median ratio to that memcpy of each
# side, and after/before as the quotient of those median ratios.
#
#   test/codec/bench_compare.sh [base-revision] [reps]
#
# No MPI needed: cc (or $CC) and git.  About 4 s per run of each side.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
base=${1:-main}
reps=${2:-5}
src=ompi/mca/coll/qtopo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/base"
for f in coll_qtopo_codec.h coll_qtopo_codec.c coll_qtopo_codec_avx2.c; do
    git -C "$top" show "$base:$src/$f" >"$work/base/$f"
done
# the flags of test/codec/Makefile (-ffp-contract=off is required)
flags="-std=gnu11 -O2 -g -ffp-contract=off -I$here"
${CC:-cc} $flags -I"$work/base" -o "$work/before" "$here/bench_codec.c" \
    "$work/base/coll_qtopo_codec.c" "$work/base/coll_qtopo_codec_avx2.c" -lm
${CC:-cc} $flags -I"$top/$src" -o "$work/after" "$here/bench_codec.c" \
    "$top/$src/coll_qtopo_codec.c" "$top/$src/coll_qtopo_codec_avx2.c" -lm

# ABBA order: neither side always runs first
for ((r = 1; r <= reps; ++r)); do
    sides="before after"
    if ((0 == r % 2)); then
        sides="after before"
    fi
    for side in $sides; do
        "$work/$side" throughput | sed "s/^/$side /" >>"$work/runs"
    done
done

echo "base: $base ($(git -C "$top" rev-parse --short "$base")), after: working tree of" \
     "$(git -C "$top" rev-parse --short HEAD); $reps runs each, medians;" \
     "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
awk -v reps="$reps" '
function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; ++i) {
        for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$2 == "memcpy" { mem[$1] = mem[$1] " " $3 }
$2 ~ /^[0-9]+$/ && NF == 10 {
    key = $2 " " $3 " " $4
    if (!(key in seen)) { seen[key] = 1; order[++nkeys] = key }
    for (k = 0; k < 3; ++k) {
        gbs[$1, key, k] = gbs[$1, key, k] " " $(5 + 2 * k)
        x = $(6 + 2 * k); gsub(/[()x]/, "", x)
        ratio[$1, key, k] = ratio[$1, key, k] " " x
    }
}
END {
    split("encode decode decode_add", op, " ")
    printf "memcpy GB/s (median): before %.2f, after %.2f\n\n", median(mem["before"]),
           median(mem["after"])
    printf "| bits | rounding | kernels | op | before GB/s | before ×memcpy "
    print "| after GB/s | after ×memcpy | after/before |"
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= nkeys; ++i) {
        split(order[i], f, " ")
        for (k = 0; k < 3; ++k) {
            b = median(ratio["before", order[i], k]); a = median(ratio["after", order[i], k])
            printf "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f× |\n", f[1], f[2],
                   f[3], op[k + 1], median(gbs["before", order[i], k]), b,
                   median(gbs["after", order[i], k]), a, a / b
        }
    }
}' "$work/runs"
