# One panel per benchmark table: ns/op against threads, one line per
# implementation, both axes logarithmic.  Variables from plot.sh: csv, png,
# tables (space-separated names) and impls1, impls2, ... (each table's
# implementations).
set terminal pngcairo size 1800,1500 font ",9"
set output png
n = words(tables)
set multiplot layout ceil(n / 3.0), 3 title "mmbench: ns/op (wall time / all ops) by thread count"
set logscale x 2
set logscale y
set xlabel "threads"
set ylabel "ns/op"
set key top left font ",8"
set grid
# Rows of one (table, implementation), in thread order as the CSV has them.
rows(t, imp) = sprintf("< awk -F, '$1 == \"%s\" && $2 == \"%s\" { print $3, $4 }' '%s'", t, imp, csv)
do for [i = 1:n] {
    t = word(tables, i)
    impls = value(sprintf("impls%d", i))
    set title t
    plot for [imp in impls] rows(t, imp) using 1:2 with linespoints title imp
}
unset multiplot
