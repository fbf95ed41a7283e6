#!/bin/sh
# Instructions per mmapper_is_mapped call, counted by callgrind only inside
# the function (--toggle-collect; the caller's call and the PLT jump are not
# included).  Two runs with N1 and N2 calls: (I2 - I1) / (N2 - N1), so
# one-time costs (urcu-bp thread registration, ...) cancel.
#   usage: callgrind.sh PROBE      (LIBTOOL in the environment, from make)
set -e
probe=${1:?usage: callgrind.sh PROBE}
LIBTOOL=${LIBTOOL:-libtool}
N1=10000
N2=110000
if ! command -v valgrind >/dev/null 2>&1; then
    echo "bench-callgrind: valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi
out=bench/callgrind.out

instructions() {   # mode calls
    f=$out.$1.$2
    fn=mmapper_is_mapped
    case $1 in ensure|fresh) fn=mmapper_ensure_mapped ;; many) fn=mmapper_is_mapped_many ;; esac
    $LIBTOOL --mode=execute valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect=$fn --callgrind-out-file="$f" \
        "$probe" "$2" "$1" >"$f.log" 2>&1 || {
        echo "bench-callgrind: valgrind run failed, see $f.log" >&2
        exit 1
    }
    sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f"
}

for mode in hit miss many ensure fresh; do
    n1=$N1 n2=$N2
    # A fresh map costs some thousand instructions and two system calls:
    # fewer calls measure it as well.
    [ $mode = fresh ] && n1=$((N1 / 10)) n2=$((N2 / 10))
    i1=$(instructions $mode $n1)
    i2=$(instructions $mode $n2)
    per_call=$(awk -v a="$i1" -v b="$i2" -v n1=$n1 -v n2=$n2 \
        'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
    case $mode in
    hit) echo "is_mapped_instructions: $per_call"; hit=$per_call ;;
    miss) echo "is_mapped_miss_instructions: $per_call" ;;
    many) echo "is_mapped_many_instructions: $per_call (per address, batches of 64)" ;;
    ensure) echo "fast_path_instructions: $per_call (ensure_mapped of one Mapped page)" ;;
    fresh) echo "fresh_map_instructions: $per_call (ensure_mapped of one fresh chunk, user space only)" ;;
    esac
done
awk -v x="$hit" 'BEGIN { if (x <= 40) printf "target_is_mapped_instructions: met: %s <= 40\n", x;
                         else printf "target_is_mapped_instructions: missed: %s > 40\n", x }'
echo "(annotate: callgrind_annotate $out.hit.$N2)"
