#!/usr/bin/env bash
# A Java runtime from Debian for pyspark (tests/test_spark.py): installed when no java 17+ is on
# PATH, a no-op otherwise; quiet unless apt-get fails. The Spark fixture runs it too.
set -euo pipefail
if command -v java >/dev/null; then
    major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ "${major:-0}" -ge 17 ]; then
        exit 0
    fi
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install_java.sh: no Java 17+ and not root or no apt-get: install a JDK 17+ for the Spark tests" >&2
    exit 1
fi
bash "$(dirname "$0")/apt_install.sh" openjdk-17-jre-headless
