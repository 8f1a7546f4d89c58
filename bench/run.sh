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
case $SCEN in idle | ping | silent | fanout | all) ;; *)
	echo "usage: $0 [idle|ping|silent|fanout|all]" >&2
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
	make -s -C "$ROOT" build/bench/loadgen >&2 || {
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

start_broker() {
	local name=$1 bin conf=$TMP/$1.conf deadline
	[ "$name" = vigil ] && bin=$VIGIL || bin=$MOSQUITTO
	BPORT=$(free_port)
	cat >"$conf" <<-EOF
		# minimal equivalent config, written by bench/run.sh
		user root
		persistence false
		log_dest stderr
		log_type error
		max_keepalive 65535
		listener $BPORT 127.0.0.1
		allow_anonymous true
		max_connections -1
	EOF
	"$bin" -c "$conf" >"$TMP/$name.log" 2>&1 &
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

# Raw loadgen output and broker logs of the last run stay in build/bench/logs/.
LOGS=$ROOT/build/bench/logs
mkdir -p "$LOGS"

run_scenario() {
	local sc=$1 b
	for b in "${BROKERS[@]}"; do
		log "== $sc: $b (load average $(cut -d' ' -f1-3 /proc/loadavg))"
		if start_broker "$b"; then
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
SCENS=(idle ping silent fanout)
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
