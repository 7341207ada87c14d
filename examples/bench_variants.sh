# bench_variants.sh: the Open MPI allreduce variants the benchmark scripts compare qtopo with
# (sourced by cluster_bench.sh and bench_matrix.sh, not run).
#
#   tuned  tuned's default choice (its decision rules)
#   ring   tuned forced to its ring (coll_tuned_allreduce_algorithm 4)
#   han    han (hierarchical: a reduce inside each node, then between the node leaders)
#
# Each value is the mpirun options that select the variant. qtopo must then run at a
# priority above han's 90 (QT_BENCH_PRIORITY) so that it still takes the communicator it is
# timed on; the benchmark's twin communicator excludes qtopo and gets the variant.
# shellcheck shell=bash disable=SC2034

QT_VARIANT_ORDER=(tuned ring han)
declare -A QT_VARIANT=(
    [tuned]=""
    [ring]="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
    [han]="--mca coll_han_priority 90"
)
QT_BENCH_PRIORITY=100
