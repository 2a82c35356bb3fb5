#!/usr/bin/env bash
# Native AOT, end to end: publishes the sample with PublishAot=true (any trimming or AOT warning fails it), runs the
# native binary with 2 workers, and checks that both worker pids answer and that SIGTERM stops it with exit code 0.
# .ci/run runs it after the tests. Usage: tests/aot-smoke.sh [output directory]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
log="$out/publish.log"

dotnet publish samples/HelloCluster -c Release -r linux-x64 -p:PublishAot=true -o "$out/app" >"$log" 2>&1 || {
  cat "$log"; echo "aot-smoke: publish failed" >&2; exit 1; }
if grep -E "warning (IL|AOT)[0-9]+" "$log"; then
  echo "aot-smoke: the AOT publish has trimming/AOT warnings (above)" >&2; exit 1
fi

# Free ports from the kernel (port 0); the primary says which it got.
Cluster__Workers=2 Kestrel__Endpoints__Http__Url="http://127.0.0.1:0" Kestrel__Endpoints__H2c__Url="http://127.0.0.1:0" \
  Kestrel__Endpoints__H2c__Protocols=Http1AndHttp2 DOTNET_hostBuilder__reloadConfigOnChange=false \
  "$out/app/HelloCluster" >"$out/run.log" 2>&1 &
primary=$!
trap 'kill -KILL "$primary" 2>/dev/null || true; for w in $(cat /proc/$primary/task/*/children 2>/dev/null); do kill -KILL "$w" 2>/dev/null || true; done' EXIT

# Up to 60 s for both workers to be ready (a busy machine), failing at once if the app exits.
for _ in $(seq 1 600); do
  [ "$(grep -c "is ready" "$out/run.log" || true)" -ge 2 ] && break
  kill -0 "$primary" 2>/dev/null || { cat "$out/run.log"; echo "aot-smoke: the app exited early" >&2; exit 1; }
  sleep 0.1
done
address=$(grep -oE 'Now listening on: http://127\.0\.0\.1:[0-9]+' "$out/run.log" | head -1 | sed 's/Now listening on: //')
[ -n "$address" ] || { cat "$out/run.log"; echo "aot-smoke: the primary said no address" >&2; exit 1; }

pids=$(for _ in 1 2 3 4 5 6; do curl -sf -H 'Connection: close' "$address/"; done | grep -oE 'pid [0-9]+' | sort -u | wc -l)
if [ "$pids" -ne 2 ]; then
  cat "$out/run.log"; echo "aot-smoke: expected 2 worker pids to answer, saw $pids" >&2; exit 1
fi

kill -TERM "$primary"
code=0
wait "$primary" || code=$?
trap - EXIT
if [ "$code" -ne 0 ]; then
  cat "$out/run.log"; echo "aot-smoke: exit code $code after SIGTERM" >&2; exit 1
fi
echo "aot-smoke: passed (native binary $(du -h "$out/app/HelloCluster" | cut -f1), 2 worker pids answered, exit 0 on SIGTERM)"
