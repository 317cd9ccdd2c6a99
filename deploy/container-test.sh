#!/usr/bin/env bash
# Build the sigserve image with podman and run it for real: the container starts, /ping answers,
# a request scores, the HEALTHCHECK passes, and SIGTERM stops it cleanly; with the model mounted
# (MODEL_URI=/path), then resolved from a registry at start-up (MODEL_URI=models:/…@champion,
# MLFLOW_TRACKING_URI), then for an image with the model baked in by `sigserve generate-dockerfile`.
#
#   deploy/container-test.sh [--model DIR] [--request FILE] [--no-baked] [--keep-images]
#
#   --model DIR      model directory to serve (default: the bundled demo iris model)
#   --request FILE   JSON body to score (default: DIR/serving_input_example.json)
#   --no-baked       skip the generate-dockerfile image
#   --keep-images    keep the sigserve images it builds (they are removed by default)
#
# No image registry is reachable here, so the base image is built once from a Debian bookworm
# rootfs (debootstrap, needs root) with python3, python3-venv and pip, imported with
# `podman import`, and reused on later runs (delete it with `podman rmi localhost/sigserve-base:bookworm`).
# Images are built and run with `podman --runtime runc --cgroup-manager cgroupfs … --network host`.
#
# The base image also trusts the local CAs in $SIGSERVE_CA_DIR (default /usr/local/share/ca-certificates,
# as update-ca-certificates does here), so pip inside the build gets through a TLS-intercepting proxy.
#
# Environment: SIGSERVE_BASE_IMAGE (use this base instead, e.g. python:3.11-slim-bookworm where a
# registry is reachable), SIGSERVE_DEBIAN_MIRROR, SIGSERVE_CA_DIR, PIP_INDEX_URL (passed to the
# image build when it is an http(s) URL), PYTHON (the interpreter that runs `generate-dockerfile`
# and builds the wheel).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL_DIR="$ROOT/src/sigserve/demo/model"
REQUEST=""
BAKED=1
KEEP_IMAGES=0
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL_DIR="$2"; shift 2 ;;
        --request) REQUEST="$2"; shift 2 ;;
        --no-baked) BAKED=0; shift ;;
        --keep-images) KEEP_IMAGES=1; shift ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

BASE_IMAGE="${SIGSERVE_BASE_IMAGE:-localhost/sigserve-base:bookworm}"
MIRROR="${SIGSERVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_DIR="${SIGSERVE_CA_DIR:-/usr/local/share/ca-certificates}"
PYTHON="${PYTHON:-python3}"
RUN_ID="ct$$"
IMAGE="localhost/sigserve:$RUN_ID"
BAKED_IMAGE="localhost/sigserve-baked:$RUN_ID"
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# podman asks runc for nofile=1048576 by default, which fails with "error setting rlimit … operation
# not permitted" where the hard limits are lower and CAP_SYS_RESOURCE is missing (as in a VM
# sandbox): ask for this shell's hard limits instead (nproc capped at podman's own 32768).
hard_nproc="$(ulimit -Hu)"
[ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$hard_nproc:$hard_nproc")

die() { echo "container-test: FAIL: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }
elapsed() { echo "   done in $(( SECONDS - $1 )) s"; }

command -v podman >/dev/null || die "podman is not installed"
command -v curl >/dev/null || die "curl is not installed"
MODEL_DIR="$(cd "$MODEL_DIR" && pwd)" || die "no model directory $MODEL_DIR"
[ -f "$MODEL_DIR/MLmodel" ] || die "$MODEL_DIR has no MLmodel file"
REQUEST="${REQUEST:-$MODEL_DIR/serving_input_example.json}"
[ -f "$REQUEST" ] || die "no request body $REQUEST (pass --request FILE)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sigserve-container-test.XXXXXX")"
CONTAINERS=()
VOLUMES=()
IMAGES=()
ROOTFS=""

remove_rootfs() {
    [ -n "$ROOTFS" ] && [ -d "$ROOTFS" ] || return 0
    # debootstrap mounts /proc and /sys inside the rootfs: never rm -rf across a live mount
    grep -q " $ROOTFS/" /proc/mounts && umount -R "$ROOTFS"/proc "$ROOTFS"/sys 2>/dev/null || true
    if grep -q " $ROOTFS/" /proc/mounts; then
        echo "container-test: leaving $ROOTFS in place: something is still mounted under it" >&2
    else
        rm -rf "$ROOTFS"
    fi
    ROOTFS=""
}

cleanup() {
    local status=$?
    for c in "${CONTAINERS[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
    for v in "${VOLUMES[@]}"; do "${PODMAN[@]}" volume rm -f "$v" >/dev/null 2>&1 || true; done
    if [ "$KEEP_IMAGES" = 0 ]; then
        for i in "${IMAGES[@]}"; do "${PODMAN[@]}" rmi -f "$i" >/dev/null 2>&1 || true; done
    fi
    remove_rootfs
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

build_base_image() {
    step "base image $BASE_IMAGE"
    local t0=$SECONDS
    if "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
        echo "   reusing the existing image"
        return
    fi
    case "$BASE_IMAGE" in
        localhost/*) ;;
        *) echo "   not here: the build pulls it (needs a reachable registry)"; return ;;
    esac
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    [ "$(id -u)" = 0 ] || die "building the base rootfs with debootstrap needs root"
    ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/sigserve-rootfs.XXXXXX")"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
        bookworm "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    # trust this machine's local CAs too (a TLS-intercepting egress proxy), so pip in the build
    # reaches the package index as pip here does
    if compgen -G "$CA_DIR/*.crt" >/dev/null; then
        cp "$CA_DIR"/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
        chroot "$ROOTFS" update-ca-certificates > "$WORK/update-ca-certificates.log" 2>&1
        echo "   added the local CAs of $CA_DIR: $(cd "$CA_DIR" && echo *.crt)"
    fi
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar --numeric-owner -C "$ROOTFS" -c . | "${PODMAN[@]}" import -q \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$BASE_IMAGE" >/dev/null
    remove_rootfs
    "${PODMAN[@]}" run --rm --network host "${ULIMITS[@]}" "$BASE_IMAGE" python3 --version
    elapsed "$t0"
}

build_args() {
    local index="${PIP_INDEX_URL:-$("$PYTHON" -m pip config get global.index-url 2>/dev/null || true)}"
    echo "--build-arg=BASE_IMAGE=$BASE_IMAGE"
    case "$index" in http://*|https://*) echo "--build-arg=PIP_INDEX_URL=$index" ;; esac
}

build_image() {  # build_image TAG CONTEXT
    local t0=$SECONDS args
    mapfile -t args < <(build_args)
    IMAGES+=("$1")
    "${PODMAN[@]}" build --format docker --network host --layers=false "${ULIMITS[@]}" "${args[@]}" \
        -t "$1" "$2" > "$WORK/build-${1##*/}.log" 2>&1 \
        || { tail -n 40 "$WORK/build-${1##*/}.log" >&2; die "podman build of $1 failed"; }
    echo "   $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}')"
    [ "$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$1")" = 10001:10001 ] \
        || die "$1 does not run as 10001:10001"
    # the final stage has the venv and the model, and nothing it was built with
    "${PODMAN[@]}" run --rm --network host "${ULIMITS[@]}" --entrypoint /bin/sh "$1" -c \
        'for p in /src /dist /build; do [ ! -e $p ] || exit 1; done; for t in gcc cc make git; do ! command -v $t; done' \
        >/dev/null 2>&1 || die "$1 holds build leftovers (/src, /dist, /build) or build tools"
    elapsed "$t0"
}

# run_and_check NAME IMAGE [podman run options…]: start it the way the Helm chart does (read-only
# root, writable /tmp and cache), then check /ping, a scoring request, gRPC health, the user, the
# HEALTHCHECK and a clean SIGTERM stop.
run_and_check() {
    local name="$1" image="$2"; shift 2
    local port grpc_port volume t0=$SECONDS
    port="$(free_port)"
    grpc_port="$(free_port)"  # host network: not the default 8081, which something else may hold
    volume="$name-cache"
    "${PODMAN[@]}" volume create "$volume" >/dev/null
    VOLUMES+=("$volume")
    CONTAINERS+=("$name")
    # podman's stderr goes to a log: without systemd it complains that it cannot set up the timer
    # for the image's HEALTHCHECK; the check is run by hand below instead
    "${PODMAN[@]}" run -d --name "$name" --network host "${ULIMITS[@]}" \
        --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777 \
        -v "$volume:/var/cache/sigserve" -e "SIGSERVE_PORT=$port" -e "SIGSERVE_GRPC_PORT=$grpc_port" "$@" "$image" \
        >/dev/null 2>>"$WORK/podman-$name.log" || { cat "$WORK/podman-$name.log" >&2; die "podman run $name failed"; }

    local url="http://127.0.0.1:$port" deadline=$(( SECONDS + 120 ))
    until curl -fsS -o /dev/null "$url/ping" 2>/dev/null; do
        if [ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$name")" != true ]; then
            "${PODMAN[@]}" logs "$name" >&2 || true
            die "$name exited before /ping answered"
        fi
        [ $SECONDS -lt $deadline ] || { "${PODMAN[@]}" logs "$name" >&2; die "$name: no /ping within 120 s"; }
        sleep 0.5
    done
    echo "   /ping answered on $url after $(( SECONDS - t0 )) s"

    local response
    response="$(curl -fsS -D "$WORK/headers-$name" -H 'Content-Type: application/json' \
        --data-binary "@$REQUEST" "$url/invocations")" \
        || { "${PODMAN[@]}" logs "$name" >&2; die "$name: the scoring request failed"; }
    case "$response" in *'"predictions"'*) ;; *) die "$name: unexpected response: $response" ;; esac
    echo "   POST /invocations -> ${response:0:160}"
    echo "   $(grep -i '^x-model-version:' "$WORK/headers-$name" | tr -d '\r')"

    # what the chart's gRPC probes ask: grpc.health.v1 for the server ("") and the inference service
    "$PYTHON" -c 'import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as hg
stub = hg.HealthStub(grpc.insecure_channel("127.0.0.1:" + sys.argv[1]))
statuses = [stub.Check(h.HealthCheckRequest(service=s), timeout=10).status for s in ("", "inference.GRPCInferenceService")]
sys.exit(statuses != [h.HealthCheckResponse.SERVING] * 2)' "$grpc_port" \
        || { "${PODMAN[@]}" logs "$name" >&2; die "$name: grpc.health.v1 on port $grpc_port is not SERVING"; }
    echo "   gRPC on port $grpc_port: grpc.health.v1 SERVING"

    local uid
    uid="$("${PODMAN[@]}" exec "$name" id -u)"
    [ "$uid" = 10001 ] || die "$name runs as uid $uid, not 10001"
    "${PODMAN[@]}" exec "$name" sh -c 'touch /var/cache/sigserve/.w /tmp/.w && ! touch /opt/.w 2>/dev/null' \
        || die "$name: expected writable /tmp and cache, read-only root"
    echo "   runs as uid $uid; /tmp and /var/cache/sigserve writable, root read-only"

    "${PODMAN[@]}" healthcheck run "$name" >/dev/null || die "$name: HEALTHCHECK failed"
    echo "   HEALTHCHECK: healthy"

    "${PODMAN[@]}" stop -t 30 "$name" >/dev/null 2>>"$WORK/podman-$name.log"
    local code
    code="$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$name")"
    [ "$code" = 0 ] || { "${PODMAN[@]}" logs "$name" >&2; die "$name exited with $code on SIGTERM"; }
    echo "   SIGTERM: exited 0"
    elapsed "$t0"
}

T_START=$SECONDS
echo "podman $(podman version --format '{{.Client.Version}}'), model $MODEL_DIR"
build_base_image

step "image $IMAGE (Dockerfile, BASE_IMAGE=$BASE_IMAGE)"
build_image "$IMAGE" "$ROOT"

step "run $IMAGE with the model mounted (MODEL_URI=/models/model)"
run_and_check "sigserve-$RUN_ID-mounted" "$IMAGE" -v "$MODEL_DIR:/models/model:ro" -e MODEL_URI=/models/model

step "run $IMAGE resolving models:/…@champion from a registry at start-up (MLFLOW_TRACKING_URI)"
mkdir -p "$WORK/registry"
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m sigserve registry register \
    --registry-uri "sqlite:///$WORK/registry/mlflow.db" --name container-test --path "$MODEL_DIR" \
    --alias champion > /dev/null
# the registry records its artifacts' absolute paths: mount it at the same path, read-only
run_and_check "sigserve-$RUN_ID-registry" "$IMAGE" -v "$WORK/registry:$WORK/registry:ro" \
    -e MODEL_URI=models:/container-test@champion -e "MLFLOW_TRACKING_URI=sqlite:///$WORK/registry/mlflow.db"

if [ "$BAKED" = 1 ]; then
    step "build context with the model baked in (sigserve generate-dockerfile)"
    t0=$SECONDS
    mkdir -p "$WORK/source"
    cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/src" "$WORK/source/"
    find "$WORK/source" -name __pycache__ -prune -exec rm -rf {} +
    "$PYTHON" -m pip wheel --no-deps --no-cache-dir -q -w "$WORK/dist" "$WORK/source" > "$WORK/wheel.log" 2>&1 \
        || { cat "$WORK/wheel.log" >&2; die "building the sigserve wheel failed"; }
    wheel="$(ls "$WORK"/dist/sigserve-*.whl)"
    PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m sigserve generate-dockerfile \
        -m "$MODEL_DIR" -d "$WORK/context" --sigserve-source "$wheel"
    elapsed "$t0"

    step "image $BAKED_IMAGE (generated Dockerfile, BASE_IMAGE=$BASE_IMAGE)"
    build_image "$BAKED_IMAGE" "$WORK/context"
    [ "$("${PODMAN[@]}" image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$BAKED_IMAGE" \
        | grep -c '^MODEL_URI=/opt/model$')" = 1 ] || die "$BAKED_IMAGE has no MODEL_URI=/opt/model"

    step "run $BAKED_IMAGE (no mount, no MODEL_URI given; 2 gunicorn workers)"
    run_and_check "sigserve-$RUN_ID-baked" "$BAKED_IMAGE" -e SIGSERVE_WORKERS=2
fi

echo
echo "container-test: PASS in $(( SECONDS - T_START )) s"
