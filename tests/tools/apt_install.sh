#!/usr/bin/env bash
# Debian packages installed quietly for the test tools (install_java.sh, install_chromium.sh):
# apt-get's output shown only when it fails.
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
