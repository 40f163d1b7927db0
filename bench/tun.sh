#!/bin/sh
# tern <-> the kernel over a TUN device, each direction, beside kernel <-> kernel over a veth
# pair and lwIP <-> the kernel over a TUN device (the anchor's lwipbench, when built), in the
# same run: medians of ROUNDS. tern -> kernel is measured twice: as tern runs by default
# (bursts written with io_uring where the kernel has it) and with --tun-io writev (one writev
# per packet). Needs root (network namespaces, /dev/net/tun); everything happens inside
# namespaces made here and deleted at the end.
set -e
B=${BUILD:-../build}
ROUNDS=${ROUNDS:-5}
BYTES=${BYTES:-1073741824}
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! command -v ip >/dev/null; then
	echo "tun benchmark skipped: needs root, /dev/net/tun and ip (iproute2)"
	exit 0
fi
NS=tern-bench-$$
VA=tern-bva-$$
VB=tern-bvb-$$
LW=tern-blw-$$
TPID=""
WPID=""
cleanup() {
	[ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null || true
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$NS-w" 2>/dev/null || true
	ip netns del "$LW" 2>/dev/null || true
	ip netns del "$VA" 2>/dev/null || true
	ip netns del "$VB" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
pin0() { if command -v taskset >/dev/null 2>&1; then taskset -c 0 "$@"; else "$@"; fi; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

ip netns add "$NS"
ip -n "$NS" link set lo up
# Started directly (not through a shell function) so that $! is tern itself.
TASKSET=""; command -v taskset >/dev/null 2>&1 && TASKSET="taskset -c 1"
$TASKSET ip netns exec "$NS" "$B/tern" serve --addr 10.9.0.2/24 discard:9 source:19 \
	--bytes "$BYTES" --idle 0 --grace 0 >/dev/null 2>&1 &
TPID=$!
# The same server writing one packet per writev, in a namespace of its own.
ip netns add "$NS-w"
ip -n "$NS-w" link set lo up
$TASKSET ip netns exec "$NS-w" "$B/tern" serve --addr 10.9.0.2/24 source:19 --tun-io writev \
	--bytes "$BYTES" --idle 0 --grace 0 >/dev/null 2>&1 &
WPID=$!
for ns in "$NS" "$NS-w"; do
	i=0
	until ip -n "$ns" -4 addr show 2>/dev/null | grep -q 10.9.0.1; do
		i=$((i + 1)); [ $i -gt 200 ] && { echo "tern serve did not come up"; exit 1; }
		sleep 0.05
	done
done
# lwIP's anchor on a TUN device against the kernel, 4 s each way (its own pinning: lwIP on
# CPU 1, the kernel's socket thread on CPU 0).
LWB="$B/bench/lwipbench"
lwip_tun() {
	[ -x "$LWB" ] || return 0
	ip netns add "$LW" 2>/dev/null || return 0
	ip netns exec "$LW" "$LWB" "$1" 4 2>/dev/null | field gbps
	ip netns del "$LW"
}

ip netns add "$VA"
ip netns add "$VB"
ip link add tbv0 netns "$VA" type veth peer name tbv1 netns "$VB"
ip -n "$VA" addr add 10.10.0.1/24 dev tbv0
ip -n "$VB" addr add 10.10.0.2/24 dev tbv1
ip -n "$VA" link set tbv0 up
ip -n "$VB" link set tbv1 up
ip -n "$VA" link set lo up
ip -n "$VB" link set lo up

# The kernel's receive processing of what tern writes runs inside tern's write() call, on
# tern's CPU, unless receive packet steering hands it to another CPU (rps_cpus): measured
# both ways. (ip netns exec mounts the namespace's own /sys.)
RPS=/sys/class/net/tern0/queues/rx-0/rps_cpus
rps() { ip netns exec "$NS" sh -c "echo $1 > $RPS"; }
# The veth reference twice: as configured (TSO, GSO and GRO on: 64 KiB packets inside the
# kernel) and, when ethtool is there, with them off, so that it too moves 1500-byte packets.
vethoff() {
	command -v ethtool >/dev/null 2>&1 || return 1
	ip netns exec "$VA" ethtool -K tbv0 tso "$1" gso "$1" gro "$1" >/dev/null 2>&1 &&
		ip netns exec "$VB" ethtool -K tbv1 tso "$1" gso "$1" gro "$1" >/dev/null 2>&1
}
veth_run() {
	$TASKSET ip netns exec "$VB" "$B/bench/kbulk" sink 5001 >/tmp/tern-bench-sink.$$ &
	SPID=$!
	pin0 ip netns exec "$VA" "$B/bench/kbulk" send 10.10.0.2 5001 "$BYTES" >/dev/null
	wait $SPID
	field gbps </tmp/tern-bench-sink.$$
	rm -f /tmp/tern-bench-sink.$$
}
in=""; out=""; outw=""; outr=""; veth=""; vetho=""; lwtx=""; lwrx=""
for r in $(seq "$ROUNDS"); do
	in="$in $(pin0 ip netns exec "$NS" "$B/bench/kbulk" send 10.9.0.2 9 "$BYTES" | field gbps)"
	out="$out $(pin0 ip netns exec "$NS" "$B/bench/kbulk" recv 10.9.0.2 19 | field gbps)"
	outw="$outw $(pin0 ip netns exec "$NS-w" "$B/bench/kbulk" recv 10.9.0.2 19 | field gbps)"
	lwtx="$lwtx $(lwip_tun tun-tx)"
	lwrx="$lwrx $(lwip_tun tun-rx)"
	if rps 1 2>/dev/null; then
		outr="$outr $(pin0 ip netns exec "$NS" "$B/bench/kbulk" recv 10.9.0.2 19 | field gbps)"
		rps 0
	fi
	veth="$veth $(veth_run)"
	if vethoff off; then
		vetho="$vetho $(veth_run)"
		vethoff on
	fi
done
mi=$(echo "$in" | median); mo=$(echo "$out" | median); mv=$(echo "$veth" | median)
printf '%-46s median %7s Gbit/s   [%s ]\n' "kernel -> tern over TUN, MTU 1500" "$mi" "$in"
printf '%-46s median %7s Gbit/s   [%s ]\n' "tern -> kernel over TUN, MTU 1500" "$mo" "$out"
printf '%-46s median %7s Gbit/s   [%s ]\n' "tern -> kernel, --tun-io writev" "$(echo "$outw" | median)" "$outw"
if [ -n "$(echo $lwtx)" ]; then
	printf '%-46s median %7s Gbit/s   [%s ]\n' "lwIP -> kernel over TUN (anchor)" "$(echo "$lwtx" | median)" "$lwtx"
	printf '%-46s median %7s Gbit/s   [%s ]\n' "kernel -> lwIP over TUN (anchor)" "$(echo "$lwrx" | median)" "$lwrx"
fi
[ -n "$outr" ] && printf '%-46s median %7s Gbit/s   [%s ]\n' \
	"tern -> kernel, kernel's receive on CPU 0 (RPS)" "$(echo "$outr" | median)" "$outr"
printf '%-46s median %7s Gbit/s   [%s ]\n' "kernel -> kernel over veth, MTU 1500" "$mv" "$veth"
[ -n "$vetho" ] && printf '%-46s median %7s Gbit/s   [%s ]\n' \
	"kernel -> kernel over veth, TSO/GSO/GRO off" "$(echo "$vetho" | median)" "$vetho"
