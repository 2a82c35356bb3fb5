#!/usr/bin/env bash
# What the primary costs, and whether the app's startup state reaches it:  benchmarks/primary-cost.sh [--smoke] [--out DIR]
# Starts each app with 2 workers (the sample; the test app holding 600 MiB built by its own hosted service at start, which
# the primary does not start; the same service added with AddHostedServiceEverywhere, as every hosted service ran before),
# and reads the resident memory and CPU of the primary and of each worker from /proc: idle (after 5 s), then over 10 s of
# keep-alive load (wrk -c32) and 10 s of new connections (wrk -c32, Connection: close). Writes a Markdown table to
# benchmarks/results/<date>-primary-cost.md. Traffic goes to loopback only; every process it starts is stopped by pid.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
seconds=10
idle=5
out="$here/results"
suffix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) seconds=1; idle=1; suffix="-smoke"; shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is missing: tests/install-test-tools.sh installs it" >&2; exit 1; }

dotnet build "$root/samples/HelloCluster" -c Release -v quiet -nologo >&2
dotnet build "$root/tests/KestrelCluster.TestApp" -c Release -v quiet -nologo >&2

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

rss_mib() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true; }

# measure <label> <primary pid> <phase> <seconds> <command…>: RSS after, CPU % of one core during, of the primary and workers.
measure() {
  local label=$1 primary=$2 phase=$3 span=$4; shift 4
  local workers; workers=$(children "$primary")
  local before_p; before_p=$(cpu_ticks "$primary")
  local before_w=0; for w in $workers; do before_w=$((before_w + $(cpu_ticks "$w"))); done
  if [ $# -gt 0 ]; then "$@" >/dev/null 2>&1; else sleep "$span"; fi
  local after_p; after_p=$(cpu_ticks "$primary")
  local after_w=0; for w in $workers; do after_w=$((after_w + $(cpu_ticks "$w"))); done
  local hz; hz=$(getconf CLK_TCK)
  local worker_rss=""; for w in $workers; do worker_rss="$worker_rss $(rss_mib "$w")"; done
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$phase" "$(rss_mib "$primary")" \
    "$(awk -v t=$((after_p - before_p)) -v hz="$hz" -v s="$span" 'BEGIN { printf "%.1f", 100 * t / hz / s }')" \
    "$(echo "$worker_rss" | sed 's/^ //; s/ / \/ /g')" \
    "$(awk -v t=$((after_w - before_w)) -v hz="$hz" -v s="$span" 'BEGIN { printf "%.1f", 100 * t / hz / s }')"
}

# run <label> <app dll> <env…>: starts the app on a free port, measures it, stops it.
run() {
  local label=$1 dll=$2; shift 2
  local log; log=$(mktemp)
  # From the app's folder, as it is deployed: its appsettings.json (log levels) is read from there.
  (cd "$(dirname "$dll")" && exec env "$@" Cluster__Workers=2 Kestrel__Endpoints__Http__Url=http://127.0.0.1:0 \
    Kestrel__Endpoints__H2c__Url=http://127.0.0.1:0 Kestrel__Endpoints__H2c__Protocols=Http1AndHttp2 \
    dotnet "$dll" >"$log" 2>&1) &
  local primary=$!
  pids+=("$primary")
  for _ in $(seq 120); do
    [ "$(grep -c 'is ready' "$log")" -ge 2 ] && break
    sleep 0.5
  done
  local url; url=$(grep -o 'Now listening on: http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/Now listening on: //')
  sleep "$idle"
  measure "$label" "$primary" idle "$idle"
  measure "$label" "$primary" "keep-alive" "$seconds" wrk -t1 -c32 -d"${seconds}s" "$url/"
  measure "$label" "$primary" "new connections" "$seconds" wrk -t1 -c32 -d"${seconds}s" -H 'Connection: close' "$url/"
  kill -TERM "$primary"; wait "$primary" 2>/dev/null || true
  rm -f "$log"
}

mkdir -p "$out"
file="$out/$(date +%Y%m%d-%H%M)-primary-cost$suffix.md"
{
  echo "# The primary's cost, $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m))"
  echo
  echo "2 workers each. RSS in MiB after the phase; CPU in % of one core over it (primary, and all workers together)."
  echo
  echo "| App | Phase | Primary RSS | Primary CPU % | Workers' RSS | Workers' CPU % |"
  echo "|---|---|---:|---:|---|---:|"
  run "sample" "$root/samples/HelloCluster/bin/Release/net10.0/HelloCluster.dll"
  # The test app logs every request at Information unless told otherwise; the sample, like most deployed apps, logs
  # Microsoft.AspNetCore at Warning. Each worker's console lines pass through the primary (attributed), so per-request
  # logging costs the primary CPU: measured here once each way.
  run "600 MiB startup state" "$root/tests/KestrelCluster.TestApp/bin/Release/net10.0/KestrelCluster.TestApp.dll" \
    TestApp__StartupStateMb=600 Logging__LogLevel__Microsoft.AspNetCore=Warning
  run "600 MiB in every process (AddHostedServiceEverywhere)" \
    "$root/tests/KestrelCluster.TestApp/bin/Release/net10.0/KestrelCluster.TestApp.dll" \
    TestApp__StartupStateMb=600 TestApp__StartupStateEverywhere=true Logging__LogLevel__Microsoft.AspNetCore=Warning
  run "600 MiB, a log line per request" "$root/tests/KestrelCluster.TestApp/bin/Release/net10.0/KestrelCluster.TestApp.dll" \
    TestApp__StartupStateMb=600
} | tee "$file"
echo "written: $file" >&2
