#!/bin/bash
# run.sh: run an MPI program on the cluster brought up by cluster.sh, with a time limit,
# and end every process of the run (mpirun, orted, ranks) when it finishes or is stopped.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

usage() {
    cat <<EOF >&2
usage: run.sh [-n NP] [--rails all|rail0,...] [--hostfile FILE] [--timeout SEC]
              [mpirun options...] -- program [args...]
  -n NP        ranks (default: all slots of the hostfile)
  --rails      interfaces for btl_tcp_if_include (default: all rails of the cluster)
  --hostfile   default: the one cluster.sh wrote
  --timeout    seconds before the run is killed (default 120; exit status 124)
  Other options before -- go to mpirun unchanged (--mca K V, -x VAR, ...); an --mca
  given here replaces run.sh's default for that parameter.
EOF
    exit 2
}

# Slots in a hostfile: sum of slots=N (a line without slots= counts 1).
count_slots() {
    awk '!/^[[:space:]]*(#|$)/ { n = 1; for (f = 2; f <= NF; f++) if ($f ~ /^slots=/) n = substr($f, 7); s += n }
         END { print s + 0 }' "$1"
}

# Kill every process that carries this run's id in its environment (any namespace).
kill_run_processes() {
    local env_file pid
    local -a pids=()
    for env_file in /proc/[0-9]*/environ; do
        pid=${env_file#/proc/}
        pid=${pid%/environ}
        if grep -qzxF "QTOPO_RUN_ID=$RUN_ID" "$env_file" 2>/dev/null; then
            pids+=("$pid")
        fi
    done
    ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Append "--mca $1 $2" to mpi_args unless the caller gave --mca $1 (in user_mca).
# Open MPI would join two values of one parameter into a list, not override.
add_default_mca() {
    [[ " ${user_mca[*]} " == *" $1 "* ]] || mpi_args+=(--mca "$1" "$2")
}

main() {
    local np="" rails=all hostfile="" timeout_s=120 status=0 i
    local -a extra=() user_mca=() mpi_args
    while (($#)); do
        case $1 in
            -n | -np | --np) np=${2:?}; shift 2 ;;
            --rails) rails=${2:?}; shift 2 ;;
            --hostfile) hostfile=${2:?}; shift 2 ;;
            --timeout) timeout_s=${2:?}; shift 2 ;;
            --mca | -mca) user_mca+=("$2"); extra+=("$1" "${2:?}" "${3:?}"); shift 3 ;;
            --) shift; break ;;
            -h | --help) usage ;;
            *) extra+=("$1"); shift ;;
        esac
    done
    (($# >= 1)) || usage
    qt_load_state
    hostfile=${hostfile:-$QT_HOSTFILE}
    np=${np:-$(count_slots "$hostfile")}
    if [[ $rails == all ]]; then
        rails=$(for ((i = 0; i < QT_RAILS; i++)); do echo "rail$i"; done | paste -sd,)
    fi

    mpi_args=(--allow-run-as-root --oversubscribe --bind-to none -np "$np" --hostfile "$hostfile")
    add_default_mca plm_rsh_agent "$HERE/nsexec"
    add_default_mca oob_tcp_if_include "$QT_OOB_NET"
    add_default_mca pml ob1
    add_default_mca btl tcp,self,vader
    add_default_mca btl_tcp_if_include "$rails"
    add_default_mca mpi_yield_when_idle 1
    mpi_args+=("${extra[@]}" "$@")

    RUN_ID="$$.$RANDOM"
    trap kill_run_processes EXIT
    trap 'exit 130' INT TERM
    # Without the login veth, mpirun itself has to start inside node 0.
    local -a launcher=()
    ((QT_LOGIN == 1)) || launcher=(qt_in_node "${QT_NODE_PREFIX}0")
    echo "run.sh: mpirun ${mpi_args[*]}" >&2
    # In the background so that the INT/TERM traps run at once.
    QTOPO_RUN_ID=$RUN_ID "${launcher[@]}" timeout --kill-after=5 "$timeout_s" mpirun "${mpi_args[@]}" &
    wait $! || status=$?
    if ((status == 124 || status == 137)); then
        echo "run.sh: TIMEOUT after ${timeout_s}s, run killed" >&2
        status=124
    fi
    return "$status"
}

main "$@"
