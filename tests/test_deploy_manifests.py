"""The plain manifests in deploy/: the kustomize base and overlays, and the KServe examples.

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

from sigserve.serve_config import read_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
SECURE = DEPLOY / "overlays" / "secure"
MULTI = DEPLOY / "overlays" / "multi-model"
COMPONENTS = DEPLOY / "components"
KSERVE = DEPLOY / "kserve"
GRPC_PORT = 8081  # sigserve's --grpc-port default (MLServer's), SIGSERVE_GRPC_PORT
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


def generator_files() -> set[Path]:
    """Files kustomize turns into ConfigMaps (configMapGenerator `files:`): data, not manifests."""
    files: set[Path] = set()
    for k in DEPLOY.rglob("kustomization.yaml"):
        for generator in yaml.safe_load(k.read_text()).get("configMapGenerator", []):
            for entry in generator.get("files", []):
                files.add((k.parent / entry.split("=", 1)[-1]).resolve())
    return files


def manifest_files() -> list[Path]:
    data = generator_files()
    files = sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml" and p.resolve() not in data)
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


def assert_sigserve_container(container: dict, env: dict, port: int | str, scheme: str | None = None,
                              grpc: bool = True) -> None:
    """What any pod running sigserve needs, whatever wrote it (probes over HTTPS with TLS on); with
    `grpc`, the gRPC port declared and set (SIGSERVE_GRPC_PORT), else neither."""
    assert env["SIGSERVE_HOST"] == "0.0.0.0"
    assert env["SIGSERVE_PORT"] == "8080"
    ports = [(p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]]
    if grpc:
        assert ports == [(8080, "TCP"), (GRPC_PORT, "TCP")]
        assert env["SIGSERVE_GRPC_PORT"] == str(GRPC_PORT)
    else:
        assert ports == [(8080, "TCP")]
        assert env.get("SIGSERVE_GRPC_PORT", "0") in {"0", str(GRPC_PORT)}, "an undeclared port is the default or off"
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


def assert_grpc_exposed(container: dict, service: dict) -> None:
    """The Service reaches the container's gRPC port by name, marked as gRPC for meshes and
    gateways; HTTP stays the Service's first port (80)."""
    (grpc,) = [p for p in container["ports"] if p["containerPort"] == GRPC_PORT]
    assert grpc["name"] == "grpc"
    ports = service["spec"]["ports"]
    assert ports[0]["port"] == 80 and ports[0]["targetPort"] == "http"
    assert ports[1:] == [{"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
                          "appProtocol": "grpc"}]


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


@pytest.mark.parametrize("kustomization", [BASE, OVERLAY, SECURE, MULTI],
                         ids=["base", "overlays/example", "overlays/secure", "overlays/multi-model"])
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
    generated = set()
    for generator in k.get("configMapGenerator", []):
        for entry in generator.get("files", []):
            target = (kustomization / entry.split("=", 1)[-1]).resolve()
            assert target.is_file(), f"{entry} in {kustomization}'s configMapGenerator does not exist"
            generated.add(target)
    listed = {(kustomization / r).resolve() for r in k["resources"]} | generated
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
    (service,) = load_docs(BASE / "service.yaml")
    assert_grpc_exposed(container, service)
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
    assert_grpc_exposed(container, kinds["Service"])


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
    assert_grpc_exposed(container, kinds["Service"])

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
    assert [p.get("appProtocol") for p in kinds["Service"]["spec"]["ports"]] == ["https", "grpc"]
    assert [p["name"] for p in container["ports"]] == ["http", "grpc"]


def build_with_components(tmp_path: Path, *components: str) -> list[dict]:
    """The base with these components, built and validated."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, tmp_path)],
        "components": [os.path.relpath(COMPONENTS / c, tmp_path) for c in components]}))
    return kustomize(tmp_path)


@needs_kubectl
@pytest.mark.parametrize("components", [["no-grpc"], ["no-grpc", "tls"], ["tls", "no-grpc"]])
def test_no_grpc_component_turns_grpc_off(components, tmp_path):
    kinds = by_kind(build_with_components(tmp_path, *components))
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = env_values(container)
    assert env["SIGSERVE_GRPC_PORT"] == "0", "0 turns the server's gRPC port off"
    assert_sigserve_container(container, env, "http", scheme="HTTPS" if "tls" in components else None, grpc=False)
    assert [p["name"] for p in container["ports"]] == ["http"]
    assert [(p["name"], p["port"]) for p in kinds["Service"]["spec"]["ports"]] == [("http", 80)]
    assert kinds["Service"]["spec"]["ports"][0].get("appProtocol") == ("https" if "tls" in components else None)


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
# several models: a models.yaml in a ConfigMap (SIGSERVE_CONFIG)

def models_config_volume(pod: dict, container: dict, env: dict) -> dict:
    """The ConfigMap volume holding the file SIGSERVE_CONFIG names: mounted whole (no subPath),
    read-only, its models.yaml key at that path."""
    path = Path(env["SIGSERVE_CONFIG"])
    (mount,) = [m for m in container["volumeMounts"] if path.parent == Path(m["mountPath"])]
    assert "subPath" not in mount and mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["items"] == [{"key": "models.yaml", "path": path.name}]
    return volume["configMap"]


def models_yaml(config_map: dict, tmp_path: Path) -> dict:
    """The models.yaml a ConfigMap holds, parsed, after sigserve's own config reader (serve
    --config) has accepted it with the same models and traffic."""
    text = config_map["data"]["models.yaml"]
    config = yaml.safe_load(text)
    path = tmp_path / "models-from-configmap.yaml"
    path.write_text(text)
    served = read_config(str(path))
    assert [(m.uri, m.name) for m in served.models] == [(m["uri"], m.get("name")) for m in config["models"]]
    assert {name: p.policy for name, p in served.traffic.items()} == \
        {name: p["policy"] for name, p in config.get("traffic", {}).items()}
    return config


@needs_kubectl
def test_multi_model_overlay_mounts_its_models_yaml(tmp_path):
    docs = kustomize(MULTI)
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    kinds = by_kind([d for d in docs if d["kind"] != "ConfigMap"])
    assert set(kinds) == {"ServiceAccount", "Service", "Deployment", "PodDisruptionBudget"}
    assert len(config_maps) == 2
    for doc in docs:
        assert doc["metadata"]["namespace"] == "ml-serving", doc["kind"]
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (settings_ref,) = container["envFrom"]
    env = env_values(container, config_maps[settings_ref["configMapRef"]["name"]]["data"])
    assert "MODEL_URI" not in env, "the models come from models.yaml only"
    assert env["SIGSERVE_CONFIG"] == "/etc/sigserve/models/models.yaml"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
    assert_sigserve_container(container, env, "http")
    assert_grace_covers_drain(pod, container, env)
    assert_registry_secret(env, "sigserve-registry")
    pod_volumes_cover_mounts(pod, container)

    volume = models_config_volume(pod, container, env)
    assert volume["name"].startswith("sigserve-models-"), "hashed, so a changed models.yaml rolls the pods"
    config = models_yaml(config_maps[volume["name"]], tmp_path)
    assert config == yaml.safe_load((MULTI / "models.yaml").read_text())
    assert [m["uri"] for m in config["models"]] == [
        "models:/churn@champion", "models:/churn@challenger", "models:/fraud/3"]
    assert config["models"][2]["name"] == "fraud"
    assert config["traffic"] == {"churn": {"policy": "canary", "share": 0.1, "sticky_header": "x-user-id"}}
    assert container["resources"]["limits"]["memory"] == "4Gi", "three models need more than one"
    assert_grpc_exposed(container, kinds["Service"])


@needs_kubectl
def test_models_config_component_rolls_the_pods_when_models_change(tmp_path):
    """The component on the base alone, with a models.yaml generated next to it: the Deployment
    refers to the ConfigMap by its hashed name, so new contents give a new pod template."""
    def build(models: dict) -> tuple[dict, dict]:
        (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
        (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": [os.path.relpath(BASE, tmp_path)],
            "components": [os.path.relpath(COMPONENTS / "models-config", tmp_path)],
            "configMapGenerator": [{"name": "sigserve-models", "files": ["models.yaml"]}]}))
        docs = kustomize(tmp_path)
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        volume = models_config_volume(pod, container, env_values(container))
        (config_map,) = [d for d in docs if d["metadata"]["name"] == volume["name"]]
        return deployment, models_yaml(config_map, tmp_path)

    two = {"models": [{"uri": "models:/churn@champion"}, {"uri": "models:/churn@challenger"}],
           "traffic": {"churn": {"policy": "shadow"}}}
    before, config = build(two)
    assert config == two
    after, config = build({**two, "traffic": {"churn": {"policy": "canary", "share": 0.2}}})
    assert config["traffic"]["churn"]["share"] == 0.2
    assert before["spec"]["template"] != after["spec"]["template"]
    again, _ = build(two)
    assert again == before, "the same models.yaml gives the same pod template"


# ---------------------------------------------------------------------------------------------
# KServe

def kserve_objects() -> tuple[dict[str, dict], list[dict], dict[str, dict]]:
    """The ServingRuntimes by name, the InferenceServices, and the ConfigMaps by name."""
    runtimes, services, config_maps = {}, [], {}
    for path in sorted(KSERVE.glob("*.yaml")):
        for doc in load_docs(path):
            if doc["kind"] == "ServingRuntime":
                runtimes[doc["metadata"]["name"]] = doc
            elif doc["kind"] == "ConfigMap":
                config_maps[doc["metadata"]["name"]] = doc
            else:
                assert doc["kind"] == "InferenceService", doc["kind"]
                services.append(doc)
    return runtimes, services, config_maps


# The protocols each runtime declares: HTTP (V2 REST) for all, gRPC (grpc-v2) for sigserve-grpc.
RUNTIME_PROTOCOLS = {"sigserve": ["v2"], "sigserve-config": ["v2"], "sigserve-grpc": ["v2", "grpc-v2"]}


def test_kserve_examples_cover_one_model_and_a_models_yaml():
    """One runtime per way of running sigserve: a model at /mnt/models (or MODEL_URI), a
    models.yaml, and a model for gRPC clients; each used by an example InferenceService."""
    runtimes, services, _ = kserve_objects()
    assert set(runtimes) == set(RUNTIME_PROTOCOLS)
    assert {s["spec"]["predictor"]["model"]["runtime"] for s in services} == set(runtimes)
    assert {s["spec"]["predictor"]["model"]["protocolVersion"] for s in services} == {"v2", "grpc-v2"}


def merge_by(key: str, base: list[dict], override: list[dict]) -> list[dict]:
    """A strategic merge of two lists of objects: entries with the same key replaced in place."""
    merged = {e[key]: e for e in base}
    merged.update({e[key]: e for e in override})
    return list(merged.values())


MERGE_KEYS = {"env": "name", "volumeMounts": "mountPath", "ports": "containerPort"}


def pod_kserve_would_create(runtime: dict, isvc: dict) -> tuple[dict, dict]:
    """The predictor pod: KServe strategic-merges the InferenceService's model container over the
    runtime's container (env by name, volumeMounts by mountPath) and the predictor's pod fields
    over the runtime's (volumes by name). KServe also adds its storage initializer and
    /mnt/models volume when storageUri is set."""
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    container = copy.deepcopy(runtime["spec"]["containers"][0])
    for key, value in model.items():
        if key in MODEL_EXTENSION_FIELDS:
            continue
        container[key] = merge_by(MERGE_KEYS[key], container.get(key, []), value) if key in MERGE_KEYS else value
    pod_spec = {k: v for k, v in predictor.items() if k not in PREDICTOR_EXTENSION_FIELDS}
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = merge_by("name", copy.deepcopy(runtime["spec"].get("volumes", [])),
                                   predictor.get("volumes", []))
    if "storageUri" in model:
        pod_spec["volumes"].append({"name": "kserve-provision-location", "emptyDir": {}})
        container.setdefault("volumeMounts", []).append(
            {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": isvc["metadata"]["name"]}, "spec": pod_spec}
    return pod, container


@pytest.mark.parametrize("name", sorted(RUNTIME_PROTOCOLS))
def test_serving_runtime_declares_what_kserve_needs(name):
    runtime = kserve_objects()[0][name]
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    spec = runtime["spec"]
    assert set(spec) <= SERVING_RUNTIME_SPEC_FIELDS, set(spec) - SERVING_RUNTIME_SPEC_FIELDS
    formats = spec["supportedModelFormats"]
    for f in formats:
        assert set(f) <= SUPPORTED_MODEL_FORMAT_FIELDS and isinstance(f.get("version", ""), str)
        assert f.get("priority", 1) >= 1
    assert {f["name"] for f in formats} == {"mlflow"}
    assert spec["protocolVersions"] == RUNTIME_PROTOCOLS[name]
    assert set(spec["protocolVersions"]) <= KSERVE_PROTOCOLS
    assert spec.get("multiModel", False) is False, "sigserve implements no ModelMesh / TrainedModel adapter"
    assert spec["annotations"]["prometheus.kserve.io/port"] == "8080"
    assert spec["annotations"]["prometheus.kserve.io/path"] == "/metrics"

    (container,) = spec["containers"]
    assert container["name"] == "kserve-container", "KServe merges the model container into this name"
    assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith("sigserve")
    assert "command" not in container, "the image's entrypoint (sigserve serve) must run"
    env = env_values(container)
    grpc = "grpc-v2" in spec["protocolVersions"]
    assert_sigserve_container(container, env, 8080, grpc=grpc)
    if grpc:
        # KServe's convention: a container port named h2c is gRPC (the predictor Service gives
        # it appProtocol kubernetes.io/h2c); the first port stays HTTP, the Service's port 80.
        assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http1", 8080), ("h2c", GRPC_PORT)]
    volumes = spec["volumes"]
    if name in ("sigserve", "sigserve-grpc"):
        assert any(f.get("autoSelect") for f in formats), "a default runtime for mlflow models"
        assert env["MODEL_URI"] == "/mnt/models", "where KServe's storage initializer puts the model"
        assert env["SIGSERVE_MODEL_NAME"] == "{{.Name}}", "clients name the model after the InferenceService"
        assert "SIGSERVE_CONFIG" not in env
    else:
        assert not any(f.get("autoSelect") for f in formats), "used only when an InferenceService names it"
        assert "MODEL_URI" not in env and "SIGSERVE_MODEL_NAME" not in env, "the models come from models.yaml"
        (mount,) = [m for m in container["volumeMounts"] if Path(env["SIGSERVE_CONFIG"]).parent == Path(m["mountPath"])]
        assert mount["readOnly"] is True and "subPath" not in mount
        assert mount["name"] not in {v["name"] for v in volumes}, "each InferenceService supplies its models"
        volumes = volumes + [{"name": mount["name"], "configMap": {"name": "any-models"}}]
    pod_volumes_cover_mounts({"volumes": volumes}, container)

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-runtime"},
           "spec": {"containers": spec["containers"], "volumes": volumes}}
    validate_k8s(pod, f"ServingRuntime {name} containers and volumes")


@pytest.mark.parametrize("isvc", kserve_objects()[1], ids=lambda d: d["metadata"]["name"])
def test_inference_service_runs_on_the_sigserve_runtime(isvc, tmp_path):
    runtimes, _, config_maps = kserve_objects()
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert set(isvc["spec"]) == {"predictor"}
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    runtime = runtimes[model["runtime"]]
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
    assert_sigserve_container(container, env, 8080, grpc="grpc-v2" in runtime["spec"]["protocolVersions"])
    assert_grace_covers_drain(pod["spec"], container, env)
    pod_volumes_cover_mounts(pod["spec"], container)
    if "SIGSERVE_CONFIG" in env:
        assert "MODEL_URI" not in env and "storageUri" not in model, "the models come from models.yaml"
        volume = models_config_volume(pod["spec"], container, env)
        config = models_yaml(config_maps[volume["name"]], tmp_path)
        names = {m.get("name") or m["uri"].removeprefix("models:/").split("@")[0].split("/")[0]
                 for m in config["models"]}
        assert set(config.get("traffic", {})) <= names, "a traffic policy names a served model"
        assert env["MLFLOW_TRACKING_URI"].startswith("http")
        assert_registry_secret(env, "mlflow-credentials")
    elif "storageUri" in model:
        assert model["storageUri"].split("://")[0] in {"s3", "gs", "pvc", "https", "hf", "oci", "azure"}
        assert env["MODEL_URI"] == "/mnt/models"
    else:
        assert env["MODEL_URI"].startswith("models:/"), "without storageUri sigserve fetches the model itself"
        assert env["MLFLOW_TRACKING_URI"].startswith("http")
        assert_registry_secret(env, "mlflow-credentials")


def predictor_service_kserve_would_create(isvc: dict, container: dict) -> dict:
    """The predictor Service of a Standard (RawDeployment) InferenceService, as KServe's service
    reconciler builds it from the container's ports: the first port is the Service's port 80,
    each other port keeps its number, and a port named *grpc* or *h2c* gets appProtocol
    kubernetes.io/h2c (pkg/controller/v1beta1/inferenceservice/reconcilers/service)."""
    ports = []
    for i, port in enumerate(container["ports"]):
        name = port.get("name", "")  # a single port may go unnamed
        service_port = {"name": name, "port": 80 if i == 0 else port["containerPort"],
                        "targetPort": port["containerPort"], "protocol": port.get("protocol", "TCP")}
        if "grpc" in name or "h2c" in name:
            service_port["appProtocol"] = "kubernetes.io/h2c"
        ports.append({k: v for k, v in service_port.items() if v != ""})
    name = isvc["metadata"]["name"] + "-predictor"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": f"isvc.{name}"}, "ports": ports}}


@pytest.mark.parametrize("isvc", kserve_objects()[1], ids=lambda d: d["metadata"]["name"])
def test_predictor_service_reaches_http_and_grpc(isvc):
    runtimes, _, _ = kserve_objects()
    model = isvc["spec"]["predictor"]["model"]
    _, container = pod_kserve_would_create(runtimes[model["runtime"]], isvc)
    service = predictor_service_kserve_would_create(isvc, container)
    validate_k8s(service, f"the predictor Service for InferenceService {isvc['metadata']['name']}")
    ports = service["spec"]["ports"]
    names = [p.get("name") for p in ports]
    assert len(ports) == 1 or (all(names) and len(set(names)) == len(names)), \
        "the API server wants a unique name on every port of a multi-port Service"
    assert (ports[0]["port"], ports[0]["targetPort"]) == (80, 8080), "HTTP (V2 REST, /invocations) on port 80"
    assert "appProtocol" not in ports[0]
    if model["protocolVersion"] == "grpc-v2":
        assert ports[1:] == [{"name": "h2c", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP",
                              "appProtocol": "kubernetes.io/h2c"}]
        mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
        assert mode not in KNATIVE_MODES, "Knative serves one container port: gRPC and HTTP need Standard mode"
    else:
        assert len(ports) == 1


def runtime_kserve_selects(runtimes: dict[str, dict], model: dict) -> str:
    """The runtime KServe picks for a model that names none (ModelSpec.GetSupportingRuntimes):
    a runtime whose autoSelect formats include the model's format and version and whose
    protocolVersions include the model's (v1 by default), the highest priority first."""
    protocol = model.get("protocolVersion", "v1")
    wanted = model["modelFormat"]
    candidates = []
    for name, runtime in runtimes.items():
        spec = runtime["spec"]
        formats = [f for f in spec["supportedModelFormats"] if f.get("autoSelect")
                   and f["name"] == wanted["name"] and wanted.get("version", f.get("version")) == f.get("version")]
        if formats and not spec.get("multiModel", False) and protocol in spec.get("protocolVersions", [protocol]):
            candidates.append((-(formats[0].get("priority") or 0), name))
    assert candidates, f"no runtime takes {wanted} over {protocol}"
    return min(candidates)[1]


def test_kserve_selects_the_grpc_runtime_only_for_grpc():
    """Installed together, the runtimes do not compete: an InferenceService naming no runtime gets
    sigserve for v2 and sigserve-grpc for grpc-v2."""
    runtimes, services, _ = kserve_objects()
    for version in ("2", "3"):
        model = {"modelFormat": {"name": "mlflow", "version": version}}
        assert runtime_kserve_selects(runtimes, {**model, "protocolVersion": "v2"}) == "sigserve"
        assert runtime_kserve_selects(runtimes, {**model, "protocolVersion": "grpc-v2"}) == "sigserve-grpc"
    (grpc_isvc,) = [s for s in services if s["spec"]["predictor"]["model"]["protocolVersion"] == "grpc-v2"]
    model = grpc_isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime_kserve_selects(runtimes, {k: v for k, v in model.items() if k != "runtime"})
