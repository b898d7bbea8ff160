#!/usr/bin/env bash
# wrk-list.sh: list throughput of identityd against the stripe-mock anchor, in one sitting, with the same wrk
# flags. It runs wrk against stripe-mock's GET /v1/identity/verification_sessions?limit=10, then seeds N
# sessions (and N/10 in a second account) with `identityd bench --list-only --hold` and runs wrk against
# GET /v1/identity/verification_sessions?limit=10&status=verified at N/10 and at N sessions, then stripe-mock
# once more (the machine's drift shows between its two runs). It prints wrk's report (req/s and latency
# percentiles) for each and a summary.
#
# Measuring tools only, not needed by CI or tests:
#   apt-get install -y wrk
#   GOBIN=/tmp/stripe-mock-bin go install github.com/stripe/stripe-mock@v0.203.0
#
# Usage: deploy/bench/wrk-list.sh [-b identityd-binary] [-n sessions] [-d duration] [-t threads] [-c conns]
#        REDIS_URL must name a Redis database you can spare (the bench removes its keys when it exits).
# Environment: STRIPE_MOCK (default /tmp/stripe-mock-bin/stripe-mock), STRIPE_MOCK_PORT (default 12111),
#              BENCH_ARGS (extra flags for identityd bench, e.g. --cpuprofile=/tmp/list.pprof).
set -euo pipefail

bin="" n=200000 dur=10s threads=2 conns=32
while getopts "b:n:d:t:c:" opt; do
	case $opt in
	b) bin=$OPTARG ;;
	n) n=$OPTARG ;;
	d) dur=$OPTARG ;;
	t) threads=$OPTARG ;;
	c) conns=$OPTARG ;;
	*) sed -n '2,15p' "$0"; exit 2 ;;
	esac
done
: "${REDIS_URL:?set REDIS_URL to a Redis database you can spare}"
mock=${STRIPE_MOCK:-/tmp/stripe-mock-bin/stripe-mock}
mockport=${STRIPE_MOCK_PORT:-12111}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$mock" ] || { echo "stripe-mock not found at $mock" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$bin" ]; then
	bin=$work/identityd
	(cd "$(dirname "$0")/../.." && go build -o "$bin" ./cmd/identityd)
fi

wrkrun() { # label url key
	echo "== $1"
	wrk -t"$threads" -c"$conns" -d"$dur" --latency -H "Authorization: Bearer $3" "$2" | tee "$work/$1.out"
}
rps() { awk '/^Requests\/sec/ {print $2}' "$work/$1.out"; }
pct() { awk -v p="$2" '$1 == p {print $2}' "$work/$1.out"; }

mockrun() { # label: one wrk run against a fresh stripe-mock, which runs only for it
	"$mock" -http-addr "127.0.0.1:$mockport" >"$work/mock.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		curl -fs -o /dev/null -u sk_test_123: "http://127.0.0.1:$mockport/v1/identity/verification_sessions?limit=1" && break
		sleep 0.1
	done
	wrkrun "$1" "http://127.0.0.1:$mockport/v1/identity/verification_sessions?limit=10" sk_test_123
	kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
}

mockrun stripe-mock

# shellcheck disable=SC2086
"$bin" bench --redis-url "$REDIS_URL" --sessions "$n" --list-only --hold --list-duration 2s ${BENCH_ARGS:-} \
	>"$work/bench.out" 2>&1 &
pids+=($!)
until grep -q '^hold: ready' "$work/bench.out"; do
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/bench.out"; exit 1; }
	sleep 1
done
cat "$work/bench.out"
api=$(awk '/^hold: api/ {print $3}' "$work/bench.out")
big=$(awk -v n="$n" '/^hold: key/ && $5 == n {print $3}' "$work/bench.out")
small=$(awk -v n="$((n / 10))" '/^hold: key/ && $5 == n {print $3}' "$work/bench.out")
path="/v1/identity/verification_sessions?limit=10&status=verified"
wrkrun "identityd-$((n / 10))" "$api$path" "$small"
wrkrun "identityd-$n" "$api$path" "$big"
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
mockrun stripe-mock-again # the anchor once more, after identityd: the machine's drift shows between the two

echo "== summary (wrk -t$threads -c$conns -d$dur --latency)"
printf "%-20s %10s %10s %10s\n" target req/s p50 p99
for l in stripe-mock "identityd-$((n / 10))" "identityd-$n" stripe-mock-again; do
	printf "%-20s %10s %10s %10s\n" "$l" "$(rps "$l")" "$(pct "$l" 50%)" "$(pct "$l" 99%)"
done
awk -v a="$(rps "identityd-$n")" -v m1="$(rps stripe-mock)" -v m2="$(rps stripe-mock-again)" \
	'BEGIN {printf "identityd at N ÷ stripe-mock req/s (mean of its two runs): %.2f\n", a / ((m1 + m2) / 2)}'
