#!/usr/bin/env bash
# The Docker image, proven with a real Docker engine (issue 11 item 1): build docker/Dockerfile
# (base images made with debootstrap when missing: docker/base-images.sh), then
#   1. the default configuration in an isolated network namespace turns healthy (it listens on
#      all interfaces, says so, and the broker runs as uid 1883);
#   2. a mounted mosquitto.conf on a free port and a data volume: healthy; a retained message
#      published and read with mosquitto_pub/sub on the host; docker stop (SIGTERM) exits 0
#      within 10 s; docker start; the message is read again (persistence, data volume);
#   3. docker kill -s STOP (a frozen broker) turns the container unhealthy.
# Test containers use --network host (traffic stays on loopback), builds --network host.
# Starts dockerd (backgrounded, stopped at the end) when none is running. Skips, loudly, only
# where no Docker engine can be started, and under the sanitizer run (it tests the image, not
# the build). Prints the build and test times (cold: no images; warm: layers cached).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
say() { printf 'test_docker: %s\n' "$*"; }
skip() {
	printf '\n*** SKIP test_docker: %s ***\n\n' "$*"
	exit 0
}
fail() {
	printf 'test_docker: FAIL: %s\n' "$*"
	if [ -n "${cname:-}" ]; then
		$D logs "$cname" 2>&1 | tail -20
		$D inspect -f '{{json .State.Health}}' "$cname" 2>/dev/null | cut -c1-2000
	fi
	exit 1
}

[ "${VIGIL_SAN:-0}" = 1 ] && skip "sanitizer run: this test checks the Docker image, not the sanitizer build"

# The client matching the engine: Debian's docker.io (/usr/bin/docker) if present.
D=${DOCKER:-}
[ -z "$D" ] && { [ -x /usr/bin/docker ] && D=/usr/bin/docker || D=$(command -v docker || true); }
[ -n "$D" ] || skip "no docker client (apt-get install docker.io; scripts/deps.sh --test installs it)"
export DOCKER=$D
started_dockerd=""
tmp=$(mktemp -d /tmp/vigil-docker-test.XXXXXX)
cname=""
vol=""
cleanup() {
	[ -n "$cname" ] && { $D kill -s CONT "$cname" >/dev/null 2>&1; $D rm -f "$cname" >/dev/null 2>&1; }
	[ -n "${cdef:-}" ] && $D rm -f "$cdef" >/dev/null 2>&1
	[ -n "$vol" ] && $D volume rm -f "$vol" >/dev/null 2>&1
	if [ -n "$started_dockerd" ]; then
		kill "$started_dockerd" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.2; done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

if ! $D info >/dev/null 2>&1; then
	command -v dockerd >/dev/null || skip "no Docker engine: dockerd is not installed (apt-get install docker.io)"
	[ "$(id -u)" = 0 ] || skip "no Docker engine running, and starting dockerd needs root"
	say "starting dockerd (log: $tmp/dockerd.log)"
	# No bridge and no iptables rules: every container of this test uses the host's network.
	dockerd --bridge=none --iptables=false --ip6tables=false >"$tmp/dockerd.log" 2>&1 &
	started_dockerd=$!
	for _ in $(seq 150); do
		$D info >/dev/null 2>&1 && break
		kill -0 "$started_dockerd" 2>/dev/null || break
		sleep 0.2
	done
	if ! $D info >/dev/null 2>&1; then
		tail -15 "$tmp/dockerd.log"
		started_dockerd=""
		skip "no Docker engine: dockerd did not start (log above)"
	fi
fi
say "engine: $($D version -f '{{.Server.Version}}' 2>/dev/null), client $D"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)
cold=no
$D image inspect debian:12 >/dev/null 2>&1 && $D image inspect debian:12-slim >/dev/null 2>&1 || cold=yes
docker/base-images.sh || fail "could not make the debian:12 / debian:12-slim base images"
t_base=$(now)
image=vigil:test
# BuildKit (built into dockerd) builds the two stages' apt layers in parallel; the classic
# builder is the fallback for an engine without it.
if ! DOCKER_BUILDKIT=1 $D build --progress plain --network host -f docker/Dockerfile -t "$image" . \
	>"$tmp/build.log" 2>&1; then
	tail -30 "$tmp/build.log"
	say "BuildKit build failed (above); trying the classic builder"
	DOCKER_BUILDKIT=0 $D build --network host -f docker/Dockerfile -t "$image" . >"$tmp/build.log" 2>&1 ||
		{ tail -30 "$tmp/build.log"; fail "docker build"; }
fi
t_build=$(now)
say "base images $(secs "$t_start" "$t_base") s (made: $cold), image build $(secs "$t_base" "$t_build") s;" \
	"$(grep -Ec 'CACHED|Using cache' "$tmp/build.log") build steps from cache;" \
	"image $($D image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}')"

# The image's contract, as eclipse-mosquitto's.
meta=$($D image inspect -f '{{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}} {{json .Config.Cmd}}' "$image")
for want in 1883/tcp 8883/tcp 9001/tcp 8080/tcp /mosquitto/data /mosquitto/log '"--check"' /mosquitto/config/mosquitto.conf; do
	case "$meta" in *"$want"*) ;; *) fail "image config lacks $want: $meta" ;; esac
done
say "image exposes 1883 8883 9001 8080, volumes /mosquitto/data /mosquitto/log, HEALTHCHECK vigil --check"

# docker/compose.yml: valid, and mounting the eclipse-mosquitto paths (not started here: it
# publishes the fixed ports 1883 and 9001 on the host).
if command -v docker-compose >/dev/null; then
	cc=$(docker-compose -f docker/compose.yml config 2>&1) ||
		fail "docker-compose config: $cc"
	for want in /mosquitto/config/mosquitto.conf /mosquitto/data /mosquitto/log docker/Dockerfile; do
		case "$cc" in *"$want"*) ;; *) fail "docker/compose.yml lacks $want" ;; esac
	done
	say "docker/compose.yml valid (docker-compose config), mounts config, data and log"
else
	say "docker-compose not installed: docker/compose.yml not validated"
fi

health() { $D inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null; }
wait_health() { # NAME WANT SECONDS
	local end=$(($(date +%s) + $3)) st=""
	while [ "$(date +%s)" -lt "$end" ]; do
		st=$(health "$1")
		[ "$st" = "$2" ] && return 0
		[ "$($D inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || { say "container $1 is not running"; return 1; }
		sleep 0.2
	done
	say "container $1 is '$st' after $3 s, not '$2'"
	return 1
}
hflags=(--health-interval 1s --health-timeout 5s --health-retries 1 --health-start-period 0s)

# 1. The default configuration, in a network namespace of its own (--network none: its fixed
#    ports 1883 / 9001 touch nothing on the host; the health check runs inside it).
cdef=vigil-test-default-$$
$D run -d --name "$cdef" --network none "${hflags[@]}" "$image" >/dev/null || fail "docker run (default config)"
wait_health "$cdef" healthy 20 || { cname=$cdef; fail "default configuration never turned healthy"; }
$D logs "$cdef" 2>&1 | grep -q 'listen socket on all addresses port 1883' ||
	{ cname=$cdef; fail "default configuration does not say it listens on all addresses"; }
uid=$($D exec "$cdef" awk '/^Uid:/ { print $2 }' /proc/1/status)
[ "$uid" = 1883 ] || { cname=$cdef; fail "broker runs as uid '$uid', not 1883 (mosquitto)"; }
mv=$($D exec "$cdef" mosquitto --version 2>&1)
case "$mv" in vigil*) ;; *) cname=$cdef; fail "'mosquitto' in the image is not vigil: $mv" ;; esac
say "default config: healthy, 'listen socket on all addresses port 1883', broker uid 1883, 'mosquitto' runs vigil"
$D rm -f "$cdef" >/dev/null
cdef=""

# 2. A mounted mosquitto.conf on a free port, a data volume, persistence across a restart.
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location /mosquitto/data/
log_dest stdout
EOF
chmod 644 "$tmp/mosquitto.conf"
vol=vigil-test-data-$$
$D volume create "$vol" >/dev/null || fail "docker volume create"
cname=vigil-test-$$
t_run=$(now)
$D run -d --name "$cname" --network host "${hflags[@]}" \
	-v "$tmp/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" -v "$vol:/mosquitto/data" \
	"$image" >/dev/null || fail "docker run (mounted config)"
wait_health "$cname" healthy 20 || fail "mounted configuration never turned healthy"
say "mounted config on port $port: healthy after $(secs "$t_run" "$(now)") s"

msg="retained-$$-$RANDOM"
mosquitto_pub -h 127.0.0.1 -p "$port" -t vigil/docker/test -m "$msg" -r -q 1 || fail "mosquitto_pub"
got=$(mosquitto_sub -h 127.0.0.1 -p "$port" -t vigil/docker/test -C 1 -W 5) || fail "mosquitto_sub (before restart)"
[ "$got" = "$msg" ] || fail "retained message read back as '$got', want '$msg'"
say "retained message published and read back"

# A connected MQTT 5 client during the stop: it must not hold the shutdown up.
mosquitto_sub -h 127.0.0.1 -p "$port" -V mqttv5 -t vigil/docker/idle -W 20 >/dev/null 2>&1 &
subpid=$!
sleep 0.3
t_stop=$(now)
$D stop -t 10 "$cname" >/dev/null || fail "docker stop"
kill "$subpid" 2>/dev/null
wait "$subpid" 2>/dev/null
stop_s=$(secs "$t_stop" "$(now)")
code=$($D inspect -f '{{.State.ExitCode}}' "$cname")
[ "$code" = 0 ] || fail "exit status $code after SIGTERM (docker stop), want 0"
awk -v s="$stop_s" 'BEGIN { exit !(s < 9.5) }' || fail "docker stop took $stop_s s (SIGTERM not handled in time)"
$D logs "$cname" 2>&1 | grep -q terminating || fail "no 'terminating' line in the log after SIGTERM"
say "docker stop (SIGTERM, an MQTT 5 client connected): exit 0 in $stop_s s"

$D start "$cname" >/dev/null || fail "docker start"
wait_health "$cname" healthy 20 || fail "never healthy again after docker start"
got=$(mosquitto_sub -h 127.0.0.1 -p "$port" -t vigil/docker/test -C 1 -W 5) || fail "mosquitto_sub (after restart)"
[ "$got" = "$msg" ] || fail "after restart the retained message is '$got', want '$msg' (persistence)"
say "after stop and start: retained message still there (persistence in the data volume)"

# 3. A frozen broker: the kernel still accepts its connections, no CONNACK comes.
t_freeze=$(now)
$D kill -s STOP "$cname" >/dev/null || fail "docker kill -s STOP"
wait_health "$cname" unhealthy 30 || fail "frozen broker (SIGSTOP) never turned unhealthy"
last=$($D inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$cname" | grep FAIL | tail -1)
say "frozen broker: unhealthy after $(secs "$t_freeze" "$(now)") s ($last)"
$D kill -s CONT "$cname" >/dev/null

say "total $(secs "$t_start" "$(now)") s"
