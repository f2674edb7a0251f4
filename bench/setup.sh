#!/usr/bin/env bash
# Setup of the gateway-vs-nginx benchmark (bench/vs-nginx.ts runs it first): installs from Debian what is missing
# (h2load from nghttp2-client, nginx, Go and grpc-go's sources, etcd, Redis for gateway-redis) and builds the Go upstream
# (bench/upstream-go) offline into bench/.build/upstream-go. Safe to run again: it installs and rebuilds only what
# is missing or stale.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"
mkdir -p "$build"

need=()
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || need+=(golang-google-grpc-dev)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v prlimit >/dev/null 2>&1 || need+=(util-linux)

if [ "${#need[@]}" -gt 0 ]; then
  echo "[setup] installing: ${need[*]}" >&2
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q >&2
  # policy-rc.d-less machines would start the nginx service; the benchmark runs its own nginx and never needs it.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

bin="$build/upstream-go"
src="$here/upstream-go/main.go"
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
  echo "[setup] building $bin (offline, GOPATH=/usr/share/gocode)" >&2
  (
    cd "$here/upstream-go"
    GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOCACHE="$build/gocache" \
      go build -o "$bin" .
  )
fi
echo "[setup] ok: $(h2load --version 2>&1 | head -1); $(/usr/sbin/nginx -v 2>&1); $(go version)" >&2
