#!/usr/bin/env bash
# install-deps.sh: what `make bench` needs beyond the build and test packages (tests/install-deps.sh):
# nginx with the echo and perl modules (the API stand-in), wrk (its ceiling), perf (the profile), valgrind
# (instructions per alert), Node.js and the peer's npm packages (bench/peer, pinned by package-lock.json).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

packages=(libnginx-mod-http-echo libnginx-mod-http-perl wrk linux-perf valgrind)
command -v nginx >/dev/null || packages+=(nginx-light) # any nginx flavour will do
command -v node >/dev/null || packages+=(nodejs npm)
bash ../tests/install-deps.sh "${packages[@]}"

if [[ ! -d peer/node_modules ]]; then
  echo "bench deps: npm ci in bench/peer"
  (cd peer && npm ci --no-audit --no-fund --loglevel=error)
fi
