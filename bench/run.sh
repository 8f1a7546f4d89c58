#!/usr/bin/env bash
# bench/run.sh - vigil against Debian's mosquitto, same run, same parameters.
#
#   bench/run.sh [idle|ping|silent|fanout|all]  (default all; `make bench` runs all)
#
# Scenarios (each against a fresh broker, vigil first, then mosquitto):
#   idle    BENCH_CONNS connections with keepalive BENCH_KEEPALIVE held for BENCH_IDLE_S:
#           broker RSS per connection (VmRSS after connecting minus before) and CPU/s.
#   ping    the same connections each send PINGREQ every BENCH_PING_INTERVAL s for
#           BENCH_PING_S: PINGRESPs per second and broker CPU per 1000 pings.
#   silent  BENCH_SILENT_CONNS clients with keepalive BENCH_SILENT_K and a will fall
#           silent (socket open, nothing sent or read): lateness of each will after
#           last packet + 1.5 x K, as seen by an observer subscribed to will/#.
#   fanout  BENCH_FANOUT_CONNS clients: BENCH_FANOUT_SUBS subscribe to bench/#, the others
#           each publish one QoS 0 message (64 B) every BENCH_FANOUT_INTERVAL s for
#           BENCH_PING_S: deliveries per second and broker CPU per 1000 deliveries.
#   fanin   QoS 1 fan-in (bench/fanin.c): BENCH_FANIN_PUBS publishers, each with
#           BENCH_FANIN_WINDOW PUBLISHes in flight, one subscriber at QoS 1, for BENCH_FANIN_S;
#           persistence off (clean subscriber), then on (persistent subscriber): messages
#           per second delivered, loss and duplicates after the drain, CPU per 1000 messages.
#   recovery BENCH_RET_N retained messages published at QoS 1 with persistence on; vigil is
#           killed with SIGKILL, mosquitto stopped with SIGTERM (it saves only then); start-up
#           time to the listener and to the first CONNACK (bench/recovery.py); store bytes
#           per retained message; then BENCH_QUEUED_N QoS 1 messages queued for an offline
#           persistent session: store bytes per queued message.
# Env: BENCH_CONNS (19000), BENCH_QUICK=1 (1000 connections, 5 s windows), BENCH_KEEPALIVE (60),
#   BENCH_IDLE_S (30), BENCH_PING_S (30), BENCH_PING_INTERVAL (1), BENCH_SILENT_CONNS (=CONNS),
#   BENCH_SILENT_K (2), BENCH_MQTT_VERSION (4 = 3.1.1, or 5), BENCH_RATE (connects/s, 5000),
#   BENCH_OUT (table file), VIGIL, MOSQUITTO, LOADGEN (binaries), BENCH_NO_BUILD=1.
# CPU is the broker's utime+stime (/proc/PID/stat, all threads); the loadgen runs on the same
# host, so figures compare the brokers with each other, not with other machines.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SCEN=${1:-all}
case $SCEN in idle | ping | silent | fanout | fanin | recovery | all) ;; *)
	echo "usage: $0 [idle|ping|silent|fanout|fanin|recovery|all]" >&2
	exit 2
	;;
esac

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	CONNS=${BENCH_CONNS:-1000} IDLE_S=${BENCH_IDLE_S:-5} PING_S=${BENCH_PING_S:-5}
else
	CONNS=${BENCH_CONNS:-19000} IDLE_S=${BENCH_IDLE_S:-30} PING_S=${BENCH_PING_S:-30}
fi
KEEPALIVE=${BENCH_KEEPALIVE:-60}
PING_INTERVAL=${BENCH_PING_INTERVAL:-1}
SILENT_CONNS=${BENCH_SILENT_CONNS:-$CONNS}
SILENT_K=${BENCH_SILENT_K:-2}
FANOUT_CONNS=${BENCH_FANOUT_CONNS:-2000}
FANOUT_SUBS=${BENCH_FANOUT_SUBS:-10}
FANOUT_INTERVAL=${BENCH_FANOUT_INTERVAL:-0.2}
FANIN_PUBS=${BENCH_FANIN_PUBS:-50}
FANIN_WINDOW=${BENCH_FANIN_WINDOW:-8}
if [ "$QUICK" = 1 ]; then
	FANIN_S=${BENCH_FANIN_S:-3} RET_N=${BENCH_RET_N:-10000} QUEUED_N=${BENCH_QUEUED_N:-10000}
	FANIN_RUNS=${BENCH_FANIN_RUNS:-1}
else
	FANIN_S=${BENCH_FANIN_S:-10} RET_N=${BENCH_RET_N:-100000} QUEUED_N=${BENCH_QUEUED_N:-100000}
	FANIN_RUNS=${BENCH_FANIN_RUNS:-3}
fi
FANIN=${FANIN:-$ROOT/build/bench/fanin}
VERSION=${BENCH_MQTT_VERSION:-4}
RATE=${BENCH_RATE:-5000}
VIGIL=${VIGIL:-$ROOT/vigil}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
LOADGEN=${LOADGEN:-$ROOT/build/bench/loadgen}
if [ -n "${BENCH_OUT:-}" ]; then
	OUT=$BENCH_OUT
elif [ "$QUICK" != 1 ] && [ "$SCEN" = all ]; then
	OUT=$HERE/RESULTS.md
else
	OUT=$ROOT/build/bench/RESULTS-$SCEN$([ "$QUICK" = 1 ] && echo -quick).md
fi
mkdir -p "$(dirname "$OUT")"

# Each process gets the hard fd limit (brokers and loadgen are separate processes).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if [ "$((CONNS + 64))" -gt "$NOFILE" ] || [ "$((SILENT_CONNS + 64))" -gt "$NOFILE" ]; then
	echo "run.sh: $CONNS connections need more than ulimit -n $NOFILE; lower BENCH_CONNS" >&2
	exit 2
fi

TMP=$(mktemp -d /tmp/vigil-bench.XXXXXX)
BPID="" LPID=""
cleanup() {
	[ -n "$LPID" ] && kill -TERM "$LPID" 2>/dev/null
	[ -n "$BPID" ] && kill -TERM "$BPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# ---- build ----
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	make -s -C "$ROOT" build/bench/loadgen build/bench/fanin >&2 || {
		log "run.sh: cannot build loadgen"
		exit 1
	}
	if [ "$VIGIL" = "$ROOT/vigil" ]; then
		make -s -C "$ROOT" vigil >&2 || log "run.sh: vigil does not build; using $VIGIL if present"
	fi
fi
[ -x "$LOADGEN" ] || {
	log "run.sh: no loadgen at $LOADGEN"
	exit 1
}
BROKERS=()
if [ -x "$VIGIL" ]; then BROKERS+=(vigil); else log "run.sh: no vigil binary at $VIGIL: mosquitto only"; fi
if [ -x "$MOSQUITTO" ]; then BROKERS+=(mosquitto); else log "run.sh: no $MOSQUITTO: vigil only"; fi
[ ${#BROKERS[@]} -gt 0 ] || exit 1

# ---- helpers ----
now_s() { date +%s.%N; }

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# utime+stime of the whole process in seconds (fields 14, 15 after the "(comm)").
CLK_TCK=$(getconf CLK_TCK)
cpu_s() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo 0
		return
	}
	s=${s##*) }
	awk -v t="$CLK_TCK" '{printf "%.4f", ($12 + $13) / t}' <<<"$s"
}

calc() { awk "BEGIN { x = $1; printf \"%.${2:-3}f\", x }" 2>/dev/null || echo "-"; }

# Sleeps without forking (a read that times out on a pipe nobody writes), so polling does not
# steal CPU from the broker being measured.
exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u "$NAPFD" _ || true; }

# wait_for FILE PATTERN TIMEOUT_S: 0 when a line matches (regex), 1 on timeout or loadgen exit.
wait_for() {
	local file=$1 pat=$2 n=$(($3 * 50)) line
	while [ "$n" -gt 0 ]; do
		if [ -f "$file" ]; then
			while IFS= read -r line; do
				[[ $line =~ $pat ]] && return 0
			done <"$file"
		fi
		if [ -n "$LPID" ] && ! kill -0 "$LPID" 2>/dev/null; then
			while IFS= read -r line; do
				[[ $line =~ $pat ]] && return 0
			done <"$file"
			return 1
		fi
		nap 0.02
		n=$((n - 1))
	done
	return 1
}

kv() { sed -n "s/^$2=//p" "$1" | tail -n 1; }

# write_conf NAME [PERSIST_DIR [EXTRA_LINE...]]: the config start_broker uses.
write_conf() {
	local name=$1 pdir=${2:-} conf=$TMP/$1.conf
	shift 2 2>/dev/null || shift $#
	BPORT=$(free_port)
	cat >"$conf" <<-EOF
		# minimal equivalent config, written by bench/run.sh
		user root
		persistence $([ -n "$pdir" ] && echo true || echo false)
		$([ -n "$pdir" ] && echo "persistence_location $pdir/")
		log_dest stderr
		log_type error
		max_keepalive 65535
		listener $BPORT 127.0.0.1
		allow_anonymous true
		max_connections -1
	EOF
	local l
	for l in "$@"; do echo "$l" >>"$conf"; done
	: >"$TMP/$name.log"
}

start_broker() {
	local name=$1 bin conf=$TMP/$1.conf deadline
	[ "$name" = vigil ] && bin=$VIGIL || bin=$MOSQUITTO
	[ "${KEEP_CONF:-0}" = 1 ] || write_conf "$name"
	"$bin" -c "$conf" >>"$TMP/$name.log" 2>&1 &
	BPID=$!
	deadline=$(calc "$(now_s) + 5" 3)
	until ss -Hltn "sport = :$BPORT" 2>/dev/null | grep -q .; do
		if ! kill -0 "$BPID" 2>/dev/null || [ "$(calc "$(now_s) > $deadline" 0)" = 1 ]; then
			log "run.sh: $name did not start; its log:"
			sed 's/^/  /' "$TMP/$name.log" >&2
			stop_broker
			return 1
		fi
		sleep 0.05
	done
	sleep 0.3
}

stop_broker() {
	[ -n "$BPID" ] || return 0
	kill -TERM "$BPID" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "$BPID" 2>/dev/null || break
		nap 0.05
	done
	kill -KILL "$BPID" 2>/dev/null
	wait "$BPID" 2>/dev/null
	BPID=""
}

stop_loadgen() {
	[ -n "$LPID" ] || return 0
	kill -TERM "$LPID" 2>/dev/null
	wait "$LPID" 2>/dev/null
	LPID=""
}

declare -A R # R[broker.metric] = value

# run_window BROKER SCEN OUTFILE LOADGEN_ARGS...: runs loadgen, samples the broker at the
# window markers. Sets R[b.rss0_kb] R[b.rss1_kb] R[b.cpu_s] R[b.win_s].
run_window() {
	local b=$1 sc=$2 out=$3 c0 c1 t0 t1 limit
	shift 3
	R[$b.$sc.rss0_kb]=$(rss_kb "$BPID")
	"$LOADGEN" -p "$BPORT" -s "$sc" -V "$VERSION" -r "$RATE" -q "$@" >"$out" 2>&1 &
	LPID=$!
	limit=$(calc "$CONNS / $RATE * 2 + 40" 0)
	if ! wait_for "$out" '^phase=window_start' "$limit"; then
		log "run.sh: $b/$sc: loadgen did not reach its window:"
		sed 's/^/  /' "$out" >&2
		stop_loadgen
		return 1
	fi
	t0=$(now_s) c0=$(cpu_s "$BPID")
	R[$b.$sc.rss1_kb]=$(rss_kb "$BPID")
	if ! wait_for "$out" '^phase=window_end' 120; then
		log "run.sh: $b/$sc: no window end"
		stop_loadgen
		return 1
	fi
	t1=$(now_s) c1=$(cpu_s "$BPID")
	R[$b.$sc.cpu_s]=$(calc "$c1 - $c0" 4)
	R[$b.$sc.win_s]=$(calc "$t1 - $t0" 3)
	wait_for "$out" '^phase=done' 30
	if ! kill -0 "$BPID" 2>/dev/null; then
		log "run.sh: $b died during $sc"
		return 1
	fi
	stop_loadgen
	return 0
}

scen_idle() {
	local b=$1 out=$TMP/$1.idle.out n
	run_window "$b" idle "$out" -n "$CONNS" -k "$KEEPALIVE" -d "$IDLE_S" -g 60 || return 1
	n=$(kv "$out" connected)
	R[$b.idle.connected]=$n
	R[$b.idle.connect_s]=$(kv "$out" connect_secs)
	R[$b.idle.dropped]=$(kv "$out" dropped_by_broker)
	R[$b.idle.rss_per_conn]=$(calc "(${R[$b.idle.rss1_kb]} - ${R[$b.idle.rss0_kb]}) * 1024 / ($n > 0 ? $n : 1)" 0)
	R[$b.idle.rss_mib]=$(calc "${R[$b.idle.rss1_kb]} / 1024" 1)
	R[$b.idle.cpu_ms_per_s]=$(calc "${R[$b.idle.cpu_s]} * 1000 / ${R[$b.idle.win_s]}" 2)
}

scen_ping() {
	local b=$1 out=$TMP/$1.ping.out p
	run_window "$b" ping "$out" -n "$CONNS" -k "$KEEPALIVE" -i "$PING_INTERVAL" -d "$PING_S" -g 60 ||
		return 1
	p=$(kv "$out" pongs_in_window)
	R[$b.ping.connected]=$(kv "$out" connected)
	R[$b.ping.dropped]=$(kv "$out" dropped_by_broker)
	R[$b.ping.pings_per_s]=$(kv "$out" pings_per_sec)
	R[$b.ping.target_per_s]=$(kv "$out" ping_target_per_sec)
	R[$b.ping.rtt_p50]=$(kv "$out" rtt_p50_ms)
	R[$b.ping.rtt_p99]=$(kv "$out" rtt_p99_ms)
	R[$b.ping.cpu_ms_per_1k]=$(calc "${R[$b.ping.cpu_s]} * 1000 / (($p > 0 ? $p : 1) / 1000)" 3)
	R[$b.ping.cpu_ms_per_s]=$(calc "${R[$b.ping.cpu_s]} * 1000 / ${R[$b.ping.win_s]}" 1)
}

scen_silent() {
	local b=$1 out=$TMP/$1.silent.out k
	run_window "$b" silent "$out" -n "$SILENT_CONNS" -k "$SILENT_K" -g 0 || return 1
	R[$b.silent.connected]=$(kv "$out" connected)
	for k in wills_expected wills_received wills_duplicate wills_early lateness_min_ms \
		lateness_p50_ms lateness_p90_ms lateness_p99_ms lateness_max_ms; do
		R[$b.silent.$k]=$(kv "$out" $k)
	done
	R[$b.silent.cpu_ms]=$(calc "${R[$b.silent.cpu_s]} * 1000" 0)
}

scen_fanout() {
	local b=$1 out=$TMP/$1.fanout.out d
	run_window "$b" fanout "$out" -n "$FANOUT_CONNS" -b "$FANOUT_SUBS" -i "$FANOUT_INTERVAL" -d "$PING_S" \
		-g 0 || return 1
	d=$(kv "$out" delivered_in_window)
	R[$b.fanout.delivered_per_s]=$(kv "$out" delivered_per_sec)
	R[$b.fanout.target_per_s]=$(kv "$out" delivery_target_per_sec)
	R[$b.fanout.cpu_ms_per_1k]=$(calc "${R[$b.fanout.cpu_s]} * 1000 / (($d > 0 ? $d : 1) / 1000)" 3)
	R[$b.fanout.cpu_ms_per_s]=$(calc "${R[$b.fanout.cpu_s]} * 1000 / ${R[$b.fanout.win_s]}" 1)
}

# fanin_once BROKER off|on: one fan-in run against a fresh broker (unlimited in-flight and queue
# for both brokers, so nothing is dropped and the figure is the brokers' own speed).
fanin_once() {
	local b=$1 mode=$2 out=$TMP/$1.fanin_$2.out pdir="" c0 c1 t0 t1 d
	if [ "$mode" = on ]; then
		pdir=$TMP/data-$b-fanin
		rm -rf "$pdir" && mkdir -p "$pdir"
	fi
	write_conf "$b" "$pdir" "max_inflight_messages 0" "max_queued_messages 0"
	KEEP_CONF=1 start_broker "$b" || return 1
	"$FANIN" -p "$BPORT" -P "$FANIN_PUBS" -w "$FANIN_WINDOW" -W 1 -d "$FANIN_S" -D 30 -V "$VERSION" \
		$([ "$mode" = on ] && echo -c) >"$out" 2>&1 &
	LPID=$!
	if wait_for "$out" '^phase=window_start' 40; then
		t0=$(now_s) c0=$(cpu_s "$BPID")
		wait_for "$out" '^phase=window_end' $((${FANIN_S%.*} + 30))
		t1=$(now_s) c1=$(cpu_s "$BPID")
	fi
	wait "$LPID" 2>/dev/null
	LPID=""
	cp "$TMP/$b.log" "$LOGS/$b.fanin_$mode.log" 2>/dev/null
	stop_broker
	d=$(kv "$out" delivered_in_window)
	[ -n "$d" ] || return 1
	R[$b.fanin_$mode.msgs_per_s]=$(kv "$out" delivered_per_sec)
	R[$b.fanin_$mode.lost]=$(kv "$out" lost)
	R[$b.fanin_$mode.dups]=$(kv "$out" duplicates)
	R[$b.fanin_$mode.cpu_us_per_msg]=$(calc "($c1 - $c0) * 1000000 / ($d > 0 ? $d : 1)" 2)
	R[$b.fanin_$mode.cpu_ms_per_s]=$(calc "($c1 - $c0) * 1000 / ($t1 - $t0)" 0)
	rm -rf "$pdir"
}

# The fan-in figures of one broker swing by a third from run to run on a shared 2-core machine
# (mosquitto's most: 47-73k msgs/s in one hour), so the scenario runs FANIN_RUNS rounds. A round
# runs each broker once per mode, back to back (vigil first in odd rounds, mosquitto first in even
# ones); the table shows each broker's median and the median of the rounds' own ratios, and
# lists every round's ratio.
FANIN_KEYS="msgs_per_s lost dups cpu_us_per_msg cpu_ms_per_s"
scen_fanin_rounds() {
	local r mode b k order
	for r in $(seq 1 "$FANIN_RUNS"); do
		order=("${BROKERS[@]}")
		[ $((r % 2)) = 0 ] && [ ${#BROKERS[@]} = 2 ] && order=("${BROKERS[1]}" "${BROKERS[0]}")
		for mode in off on; do
			for b in "${order[@]}"; do
				log "== fanin $mode, round $r of $FANIN_RUNS: $b (load average $(cut -d' ' -f1-3 /proc/loadavg))"
				for k in $FANIN_KEYS; do unset "R[$b.fanin_$mode.$k]"; done
				fanin_once "$b" "$mode" || R[$b.fanin_$mode.failed]=1
				for k in $FANIN_KEYS; do R[$b.fanin_$mode.$k.r$r]=${R[$b.fanin_$mode.$k]:--}; done
				cp "$TMP/$b.fanin_$mode.out" "$LOGS/$b.fanin_$mode.r$r.out" 2>/dev/null
			done
		done
	done
	for mode in off on; do
		for b in "${BROKERS[@]}"; do
			for k in msgs_per_s cpu_us_per_msg cpu_ms_per_s; do
				R[$b.fanin_$mode.$k]=$(for r in $(seq 1 "$FANIN_RUNS"); do echo "${R[$b.fanin_$mode.$k.r$r]}"; done | median)
			done
			for k in lost dups; do # must be 0 in every round: the worst round
				R[$b.fanin_$mode.$k]=$(for r in $(seq 1 "$FANIN_RUNS"); do echo "${R[$b.fanin_$mode.$k.r$r]}"; done | worst)
			done
		done
		R[fanin_$mode.ratios]=$(for r in $(seq 1 "$FANIN_RUNS"); do
			awk -v v="${R[vigil.fanin_$mode.msgs_per_s.r$r]:--}" -v m="${R[mosquitto.fanin_$mode.msgs_per_s.r$r]:--}" \
				'BEGIN { if (v + 0 > 0 && m + 0 > 0) printf "%.3g\n", v / m; else print "-" }'
		done | paste -sd' ')
		R[fanin_$mode.ratio]=$(echo "${R[fanin_$mode.ratios]}" | tr ' ' '\n' | median)
	done
}

# median of the numbers on stdin ("-" when there is none; "-" lines are skipped)
median() {
	grep -E '^[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "-"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.7g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# the largest number on stdin, "-" if a round has none
worst() { awk 'BEGIN { w = 0 } !/^[0-9.]+$/ { bad = 1; next } $1 > w { w = $1 } END { print bad ? "-" : w }'; }

# Bytes of a broker's store files in DIR (vigil: vigil.db and its WAL; mosquitto: mosquitto.db).
store_bytes() {
	local n=0 f
	for f in "$1"/vigil.db "$1"/vigil.db-wal "$1"/mosquitto.db; do
		[ -f "$f" ] && n=$((n + $(stat -c %s "$f")))
	done
	echo "$n"
}

# recovery: RET_N retained messages, then a crash (vigil: SIGKILL, which it survives by design;
# mosquitto: SIGTERM, since it writes mosquitto.db only on shutdown or autosave), then the
# start-up time with that state. Then the store size per message, retained and queued.
scen_recovery() {
	local b=$1 pdir=$TMP/data-$1-rec out=$TMP/$1.recovery.out bin per
	[ "$b" = vigil ] && bin=$VIGIL || bin=$MOSQUITTO
	per=$(((RET_N + FANIN_PUBS - 1) / FANIN_PUBS))
	rm -rf "$pdir" && mkdir -p "$pdir"
	write_conf "$b" "$pdir" "max_inflight_messages 0" "max_queued_messages 0"
	KEEP_CONF=1 start_broker "$b" || return 1
	"$FANIN" -p "$BPORT" -P "$FANIN_PUBS" -w "$FANIN_WINDOW" -m "$per" -r -d 300 -V "$VERSION" >"$out" 2>&1
	R[$b.rec.retained]=$(kv "$out" acked)
	if [ "$b" = vigil ]; then
		kill -KILL "$BPID"
		wait "$BPID" 2>/dev/null
		BPID=""
	else
		stop_broker
	fi
	R[$b.rec.bytes_crash]=$(store_bytes "$pdir")
	/usr/bin/python3 "$HERE/recovery.py" "$BPORT" 300 "$bin" -c "$TMP/$b.conf" >>"$out" 2>&1
	R[$b.rec.listen_s]=$(kv "$out" listen_s)
	R[$b.rec.connack_s]=$(kv "$out" connack_s)
	# recovery.py stopped it with SIGTERM: the store as it rests.
	R[$b.rec.bytes_per_retained]=$(calc "$(store_bytes "$pdir") / (${R[$b.rec.retained]:-0} > 0 ? ${R[$b.rec.retained]} : 1)" 1)
	rm -rf "$pdir" && mkdir -p "$pdir"
	# queued: a persistent subscriber subscribes and leaves; QUEUED_N QoS 1 messages wait for it.
	per=$(((QUEUED_N + FANIN_PUBS - 1) / FANIN_PUBS))
	write_conf "$b" "$pdir" "max_inflight_messages 0" "max_queued_messages 0"
	KEEP_CONF=1 start_broker "$b" || return 1
	local base
	base=$(store_bytes "$pdir")
	"$FANIN" -p "$BPORT" -P "$FANIN_PUBS" -w "$FANIN_WINDOW" -m "$per" -c -o -d 300 -V "$VERSION" >"$out.q" 2>&1
	R[$b.rec.queued]=$(kv "$out.q" acked)
	stop_broker
	R[$b.rec.bytes_per_queued]=$(calc "$(store_bytes "$pdir") / (${R[$b.rec.queued]:-0} > 0 ? ${R[$b.rec.queued]} : 1)" 1)
	cat "$out.q" >>"$out"
	rm -rf "$pdir"
	[ -n "${R[$b.rec.connack_s]}" ] && [ "${R[$b.rec.connack_s]}" != - ]
}

# Raw loadgen output and broker logs of the last run stay in build/bench/logs/.
LOGS=$ROOT/build/bench/logs
mkdir -p "$LOGS"

run_scenario() {
	local sc=$1 b
	if [ "$sc" = fanin ]; then
		scen_fanin_rounds
		return
	fi
	for b in "${BROKERS[@]}"; do
		log "== $sc: $b (load average $(cut -d' ' -f1-3 /proc/loadavg))"
		if [ "$sc" = recovery ]; then
			"scen_$sc" "$b" || R[$b.$sc.failed]=1 # they start their own brokers
		elif start_broker "$b"; then
			"scen_$sc" "$b" || R[$b.$sc.failed]=1
			stop_broker
		else
			R[$b.$sc.failed]=1
		fi
		cp "$TMP/$b.$sc.out" "$LOGS/$b.$sc.out" 2>/dev/null
		cp "$TMP/$b.log" "$LOGS/$b.$sc.log" 2>/dev/null
	done
}

# ---- run ----
SCENS=(idle ping silent fanout fanin recovery)
[ "$SCEN" = all ] || SCENS=("$SCEN")
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for sc in "${SCENS[@]}"; do run_scenario "$sc"; done

# ---- report ----
val() { local v=${R[$1]:-}; [ -n "$v" ] && echo "$v" || echo "-"; }
ratio() {
	local v m
	v=$(val "vigil.$1") m=$(val "mosquitto.$1")
	if [[ $v == - || $m == - ]] || [ "$(calc "$m == 0" 0)" = 1 ]; then
		echo "-"
	else
		awk -v v="$v" -v m="$m" 'BEGIN { printf "%.3g", v / m }'
	fi
}
row() { printf '| %s | %s | %s | %s |\n' "$2" "$(val "vigil.$1")" "$(val "mosquitto.$1")" "$(ratio "$1")"; }
# fan-in rows: each broker's median, and the median of the rounds' ratios / every round's ratio
rowm() { printf '| %s | %s | %s | %s |\n' "$2" "$(val "vigil.$1.msgs_per_s")" "$(val "mosquitto.$1.msgs_per_s")" "$(val "$1.ratio")"; }
rowr() { printf '| %s | - | - | %s |\n' "$2" "$(val "$1.ratios")"; }

table() {
	local sc
	echo "| metric | vigil | mosquitto | vigil/mosquitto |"
	echo "|---|---|---|---|"
	for sc in "${SCENS[@]}"; do
		case $sc in
		idle)
			row idle.connected "idle: connections held (of $CONNS)"
			row idle.connect_s "idle: time to connect all (s)"
			row idle.rss_per_conn "idle: RSS per connection (bytes)"
			row idle.rss_mib "idle: broker RSS with all connected (MiB)"
			row idle.cpu_ms_per_s "idle: CPU (ms per s, over ${IDLE_S} s)"
			row idle.dropped "idle: connections dropped by broker"
			;;
		ping)
			row ping.pings_per_s "ping: PINGRESPs per s (target $(val mosquitto.ping.target_per_s))"
			row ping.cpu_ms_per_1k "ping: CPU per 1000 pings (ms)"
			row ping.cpu_ms_per_s "ping: CPU (ms per s)"
			row ping.rtt_p50 "ping: RTT p50 (ms)"
			row ping.rtt_p99 "ping: RTT p99 (ms)"
			;;
		silent)
			row silent.wills_received "silent: wills received (of $SILENT_CONNS, K=$SILENT_K)"
			row silent.wills_duplicate "silent: wills twice"
			row silent.wills_early "silent: wills before 1.5 x K"
			row silent.lateness_min_ms "silent: will lateness min (ms)"
			row silent.lateness_p50_ms "silent: will lateness p50 (ms)"
			row silent.lateness_p90_ms "silent: will lateness p90 (ms)"
			row silent.lateness_p99_ms "silent: will lateness p99 (ms)"
			row silent.lateness_max_ms "silent: will lateness max (ms)"
			;;
		fanout)
			row fanout.delivered_per_s "fanout: deliveries per s (target $(val mosquitto.fanout.target_per_s))"
			row fanout.cpu_ms_per_1k "fanout: CPU per 1000 deliveries (ms)"
			row fanout.cpu_ms_per_s "fanout: CPU (ms per s)"
			;;
		fanin)
			rowm fanin_off "fanin QoS 1, persistence off: messages per s (median of $FANIN_RUNS)"
			rowr fanin_off "fanin off: vigil/mosquitto in each round"
			row fanin_off.lost "fanin off: acknowledged messages lost (worst round)"
			row fanin_off.dups "fanin off: duplicates (worst round)"
			row fanin_off.cpu_us_per_msg "fanin off: broker CPU per message (us, median)"
			rowm fanin_on "fanin QoS 1, persistence on, persistent subscriber: messages per s (median of $FANIN_RUNS)"
			rowr fanin_on "fanin on: vigil/mosquitto in each round"
			row fanin_on.lost "fanin on: acknowledged messages lost (worst round)"
			row fanin_on.dups "fanin on: duplicates (worst round)"
			row fanin_on.cpu_us_per_msg "fanin on: broker CPU per message (us, median)"
			;;
		recovery)
			row rec.retained "recovery: retained messages stored (acknowledged)"
			row rec.listen_s "recovery: start to listener open (s)"
			row rec.connack_s "recovery: start to first CONNACK (s)"
			row rec.bytes_crash "recovery: store bytes at the crash (vigil: db + WAL after SIGKILL)"
			row rec.bytes_per_retained "store bytes per retained message (at rest)"
			row rec.bytes_per_queued "store bytes per queued QoS 1 message (at rest, of $QUEUED_N)"
			;;
		esac
	done
}

FAILED=""
for k in "${!R[@]}"; do [[ $k == *.failed ]] && FAILED+=" ${k%.failed}"; done
TABLE=$(table)
{
	echo "# vigil vs mosquitto benchmark"
	echo
	echo "- date: $STARTED$([ "$QUICK" = 1 ] && echo " (BENCH_QUICK smoke run)")"
	echo "- load average (1/5/15 min) at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
	echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "- brokers: vigil $([ -x "$VIGIL" ] && "$VIGIL" --version 2>/dev/null | head -n 1 | sed 's/^vigil version //') (built from the working tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)), mosquitto $("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p')"
	echo "- parameters: scenarios ${SCENS[*]}; MQTT $([ "$VERSION" = 5 ] && echo 5 || echo 3.1.1); $CONNS connections (keepalive $KEEPALIVE s, connect rate $RATE/s, 127.0.0.0/8 sources); idle window $IDLE_S s; ping every $PING_INTERVAL s per connection for $PING_S s; silent: $SILENT_CONNS clients with keepalive $SILENT_K s and a will, plus one observer; fanout: $FANOUT_CONNS clients, $FANOUT_SUBS subscribed to bench/#, the rest publishing QoS 0 (64 B) every $FANOUT_INTERVAL s for $PING_S s; fd limit $NOFILE per process"
	echo "- method: fresh broker per scenario, vigil then mosquitto, same config (listener on 127.0.0.1, allow_anonymous, max_keepalive 65535, max_connections -1, persistence off, log_type error, user root); RSS = VmRSS after connecting minus before, divided by connections; CPU = utime+stime from /proc/PID/stat over the window; loadgen (bench/loadgen.c) runs on the same machine; lateness = will arrival at the observer - (last packet sent + 1.5 x K)."
	if [[ " ${SCENS[*]} " == *" fanin "* || " ${SCENS[*]} " == *" recovery "* ]]; then
		echo "- fanin/recovery: $FANIN_PUBS publishers with $FANIN_WINDOW QoS 1 PUBLISHes in flight each (64 B), one QoS 1 subscriber on fanin/#, $FANIN_S s window after 1 s warm-up (bench/fanin.c); both brokers with max_inflight_messages 0 and max_queued_messages 0 (unlimited: nothing is dropped, so loss must be 0); persistence on = persistence true in a fresh directory and a persistent subscriber (clean session 0); lost = acknowledged to a publisher but never delivered; recovery: $RET_N retained messages (QoS 1, acknowledged), vigil SIGKILLed, mosquitto SIGTERMed (it saves only then), start-up timed by bench/recovery.py; queued: $QUEUED_N QoS 1 messages for an offline persistent session, store files measured after SIGTERM"
	fi
	[ -n "$FAILED" ] && echo "- FAILED:$FAILED (see the run's stderr)"
	echo
	echo "$TABLE"
	echo
	echo "Reading the table: ratios below 1 favour vigil for RSS, CPU, RTT and lateness, above 1 for"
	echo "PINGRESPs per second. Will lateness is a distribution over all silent clients of one run;"
	echo "mosquitto 2.0 scans keepalives only every few seconds, so its figures depend on where T0"
	echo "falls in that scan period and move between runs. \"wills before 1.5 x K\" counts wills that"
	echo "arrived more than 1 ms before the last packet sent + 1.5 x K (a broker closing too early); the"
	echo "lateness has a resolution of 1 ms. CPU has the resolution of clock ticks (1/$CLK_TCK s)."
} >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"

echo
echo "$TABLE"
echo
echo "written to $OUT"
[ -z "$FAILED" ]
