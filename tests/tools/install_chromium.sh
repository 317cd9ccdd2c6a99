#!/usr/bin/env bash
# Headless Chromium and its driver from Debian, for tests/test_docs_page.py: installed when absent,
# a no-op when present; quiet unless apt-get fails.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install_chromium.sh: not root or no apt-get: the docs page test will skip" >&2
    exit 0
fi
bash "$(dirname "$0")/apt_install.sh" chromium chromium-driver
