#!/bin/sh
# Instructions per 1460-byte data segment, both stacks together, counted by callgrind in the
# measured loop only (--toggle-collect=bench_loop), for each variant of the bulk benchmark.
# glibc's memcpy would switch to `rep movsb` above 2 KiB, which callgrind counts once per
# byte; the tunable keeps it on the vector loop, so the count reflects the work done.
set -e
B=${BUILD:-../build}/bench
MIB=${MIB:-32}
export GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=2147483647
count() {
	out=$(mktemp)
	valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=bench_loop \
		"$B/bulk" --mib "$MIB" "$@" >"$out.res" 2>"$out.err"
	ir=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$out.err" | tr -d ,)
	segs=$(sed -n 's/.* segs_AtoB=\([0-9]*\).*/\1/p' "$out.res")
	printf '%-40s %6.0f instructions per data segment (%s in the loop, %s segments)\n' \
		"$*" "$(echo "$ir $segs" | awk '{print $1/$2}')" "$ir" "$segs"
	rm -f "$out" "$out.res" "$out.err"
}
count --mtu 1500
count --mtu 1500 --zc
count --mtu 1500 --offload
count --mtu 1500 --offload --zc
count --mtu 1500 --nobatch
if [ -x "$B/lwipbench" ]; then
	out=$(mktemp)
	valgrind --tool=callgrind --callgrind-out-file="$out" "$B/lwipbench" bulk "$MIB" >"$out.res" 2>"$out.err"
	ir=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$out.err" | tr -d ,)
	pk=$(sed -n 's/.* pkts_AtoB=\([0-9]*\).*/\1/p' "$out.res")
	printf '%-40s %6.0f instructions per data segment (whole program, %s segments)\n' \
		"lwIP anchor" "$(echo "$ir $pk" | awk '{print $1/$2}')" "$pk"
	rm -f "$out" "$out.res" "$out.err"
fi
