#!/usr/bin/env bash
# MLServer 1.7 for bench_protocols.py, in its own venv so it never touches sigserve's environment.
#
#   bash benchmarks/setup_mlserver.sh            # venv at benchmarks/.venv-mlserver (gitignored)
#   MLSERVER_VENV=/tmp/mls bash benchmarks/setup_mlserver.sh
#
# The model libraries are pinned to the versions of the environment that saves the models (the
# python running this script unless PYTHON is set), so MLServer loads the very same artifacts.
# It also installs h2load (Debian `nghttp2-client`), the C load generator the gRPC runs use.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="${MLSERVER_VENV:-$here/.venv-mlserver}"
python="${PYTHON:-python3}"

version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mlflow_v="$(version mlflow)"
sklearn_v="$(version scikit-learn)"
xgboost_v="$(version xgboost)"
skops_v="$(version skops)"
echo "pinning mlflow==$mlflow_v scikit-learn==$sklearn_v xgboost==$xgboost_v skops==$skops_v"

if ! command -v h2load >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get install -y -q nghttp2-client >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q nghttp2-client >/dev/null; }
  else
    echo "warning: h2load not found and no apt-get; install nghttp2 (h2load) for the gRPC runs" >&2
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q \
  "mlserver==1.7.*" "mlserver-mlflow==1.7.*" "uvloop<0.22" \
  "mlflow==$mlflow_v" "scikit-learn==$sklearn_v" "xgboost==$xgboost_v" "skops==$skops_v"
"$venv/bin/python" -c "import mlserver, mlserver_mlflow, mlflow, sklearn, xgboost
print('mlserver', mlserver.__version__, 'mlflow', mlflow.__version__, 'scikit-learn', sklearn.__version__,
      'xgboost', xgboost.__version__)"
echo "MLServer venv ready: $venv/bin/mlserver"
