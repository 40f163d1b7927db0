#!/bin/sh
# tern's bulk benchmark and lwIP's anchor, alternately, pinned to one CPU; medians of each.
set -e
B=${BUILD:-../build}/bench
ROUNDS=${ROUNDS:-5}
CPU=${CPU:-1}
pin() { if command -v taskset >/dev/null 2>&1; then taskset -c "$CPU" "$@"; else "$@"; fi; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
t15=""; t90=""; tzc=""; lw=""
for i in $(seq "$ROUNDS"); do
	t15="$t15 $(pin "$B/bulk" --mib 1024 --mtu 1500 | field gbps)"
	[ -x "$B/lwipbench" ] && lw="$lw $(pin "$B/lwipbench" bulk 1024 | field gbps)"
	t90="$t90 $(pin "$B/bulk" --mib 1024 --mtu 9000 | field gbps)"
	tzc="$tzc $(pin "$B/bulk" --mib 1024 --mtu 1500 --zc | field gbps)"
done
m15=$(echo $t15 | tr ' ' '\n' | median)
m90=$(echo $t90 | tr ' ' '\n' | median)
mzc=$(echo $tzc | tr ' ' '\n' | median)
echo "tern bulk, MTU 1500, send/recv:      median $m15 Gbit/s ($t15 )"
echo "tern bulk, MTU 1500, zero-copy:      median $mzc Gbit/s ($tzc )"
echo "tern bulk, MTU 9000, send/recv:      median $m90 Gbit/s ($t90 )"
if [ -n "$lw" ]; then
	ml=$(echo $lw | tr ' ' '\n' | median)
	echo "lwIP bulk, MTU 1500 (anchor):        median $ml Gbit/s ($lw )"
	echo "ratio tern/lwIP at MTU 1500:         $(echo "$m15 $ml" | awk '{printf "%.2f", $1/$2}')"
fi
