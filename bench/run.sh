#!/bin/sh
# tern's bulk benchmark and lwIP's anchor, alternately, pinned to one CPU; medians of each.
set -e
B=${BUILD:-../build}/bench
ROUNDS=${ROUNDS:-5}
CPU=${CPU:-1}
pin() { if command -v taskset >/dev/null 2>&1; then taskset -c "$CPU" "$@"; else "$@"; fi; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# Each variant: its name and the bulk options; lwIP's anchor runs between them.
run_tern() { pin "$B/bulk" --mib 1024 "$@" | field gbps; }
a=""; b=""; c=""; d=""; e=""; f=""; lw=""
for i in $(seq "$ROUNDS"); do
	a="$a $(run_tern --mtu 1500)"
	[ -x "$B/lwipbench" ] && lw="$lw $(pin "$B/lwipbench" bulk 1024 | field gbps)"
	b="$b $(run_tern --mtu 1500 --zc)"
	c="$c $(run_tern --mtu 1500 --offload)"
	d="$d $(run_tern --mtu 1500 --offload --zc)"
	e="$e $(run_tern --mtu 9000)"
	f="$f $(run_tern --mtu 9000 --offload --zc)"
done
med() { echo $1 | tr ' ' '\n' | median; }
ml=""; [ -n "$lw" ] && ml=$(med "$lw")
show() {
	m=$(med "$2")
	r=""; [ -n "$ml" ] && r=$(echo "$m $ml" | awk '{printf "  (%.2fx lwIP)", $1/$2}')
	printf '%-46s median %7s Gbit/s%s   [%s ]\n' "$1" "$m" "$r" "$2"
}
show "tern, MTU 1500, send/recv, sw checksums" "$a"
show "tern, MTU 1500, zero-copy recv, sw checksums" "$b"
show "tern, MTU 1500, send/recv, csum offload" "$c"
show "tern, MTU 1500, zero-copy, csum offload" "$d"
show "tern, MTU 9000, send/recv, sw checksums" "$e"
show "tern, MTU 9000, zero-copy, csum offload" "$f"
[ -n "$ml" ] && printf '%-46s median %7s Gbit/s   [%s ]\n' "lwIP anchor, MTU 1500, sw checksums" "$ml" "$lw"
exit 0
