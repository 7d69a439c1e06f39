# bypax bench plots (gnuplot 5.4, pngcairo). bench/suite.py writes the data
# files and a vars.gp naming them, then runs: gnuplot vars.gp bench/plot.gp
#
# vars.gp sets: lat_png, batch_png (outputs); nlat, LF[i], LT[i] (open-loop
# data files and their titles: committed ops/s, p50, p99, p99.9 us);
# closed_file (closed-loop sweep: ops/s, p50, p99, clients); etcd_file,
# etcd_title (writes/s, p50, p99, connections); batch_file (batch, e2e
# ops/s, leader cycles/op, in-memory requests/s); batch_clients; subtitle
# (machine, cores, configuration, date).

set terminal pngcairo size 1280,900 font "DejaVu Sans,11" linewidth 1 noenhanced
set datafile missing "NaN"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set border lc rgb "#555555"

# ---- Latency versus throughput -------------------------------------------
set output lat_png
set title "bypax: latency vs committed throughput (open loop at fixed offered rates; net_ring, one process)\n".subtitle
set logscale xy
set format x "%.0s%c"
set ytics ("1 µs" 1, "10 µs" 10, "100 µs" 100, "1 ms" 1000, "10 ms" 10000, \
	"100 ms" 100000, "1 s" 1000000, "10 s" 10000000)
set xlabel "committed ops/s (log)"
set ylabel "latency from the scheduled send time (log)"
set key below left vertical Left reverse samplen 2 maxcols 2 width 2 font ",10"
set xrange [*:*]
set yrange [*:*]

cmd = "plot"
sep = " "
do for [i = 1:nlat] {
	cmd = cmd.sep.sprintf("'%s' using 1:3 with linespoints lw 2 pt 7 ps 1.1 lc %d title '%s: p99'", LF[i], i, LT[i])
	sep = ", "
	cmd = cmd.sep.sprintf("'%s' using 1:2 with linespoints lw 1 dt 2 pt 6 ps 0.9 lc %d title '%s: p50'", LF[i], i, LT[i])
}
if (closed_file ne "") {
	cmd = cmd.sep.sprintf("'%s' using 1:3 with points pt 4 ps 1.2 lc rgb '#777777' title 'closed loop sweep (3 replicas, 16 B, batch<=64): p99, latency from the actual send'", closed_file)
	sep = ", "
}
if (etcd_file ne "") {
	cmd = cmd.sep.sprintf("'%s' using 1:3 with points pt 5 ps 1.8 lc rgb 'black' title '%s: p99'", etcd_file, etcd_title)
	sep = ", "
	cmd = cmd.sep.sprintf("'%s' using 1:2 with points pt 4 ps 1.8 lc rgb 'black' title '%s: p50'", etcd_file, etcd_title)
}
if (sep ne " ") {
	eval cmd
} else {
	print "plot.gp: no latency data: ".lat_png." not drawn"
}

# ---- Throughput versus batch size -----------------------------------------
set terminal pngcairo size 1280,800 font "DejaVu Sans,11" linewidth 1 noenhanced
set output batch_png
set ytics auto
set title "bypax: throughput vs batch size limit (3 replicas, 16 B PUTs)\n".subtitle
unset logscale
set logscale x 2
set logscale y
set logscale y2
set format x "%.0f"
set format y "%.0s%c"
set format y2 "%.0f"
set xrange [0.8:80]
set xtics (1, 2, 4, 8, 16, 32, 64)
set ytics nomirror
set ytics add ("20k" 2e4, "50k" 5e4, "200k" 2e5, "500k" 5e5, "2M" 2e6, "5M" 5e6)
set y2tics
set y2tics add (150, 200, 300, 500, 700, 1500, 2000, 3000, 5000, 7000, 15000, 20000, 30000)
set xlabel "batch size limit: requests per slot (--batch / batch_requests_max)"
set ylabel "committed requests/s (log)"
set y2label "leader CPU cycles per committed op (log)"
set key inside bottom right vertical Left reverse samplen 2 font ",10" box opaque
if (!have_batch) {
	print "plot.gp: no batch data: ".batch_png." not drawn"
	exit
}
plot batch_file using 1:2 with linespoints lw 2 pt 7 ps 1.2 lc 1 \
	title sprintf("end to end: bypax-cluster, net_ring, %s clients (ops/s, left)", batch_clients), \
     batch_file using 1:4 with linespoints lw 2 pt 5 ps 1.2 lc 2 \
	title "in memory: px_step only, 3 replicas on 1 core, no network (requests/s, left)", \
     batch_file using 1:3 axes x1y2 with linespoints lw 1 dt 2 pt 6 ps 1.1 lc 1 \
	title "end to end: leader cycles per op (right)"
