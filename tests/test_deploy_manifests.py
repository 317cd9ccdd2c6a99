"""The plain manifests in deploy/: the kustomize base and example overlay, and the KServe example.

Every manifest file is validated against the Kubernetes 1.32 schemas with
kubernetes-validate (strict: unknown fields are errors). The kustomizations are also built with
`kubectl kustomize` when kubectl is on PATH, and the output validated and checked the same way.
KServe's ServingRuntime and InferenceService are CRDs that kubernetes-validate has no schema for:
their own fields are checked against KServe's API (serving.kserve.io v1alpha1 / v1beta1), and
the containers, volumes and pod fields they embed are validated as the Pod KServe would create.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import by_kind, validate_k8s

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
SECURE = DEPLOY / "overlays" / "secure"
COMPONENTS = DEPLOY / "components"
KSERVE = DEPLOY / "kserve"
SERVER_DRAIN_EXTRA_SECONDS = 5  # the server drains for up to its request timeout plus 5 s
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not on PATH, so the kustomizations cannot be built here "
                            "(the raw manifest files are still validated)")

# KServe's API, from serving.kserve.io/v1alpha1 ServingRuntimeSpec (with ServingRuntimePodSpec
# inlined) and v1beta1 PredictorSpec / ModelSpec; enough to catch a misspelt or invented field.
SERVING_RUNTIME_SPEC_FIELDS = {
    "supportedModelFormats", "multiModel", "disabled", "protocolVersions", "workerSpec",
    "containers", "volumes", "nodeSelector", "affinity", "tolerations", "labels", "annotations",
    "imagePullSecrets", "hostIPC", "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint",
    "replicas", "storageHelper", "builtInAdapter",
}
SUPPORTED_MODEL_FORMAT_FIELDS = {"name", "version", "autoSelect", "priority"}
KSERVE_PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
# predictor fields that are not PodSpec fields (ComponentExtensionSpec and the framework specs)
PREDICTOR_EXTENSION_FIELDS = {
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy", "model", "sklearn", "xgboost", "tensorflow", "pytorch",
    "triton", "onnx", "huggingface", "pmml", "lightgbm", "paddle",
}
# ModelSpec fields that are not Container fields
MODEL_EXTENSION_FIELDS = {"modelFormat", "runtime", "storageUri", "runtimeVersion", "protocolVersion", "storage"}
DEPLOYMENT_MODES = {"RawDeployment", "Standard", "Serverless", "Knative"}
KNATIVE_MODES = {"Serverless", "Knative"}


# ---------------------------------------------------------------------------------------------
# helpers

def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    files = sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert files, "deploy/ has no manifests"
    return files


def kustomize(path: Path) -> list[dict]:
    """The built manifests, each validated against the Kubernetes schema."""
    out = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    for doc in docs:
        validate_k8s(doc, f"kubectl kustomize {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return docs


def env_values(container: dict, config: dict[str, str] | None = None) -> dict[str, str | dict]:
    """The container's environment: ConfigMap values (envFrom) overridden by env entries."""
    env: dict[str, str | dict] = dict(config or {})
    names = [e["name"] for e in container.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env entries: {names}"
    for e in container.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else e["valueFrom"]
    return env


def pre_stop_seconds(container: dict) -> int:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return pre_stop["sleep"]["seconds"]
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return int(command[1])


def assert_sigserve_container(container: dict, env: dict, port: int | str, scheme: str | None = None) -> None:
    """What any pod running sigserve needs, whatever wrote it (probes over HTTPS with TLS on)."""
    assert env["SIGSERVE_HOST"] == "0.0.0.0"
    assert env["SIGSERVE_PORT"] == "8080"
    assert [(p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]] == [(8080, "TCP")]
    for kind, path in [("startupProbe", "/v2/health/live"), ("livenessProbe", "/v2/health/live"),
                       ("readinessProbe", "/v2/health/ready")]:
        expected = {"path": path, "port": port, **({"scheme": scheme} if scheme else {})}
        assert container[kind]["httpGet"] == expected, kind
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "too short for a model load"
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc.get("runAsUser", 10001) == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts, "a read-only root filesystem needs a writable /tmp"
    assert env["SIGSERVE_CACHE_DIR"] in mounts, "the model cache must be a writable volume"
    assert all(isinstance(v, (str, dict)) for v in env.values())


def assert_grace_covers_drain(pod: dict, container: dict, env: dict) -> None:
    timeout = float(env.get("SIGSERVE_TIMEOUT", "60"))
    sleep = pre_stop_seconds(container)
    assert sleep >= 5
    assert pod["terminationGracePeriodSeconds"] >= sleep + math.ceil(timeout) + SERVER_DRAIN_EXTRA_SECONDS


def assert_registry_secret(env: dict, secret: str) -> None:
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[var] == {"secretKeyRef": {"name": secret, "key": var, "optional": True}}, var


def pod_volumes_cover_mounts(pod: dict, container: dict) -> None:
    names = {v["name"] for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= names


# ---------------------------------------------------------------------------------------------
# every file, as written

@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_file_is_valid(path):
    docs = load_docs(path)
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            continue  # CRDs: checked by the KServe tests below
        validate_k8s(doc, str(path.relative_to(ROOT)))


@pytest.mark.parametrize("kustomization", [BASE, OVERLAY, SECURE],
                         ids=["base", "overlays/example", "overlays/secure"])
def test_kustomization_files_exist(kustomization):
    k = yaml.safe_load((kustomization / "kustomization.yaml").read_text())
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    for resource in k["resources"]:
        target = (kustomization / resource).resolve()
        assert target.exists(), f"{resource} listed in {kustomization} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists()
    for component in k.get("components", []):
        target = (kustomization / component).resolve()
        c = yaml.safe_load((target / "kustomization.yaml").read_text())
        assert c["apiVersion"] == "kustomize.config.k8s.io/v1alpha1" and c["kind"] == "Component", component
    listed = {(kustomization / r).resolve() for r in k["resources"]}
    for manifest in kustomization.glob("*.yaml"):
        assert manifest.name == "kustomization.yaml" or manifest.resolve() in listed, \
            f"{manifest.name} is in {kustomization.name}/ but not in its resources"


def test_base_deployment_file_follows_the_container_contract():
    (deployment,) = load_docs(BASE / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = dict(item.split("=", 1) for item in
                  yaml.safe_load((BASE / "kustomization.yaml").read_text())["configMapGenerator"][0]["literals"])
    env = env_values(container, config)
    assert container["envFrom"] == [{"configMapRef": {"name": "sigserve-config"}}]
    assert "command" not in container and "args" not in container
    assert "MODEL_URI" not in env, "the base leaves the model to the overlay (or the image)"
    assert_sigserve_container(container, env, "http")
    assert_grace_covers_drain(pod, container, env)
    assert_registry_secret(env, "sigserve-registry")
    pod_volumes_cover_mounts(pod, container)
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


# ---------------------------------------------------------------------------------------------
# the kustomizations, built

@needs_kubectl
def test_base_builds_to_valid_manifests():
    kinds = by_kind(kustomize(BASE))
    assert set(kinds) == {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    deployment = kinds["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "sigserve:0.1.0"
    assert container["envFrom"] == [{"configMapRef": {"name": kinds["ConfigMap"]["metadata"]["name"]}}]
    assert kinds["ConfigMap"]["metadata"]["name"].startswith("sigserve-config-"), "hashed, so edits roll the pods"


@needs_kubectl
def test_example_overlay_builds_to_valid_manifests():
    docs = kustomize(OVERLAY)
    kinds = by_kind(docs)
    assert set(kinds) == {"Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment",
                          "PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress"}
    namespace = kinds["Namespace"]["metadata"]["name"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["kind"]

    deployment, config = kinds["Deployment"], kinds["ConfigMap"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/ml/sigserve:0.1.0"
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    env = env_values(container, config["data"])
    assert env["MODEL_URI"] == "models:/churn@champion"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    assert env["SIGSERVE_WORKERS"] == "2"
    assert env["SIGSERVE_LOG_FORMAT"] == "json", "the base's settings survive the merge"
    assert_sigserve_container(container, env, "http")
    assert_grace_covers_drain(pod, container, env)
    assert_registry_secret(env, "sigserve-registry")
    pod_volumes_cover_mounts(pod, container)
    assert container["resources"]["requests"]["cpu"] == "2", "one CPU per worker"

    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]

    service = kinds["Service"]
    (rule,) = kinds["Ingress"]["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def mounted_secret(pod: dict, container: dict, path: str) -> dict:
    """The Secret volume holding `path`: mounted whole (no subPath, so a rotated Secret reaches the
    pod), read-only, its files readable by the pod's fsGroup."""
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert "subPath" not in mount and mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == 10001
    return volume["secret"]


@needs_kubectl
def test_secure_overlay_adds_auth_and_tls_to_the_base():
    kinds = by_kind(kustomize(SECURE))
    assert set(kinds) == {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    assert not any(kind == "Secret" for kind in kinds), "the tokens and the certificate are the user's Secrets"
    deployment, config = kinds["Deployment"], kinds["ConfigMap"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_values(container, config["data"])
    assert_sigserve_container(container, env, "http", scheme="HTTPS")
    assert_grace_covers_drain(pod, container, env)
    assert_registry_secret(env, "sigserve-registry")
    pod_volumes_cover_mounts(pod, container)

    tokens = mounted_secret(pod, container, env["SIGSERVE_AUTH_TOKEN_FILE"])
    assert tokens["secretName"] == "sigserve-auth"
    assert tokens["items"] == [{"key": "tokens", "path": Path(env["SIGSERVE_AUTH_TOKEN_FILE"]).name}]
    assert "SIGSERVE_METRICS_WITHOUT_AUTH" not in env, "/metrics needs a token too unless asked"
    certificate = mounted_secret(pod, container, env["SIGSERVE_TLS_CERT"])
    assert certificate == mounted_secret(pod, container, env["SIGSERVE_TLS_KEY"])
    assert certificate["secretName"] == "sigserve-tls"
    assert {Path(env["SIGSERVE_TLS_CERT"]).name, Path(env["SIGSERVE_TLS_KEY"]).name} == {"tls.crt", "tls.key"}
    assert kinds["Service"]["spec"]["ports"][0]["appProtocol"] == "https"


@needs_kubectl
@pytest.mark.parametrize("component", ["auth", "tls"])
def test_each_component_applies_to_the_base_alone(component, tmp_path):
    """A component is usable on its own: base plus only that component builds and validates."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, tmp_path)],
        "components": [os.path.relpath(COMPONENTS / component, tmp_path)]}))
    (deployment,) = [d for d in kustomize(tmp_path) if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = env_values(container)
    assert ("SIGSERVE_AUTH_TOKEN_FILE" in env) == (component == "auth")
    assert ("SIGSERVE_TLS_CERT" in env) == ("SIGSERVE_TLS_KEY" in env) == (component == "tls")
    schemes = {container[k]["httpGet"].get("scheme", "HTTP")
               for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert schemes == {"HTTPS" if component == "tls" else "HTTP"}


# ---------------------------------------------------------------------------------------------
# KServe

def kserve_objects() -> tuple[dict, list[dict]]:
    runtimes, services = [], []
    for path in sorted(KSERVE.glob("*.yaml")):
        for doc in load_docs(path):
            (runtimes if doc["kind"] == "ServingRuntime" else services).append(doc)
    assert len(runtimes) == 1 and services
    assert all(s["kind"] == "InferenceService" for s in services)
    return runtimes[0], services


def merge_env(base: list[dict], override: list[dict]) -> list[dict]:
    merged = {e["name"]: e for e in base}
    merged.update({e["name"]: e for e in override})
    return list(merged.values())


def pod_kserve_would_create(runtime: dict, isvc: dict) -> tuple[dict, dict]:
    """The predictor pod: the runtime's container with the InferenceService's model container
    fields merged over it (env by name), plus the runtime's volumes and the predictor's pod fields.
    KServe also adds its storage initializer and /mnt/models volume when storageUri is set."""
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    container = copy.deepcopy(runtime["spec"]["containers"][0])
    for key, value in model.items():
        if key in MODEL_EXTENSION_FIELDS:
            continue
        container[key] = merge_env(container.get("env", []), value) if key == "env" else value
    pod_spec = {k: v for k, v in predictor.items() if k not in PREDICTOR_EXTENSION_FIELDS}
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = copy.deepcopy(runtime["spec"].get("volumes", []))
    if "storageUri" in model:
        pod_spec["volumes"].append({"name": "kserve-provision-location", "emptyDir": {}})
        container.setdefault("volumeMounts", []).append(
            {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": isvc["metadata"]["name"]}, "spec": pod_spec}
    return pod, container


def test_serving_runtime_declares_what_kserve_needs():
    runtime, _ = kserve_objects()
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    spec = runtime["spec"]
    assert set(spec) <= SERVING_RUNTIME_SPEC_FIELDS, set(spec) - SERVING_RUNTIME_SPEC_FIELDS
    formats = spec["supportedModelFormats"]
    for f in formats:
        assert set(f) <= SUPPORTED_MODEL_FORMAT_FIELDS and isinstance(f.get("version", ""), str)
        assert f.get("priority", 1) >= 1
    assert any(f["name"] == "mlflow" and f.get("autoSelect") for f in formats)
    assert spec["protocolVersions"] == ["v2"]
    assert set(spec["protocolVersions"]) <= KSERVE_PROTOCOLS
    assert spec.get("multiModel", False) is False
    assert spec["annotations"]["prometheus.kserve.io/port"] == "8080"
    assert spec["annotations"]["prometheus.kserve.io/path"] == "/metrics"

    (container,) = spec["containers"]
    assert container["name"] == "kserve-container", "KServe merges the model container into this name"
    assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith("sigserve")
    assert "command" not in container, "the image's entrypoint (sigserve serve) must run"
    env = env_values(container)
    assert env["MODEL_URI"] == "/mnt/models", "where KServe's storage initializer puts the model"
    assert_sigserve_container(container, env, 8080)
    pod_volumes_cover_mounts(spec, container)

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sigserve-runtime"},
           "spec": {"containers": spec["containers"], "volumes": spec["volumes"]}}
    validate_k8s(pod, "ServingRuntime containers and volumes")


@pytest.mark.parametrize("isvc", kserve_objects()[1], ids=lambda d: d["metadata"]["name"])
def test_inference_service_runs_on_the_sigserve_runtime(isvc):
    runtime, _ = kserve_objects()
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert set(isvc["spec"]) == {"predictor"}
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    formats = runtime["spec"]["supportedModelFormats"]
    wanted = model["modelFormat"]
    assert any(f["name"] == wanted["name"] and wanted.get("version", f.get("version")) == f.get("version")
               for f in formats), f"the runtime does not support {wanted}"
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]

    mode = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode", "Serverless")
    assert mode in DEPLOYMENT_MODES
    if "lifecycle" in runtime["spec"]["containers"][0]:
        assert mode not in KNATIVE_MODES, "Knative rejects lifecycle hooks: use RawDeployment/Standard"

    pod, container = pod_kserve_would_create(runtime, isvc)
    validate_k8s(pod, f"the pod for InferenceService {isvc['metadata']['name']}")
    env = env_values(container)
    assert_sigserve_container(container, env, 8080)
    assert_grace_covers_drain(pod["spec"], container, env)
    if "storageUri" in model:
        assert model["storageUri"].split("://")[0] in {"s3", "gs", "pvc", "https", "hf", "oci", "azure"}
        assert env["MODEL_URI"] == "/mnt/models"
    else:
        assert env["MODEL_URI"].startswith("models:/"), "without storageUri sigserve fetches the model itself"
        assert env["MLFLOW_TRACKING_URI"].startswith("http")
        assert_registry_secret(env, "mlflow-credentials")
