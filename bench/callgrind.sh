#!/bin/sh
# Instructions per 1460-byte data segment, both stacks together, counted by callgrind in the
# measured loop only (--toggle-collect=bench_loop); inclusive costs of the input and output
# paths per data segment too.
set -e
B=${BUILD:-../build}/bench
MIB=${MIB:-64}
out=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --toggle-collect=bench_loop \
	"$B/bulk" --mib "$MIB" --mtu 1500 ${ZC:+--zc} >"$out/res" 2>"$out/err"
segs=$(sed -n 's/.* segs_AtoB=\([0-9]*\).*/\1/p' "$out/res")
total=$(callgrind_annotate "$out/cg.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) *(100.0%) *PROGRAM TOTALS.*/\1/p' | tr -d ,)
[ -n "$total" ] || total=$(callgrind_annotate "$out/cg.out" | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "data segments: $segs; instructions in the loop: $total"
echo "instructions per data segment (both ends): $(echo "$total $segs" | awk '{printf "%.0f", $1/$2}')"
callgrind_annotate --inclusive=yes "$out/cg.out" 2>/dev/null | awk -v s="$segs" '
	/tern_stack_input|tcp_output|tern_send |tern_recv |tern_csum_add|__memmove|memcpy|tcp_xmit|tern_tcp_parse|tern_stack_poll/ {
		n=$1; gsub(",","",n); printf "  %-60s %8.0f per segment\n", $0 ~ /\// ? substr($0, index($0,$2)) : $2, n/s }' | head -20
rm -rf "$out"
