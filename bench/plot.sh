#!/bin/sh
# make bench-plot: every table of the CSV as one panel of a PNG.
#   usage: plot.sh CSV PNG PLOT.GP
csv=${1:?usage: plot.sh CSV PNG PLOT.GP}
png=${2:?}
gp=${3:?}
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "bench-plot: gnuplot is not installed; install it (e.g. apt-get install gnuplot-nox)" >&2
    exit 1
fi
if [ ! -s "$csv" ]; then
    echo "bench-plot: $csv not found; run 'make bench' first (it writes the CSV)" >&2
    exit 1
fi
# Table names, and for table i the implementations it has (impls1, ...),
# each in order of first appearance.
vars=$(awk -F, 'NR > 1 {
        if (!($1 in t)) { t[$1] = ++n; name[n] = $1 }
        if (!(($1, $2) in seen)) { seen[$1, $2] = 1; list[t[$1]] = list[t[$1]] " " $2 }
    }
    END {
        for (i = 1; i <= n; i++) { tables = tables " " name[i]; printf "impls%d=\"%s\"; ", i, list[i] }
        printf "tables=\"%s\"", tables
    }' "$csv")
gnuplot -e "csv='$csv'; png='$png'; $vars" "$gp" || {
    echo "bench-plot: gnuplot failed" >&2
    exit 1
}
echo "bench-plot: wrote $png"
