#!/bin/bash
# cluster.sh: emulate an N-node x R-rail cluster on this host with network namespaces
# (one namespace + UTS namespace per node, one bridge per rail), optionally shaped with tbf.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

usage() {
    cat <<EOF
usage: cluster.sh up [--ppn P] [--no-login] N R [RATES]
                       N nodes (1-200) x R rails (1-16); RATES e.g. 500mbit (every rail)
                       or 1gbit,250mbit (one per rail); --ppn writes the hostfile (default 2)
       cluster.sh down                tear everything down (idempotent, also after a failed up)
       cluster.sh status              show nodes, addresses, shaping and processes
       cluster.sh hostfile PPN [FILE] write a hostfile (PPN: 2, or per node: 2,2,2,1)
EOF
    exit 2
}

# ---------------------------------------------------------------- helpers

node_ns() { echo "$QT_NODE_PREFIX$1"; }

# Namespaces of this test bed that exist now (also those of a half-built cluster).
existing_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^(${QT_NODE_PREFIX}[0-9]+|${QT_FABRIC})\$" || true
}

# "500mbit" -> bits per second (tc units: k/m/g are powers of 1000).
rate_to_bps() {
    local rate=$1 num unit
    [[ $rate =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] || qt_die "bad rate '$rate' (e.g. 250mbit, 1gbit)"
    num=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]}
    case $unit in
        bit) echo "$num" ;;
        kbit) echo $((num * 1000)) ;;
        mbit) echo $((num * 1000000)) ;;
        gbit) echo $((num * 1000000000)) ;;
    esac
}

# Expand a comma list SPEC to COUNT lines: a single value repeats, else COUNT values.
expand_list() {
    local count=$1 spec=$2 what=$3 i
    local -a list
    IFS=, read -r -a list <<<"$spec"
    if ((${#list[@]} == 1)); then
        for ((i = 0; i < count; i++)); do echo "${list[0]}"; done
    elif ((${#list[@]} == count)); then
        printf '%s\n' "${list[@]}"
    else
        qt_die "$what has ${#list[@]} entries, need 1 or $count"
    fi
}

# RATES -> one rate per rail ("500mbit" or "1gbit,250mbit"); nothing if RATES is empty.
rates_per_rail() {
    local rails=$1 spec=$2 rate
    [[ -n $spec ]] || return 0
    expand_list "$rails" "$spec" RATES >/dev/null
    for rate in ${spec//,/ }; do
        rate_to_bps "$rate" >/dev/null
    done
    expand_list "$rails" "$spec" RATES
}

# PPN -> one slot count per node ("2" or "2,2,2,1").
ppn_per_node() {
    [[ $2 =~ ^[0-9]+(,[0-9]+)*$ ]] || qt_die "bad PPN '$2' (e.g. 2 or 2,2,2,1)"
    expand_list "$1" "$2" PPN
}

# tbf on device $2 in namespace $1 at rate $3; burst = 4 ms of bytes, at least 64 KiB.
shape_device() {
    local ns=$1 dev=$2 rate=$3 burst
    burst=$(($(rate_to_bps "$rate") / 2000))
    ((burst >= 65536)) || burst=65536
    ip -n "$ns" link set "$dev" up
    tc -n "$ns" qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
}

# ---------------------------------------------------------------- building blocks

create_fabric() {
    local rails=$1 k
    ip netns add "$QT_FABRIC"
    ip -n "$QT_FABRIC" link set lo up
    for ((k = 0; k < rails; k++)); do
        ip -n "$QT_FABRIC" link add "br$k" type bridge
        ip -n "$QT_FABRIC" link set "br$k" up
    done
}

# Node $1: namespace, its own hostname (UTS namespace bound to a file), R rails.
create_node() {
    local i=$1 rails=$2 ns k
    ns=$(node_ns "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    for ((k = 0; k < rails; k++)); do
        ip link add "rail$k" netns "$ns" type veth peer name "n${i}r$k" netns "$QT_FABRIC"
        ip -n "$QT_FABRIC" link set "n${i}r$k" master "br$k" up
        ip -n "$ns" addr add "$(qt_rail_addr "$i" "$k")/24" dev "rail$k"
        ip -n "$ns" link set "rail$k" up
    done
    : >"$QT_UTS_DIR/$ns"
    unshare --uts="$QT_UTS_DIR/$ns" hostname "$ns"
    echo "$(qt_rail_addr "$i" 0) $ns $QT_HOSTS_TAG" >>/etc/hosts
}

# Shape rail $2 of node $1 in both directions (node egress and bridge egress).
shape_rail() {
    local i=$1 k=$2 rate=$3
    shape_device "$(node_ns "$i")" "rail$k" "$rate"
    shape_device "$QT_FABRIC" "n${i}r$k" "$rate"
}

create_login() {
    ip link add "$QT_LOGIN_DEV" type veth peer name login netns "$QT_FABRIC"
    ip -n "$QT_FABRIC" link set login master br0 up
    ip addr add "$QT_LOGIN_ADDR/24" dev "$QT_LOGIN_DEV"
    ip link set "$QT_LOGIN_DEV" up
}

write_hostfile() {
    local nodes=$1 ppn=$2 file=$3 i=0 slots
    ppn_per_node "$nodes" "$ppn" >/dev/null # dies here, not in the subshell below
    : >"$file"
    while read -r slots; do
        ((slots == 0)) || echo "$(node_ns "$i") slots=$slots" >>"$file"
        i=$((i + 1))
    done < <(ppn_per_node "$nodes" "$ppn")
}

write_state() {
    cat >"$QT_STATE_DIR/state" <<EOF
QT_NODES=$1
QT_RAILS=$2
QT_RATES=$3
QT_LOGIN=$4
QT_HOSTFILE=$QT_STATE_DIR/hostfile
EOF
}

# End every process living in namespace $1 (by PID): TERM, then KILL after 2 s.
kill_namespace_processes() {
    local ns=$1 tries
    local -a pids
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    ((${#pids[@]} > 0)) || return 0
    echo "cluster.sh: killing ${#pids[@]} process(es) left in $ns" >&2
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((tries = 0; tries < 20; tries++)); do
        [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
}

remove_hosts_lines() {
    local kept
    grep -qF "$QT_HOSTS_TAG" /etc/hosts || return 0
    kept=$(grep -vF "$QT_HOSTS_TAG" /etc/hosts || true)
    # Rewrite in place (no rename): /etc/hosts may be a bind mount.
    printf '%s\n' "$kept" >/etc/hosts
}

remove_uts_files() {
    local f
    [[ -d $QT_UTS_DIR ]] || return 0
    for f in "$QT_UTS_DIR"/*; do
        [[ -e $f ]] || continue
        umount "$f" 2>/dev/null || true
        rm -f "$f"
    done
    rmdir "$QT_UTS_DIR"
}

# ---------------------------------------------------------------- subcommands

cmd_down() {
    local ns
    for ns in $(existing_namespaces); do
        kill_namespace_processes "$ns"
    done
    for ns in $(existing_namespaces); do
        ip netns del "$ns"
    done
    if ip link show "$QT_LOGIN_DEV" >/dev/null 2>&1; then
        ip link del "$QT_LOGIN_DEV"
    fi
    remove_uts_files
    remove_hosts_lines
    rm -rf "$QT_STATE_DIR"
}

cmd_up() {
    local ppn=2 login=1 nodes rails rates="" i k
    local -a rail_rates
    while [[ ${1:-} == --* ]]; do
        case $1 in
            --ppn) ppn=${2:?--ppn needs a value}; shift 2 ;;
            --no-login) login=0; shift ;;
            *) usage ;;
        esac
    done
    (($# == 2 || $# == 3)) || usage
    nodes=$1 rails=$2 rates=${3:-}
    [[ $nodes =~ ^[0-9]+$ ]] || qt_die "N must be a number"
    [[ $rails =~ ^[0-9]+$ ]] || qt_die "R must be a number"
    ((nodes >= 1 && nodes <= 200)) || qt_die "N must be 1..200"
    ((rails >= 1 && rails <= 16)) || qt_die "R must be 1..16"
    # Validate in this shell (qt_die in a process substitution would not stop us).
    rates_per_rail "$rails" "$rates" >/dev/null
    ppn_per_node "$nodes" "$ppn" >/dev/null
    mapfile -t rail_rates < <(rates_per_rail "$rails" "$rates")
    [[ -z $(existing_namespaces) && ! -e $QT_STATE_DIR/state ]] ||
        qt_die "a cluster (or its remains) exists; run: cluster.sh down"
    if ((login == 1)) && qt_login_subnet_in_use; then
        qt_die "$QT_OOB_NET is already used in the root namespace; use --no-login"
    fi

    trap 'echo "cluster.sh: up failed, tearing down" >&2; cmd_down' EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$QT_STATE_DIR" "$QT_UTS_DIR"
    create_fabric "$rails"
    for ((i = 0; i < nodes; i++)); do
        create_node "$i" "$rails"
        for ((k = 0; k < ${#rail_rates[@]}; k++)); do
            shape_rail "$i" "$k" "${rail_rates[k]}"
        done
    done
    ((login == 0)) || create_login
    write_hostfile "$nodes" "$ppn" "$QT_STATE_DIR/hostfile"
    write_state "$nodes" "$rails" "$rates" "$login"
    trap - EXIT INT TERM
    echo "cluster up: $nodes nodes x $rails rails${rates:+ at $rates}, hostfile $QT_STATE_DIR/hostfile"
}

cmd_status() {
    local i k ns
    if [[ ! -e $QT_STATE_DIR/state ]]; then
        echo "no cluster is up"
        [[ -z $(existing_namespaces) ]] || echo "remains found: $(existing_namespaces | xargs) (run: cluster.sh down)"
        return 0
    fi
    qt_load_state
    echo "nodes=$QT_NODES rails=$QT_RAILS rates=${QT_RATES:-unshaped} login=$QT_LOGIN hostfile=$QT_HOSTFILE"
    for ((i = 0; i < QT_NODES; i++)); do
        ns=$(node_ns "$i")
        printf '%s: hostname=%s processes=%s\n' "$ns" \
            "$(nsenter --uts="$QT_UTS_DIR/$ns" hostname)" "$(ip netns pids "$ns" | wc -l)"
        for ((k = 0; k < QT_RAILS; k++)); do
            printf '  rail%d %s %s\n' "$k" "$(qt_rail_addr "$i" "$k")" \
                "$(tc -n "$ns" qdisc show dev "rail$k" | grep -o 'rate [^ ]*' || echo unshaped)"
        done
    done
    echo "hostfile:"
    sed 's/^/  /' "$QT_HOSTFILE"
}

cmd_hostfile() {
    (($# == 1 || $# == 2)) || usage
    qt_load_state
    write_hostfile "$QT_NODES" "$1" "${2:-$QT_HOSTFILE}"
    echo "${2:-$QT_HOSTFILE}"
}

main() {
    local cmd=${1:-}
    (($# == 0)) || shift
    [[ $EUID -eq 0 ]] || qt_die "must run as root"
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        status) cmd_status ;;
        hostfile) cmd_hostfile "$@" ;;
        *) usage ;;
    esac
}

main "$@"
