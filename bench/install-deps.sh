#!/usr/bin/env bash
# install-deps.sh: what `make bench` needs beyond the build and test packages (tests/install-deps.sh):
# nginx with the echo and perl modules (the API stand-in), wrk (its ceiling), perf (the profile), Node.js
# and the peer's npm packages (bench/peer, pinned by package-lock.json). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

packages=(libnginx-mod-http-echo libnginx-mod-http-perl wrk linux-perf)
command -v nginx >/dev/null || packages+=(nginx-light) # any nginx flavour will do
command -v node >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "bench deps: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "bench deps: not root and no sudo; install these packages: ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "bench deps: all packages present"
fi

if [[ ! -d peer/node_modules ]]; then
  echo "bench deps: npm ci in bench/peer"
  (cd peer && npm ci --no-audit --no-fund --loglevel=error)
fi
