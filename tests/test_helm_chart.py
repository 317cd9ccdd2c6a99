"""The Helm chart (helm/sigserve), rendered offline with helm-python-sdk (Helm's own Go engine).

Each value set is linted and rendered; every manifest is checked against the Kubernetes
1.32 schemas with kubernetes-validate (strict: unknown fields are errors), and the fields
sigserve depends on are asserted one by one. Bad values must be refused by values.schema.json,
both by jsonschema directly and by Helm when it renders or lints.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import helm_python as helm
import jsonschema
import pytest
import yaml
from helpers import K8S_VERSION, by_kind, validate_k8s

from sigserve.serve_config import read_config

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "sigserve"
RELEASE = "scoring"
NAMESPACE = "ml-serving"
FULLNAME = "scoring-sigserve"
SERVER_DRAIN_EXTRA_SECONDS = 5  # the server drains for up to its request timeout plus 5 s

# Value sets a user would really pass: each is linted, rendered and validated.
VALUE_SETS: dict[str, dict] = {
    "defaults": {},
    "existing-secret": {
        "model": {"uri": "models:/churn@champion"},
        "registry": {"trackingUri": "https://mlflow.example.com", "existingSecret": "mlflow-credentials",
                     "secretKeys": {"token": "token", "username": "", "password": "MLFLOW_TRACKING_PASSWORD"}},
    },
    "hpa": {
        "model": {"uri": "models:/churn/3"},
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12,
                        "targetCPUUtilizationPercentage": 60, "targetMemoryUtilizationPercentage": 80,
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}},
    },
    "ingress": {
        "model": {"uri": "runs:/0123456789abcdef/model"},
        "ingress": {"enabled": True, "className": "nginx",
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "64m"},
                    "hosts": [{"host": "churn.models.example.com",
                               "paths": [{"path": "/", "pathType": "Prefix"}]}],
                    "tls": [{"secretName": "churn-tls", "hosts": ["churn.models.example.com"]}]},
    },
    "baked-model": {
        "model": {"baked": True},
        "image": {"repository": "registry.example.com:5000/ml/sigserve-churn", "tag": "2024.06.1"},
        "probes": {"startup": {"path": "/ping", "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 30},
                   "liveness": {"path": "/ping", "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}},
    },
    "everything-else": {
        "model": {"uri": "models:/churn@champion"},
        "registry": {"trackingUri": "http://mlflow.mlflow.svc.cluster.local:5000", "insecureTls": True},
        "image": {"digest": "sha256:" + "ab" * 32},
        "server": {"workers": 4, "timeout": 120.5, "maxBodyBytes": 1073741824, "batch": {"maxSize": 64, "maxWaitMs": 1.5},
                   "logLevel": "debug", "accessLog": False},
        "shutdown": {"preStopSleepSeconds": 15, "preStopAction": "sleep", "marginSeconds": 5},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podDisruptionBudget": {"minAvailable": "50%"},
        "cache": {"existingClaim": "sigserve-model-cache"},
        "tmp": {"medium": "Memory", "sizeLimit": "128Mi"},
        "env": [{"name": "AWS_REGION", "value": "eu-west-1"}],
        "envFrom": [{"secretRef": {"name": "s3-credentials"}}],
        "extraArgs": ["--log-level", "debug"],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
        "service": {"type": "NodePort", "nodePort": 30080},
        "serviceAccount": {"create": False, "name": "ml-serving"},
        "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "DoNotSchedule",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "sigserve"}}}],
        "podAnnotations": {"example.com/team": "ml"},
        "priorityClassName": "high-priority",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    },
    "auth": {
        "model": {"uri": "models:/churn@champion"},
        "auth": {"enabled": True, "existingSecret": "churn-tokens"},
        "serviceMonitor": {"enabled": True, "bearerTokenSecret": {"key": "prometheus-token"}},
    },
    "tls": {
        "model": {"uri": "models:/churn@champion"},
        "tls": {"enabled": True, "existingSecret": "churn-tls"},
        "ingress": {"enabled": True, "className": "nginx",
                    "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"},
                    "hosts": [{"host": "churn.models.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}]},
        "serviceMonitor": {"enabled": True, "tlsConfig": {"ca": {"secret": {"name": "churn-tls", "key": "ca.crt"}},
                                                          "serverName": f"{FULLNAME}.{NAMESPACE}.svc"}},
    },
    "auth-and-tls": {
        "model": {"uri": "models:/churn@champion"},
        "auth": {"enabled": True, "existingSecret": "churn-tokens", "tokensKey": "api.tokens",
                 "metricsWithoutAuth": True},
        "tls": {"enabled": True, "existingSecret": "churn-tls"},
        "server": {"workers": 2},
        "serviceMonitor": {"enabled": True, "tlsConfig": {"insecureSkipVerify": True}},
    },
    "minimal": {
        "model": {"uri": "/models/churn"},
        "replicaCount": 1,
        "podDisruptionBudget": {"enabled": False},
        "topologySpread": {"enabled": False},
        "extraVolumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}],
        "extraVolumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
    },
    # several models: two versions of churn with a canary, and fraud, in the chart's ConfigMap
    "models": {
        "models": [{"uri": "models:/churn@champion", "reload_interval": 60},
                   {"uri": "models:/churn@challenger"},
                   {"uri": "models:/fraud/3", "name": "fraud", "batch_max_size": 32, "batch_max_wait_ms": 1.5,
                    "max_concurrency": 16}],
        "traffic": {"churn": {"policy": "canary", "share": 0.1, "sticky_header": "x-user-id"}},
        "maxLoadedModels": 2,
        "registry": {"trackingUri": "https://mlflow.example.com", "existingSecret": "mlflow-credentials"},
    },
    "models-shadow": {
        "models": [{"uri": "models:/churn@champion"}, {"uri": "models:/churn@challenger"}],
        "traffic": {"churn": {"policy": "shadow"}},
        "podAnnotations": {"example.com/team": "ml"},
    },
    "existing-config-map": {
        "modelsConfig": {"existingConfigMap": "scoring-models", "key": "config.yaml"},
        "maxLoadedModels": 50,
    },
    # gRPC (on by default): off, or with the kubelet's gRPC probes on a port of its own
    "grpc-off": {
        "model": {"uri": "models:/churn@champion"},
        "grpc": {"enabled": False},
        "serviceMonitor": {"enabled": True},
    },
    "grpc-probes": {
        "model": {"uri": "models:/churn@champion"},
        "grpc": {"port": 9000, "probes": True},
        "service": {"type": "LoadBalancer", "grpcPort": 443, "grpcNodePort": 30443},
        "probes": {"liveness": {"path": "/ping", "periodSeconds": 20, "timeoutSeconds": 2, "failureThreshold": 6},
                   "readiness": {"path": "/health", "periodSeconds": 7, "timeoutSeconds": 4, "failureThreshold": 3,
                                 "successThreshold": 2}},
        "auth": {"enabled": True, "existingSecret": "churn-tokens", "metricsWithoutAuth": True},
    },
}
MODELS_VALUE_SETS = {"models", "models-shadow", "existing-config-map"}
MODELS_DIR = "/etc/sigserve/models"

# Values values.schema.json must refuse: what a user got wrong -> (the path of the refused value, values).
BAD_VALUE_SETS: dict[str, tuple[str, dict]] = {
    "misspelt top-level key": ("", {"replicas": 3}),
    "misspelt nested key": ("server", {"server": {"worker": 2}}),
    "unknown log format": ("server.logFormat", {"server": {"logFormat": "xml"}}),
    "unknown log level": ("server.logLevel", {"server": {"logLevel": "verbose"}}),
    "zero workers": ("server.workers", {"server": {"workers": 0}}),
    "zero native threads": ("server.nativeThreads", {"server": {"nativeThreads": 0}}),
    "workers as a string": ("server.workers", {"server": {"workers": "4"}}),
    "zero timeout": ("server.timeout", {"server": {"timeout": 0}}),
    "negative reload interval": ("server.reloadInterval", {"server": {"reloadInterval": -1}}),
    "privileged port for a non-root container": ("server.port", {"server": {"port": 80}}),
    "model URI without its scheme": ("model.uri", {"model": {"uri": "churn@champion"}}),
    "relative model path": ("model.uri", {"model": {"uri": "./model"}}),
    "baked model and a URI": ("model.uri", {"model": {"baked": True, "uri": "models:/churn@champion"}}),
    "liveness on the scoring endpoint": ("probes.liveness.path", {"probes": {"liveness": {"path": "/invocations"}}}),
    "readiness on the liveness endpoint": ("probes.readiness.path", {"probes": {"readiness": {"path": "/v2/health/live"}}}),
    "liveness successThreshold above 1": ("probes.liveness.successThreshold", {"probes": {"liveness": {"successThreshold": 2}}}),
    "root user": ("podSecurityContext.runAsUser", {"podSecurityContext": {"runAsUser": 0}}),
    "runAsNonRoot off": ("securityContext.runAsNonRoot", {"securityContext": {"runAsNonRoot": False}}),
    "privileged container": ("securityContext.privileged", {"securityContext": {"privileged": True}}),
    "unknown pull policy": ("image.pullPolicy", {"image": {"pullPolicy": "Sometimes"}}),
    "uppercase image repository": ("image.repository", {"image": {"repository": "Registry/SigServe"}}),
    "bad digest": ("image.digest", {"image": {"digest": "sha256:xyz"}}),
    "unknown service type": ("service.type", {"service": {"type": "ExternalName"}}),
    "nodePort out of range": ("service.nodePort", {"service": {"type": "NodePort", "nodePort": 80}}),
    "ingress without hosts": ("ingress.hosts", {"ingress": {"enabled": True, "hosts": []}}),
    "ingress path without slash": ("ingress.hosts.0.paths.0.path", {"ingress": {"enabled": True, "hosts": [
        {"host": "a.example.com", "paths": [{"path": "api", "pathType": "Prefix"}]}]}}),
    "ingress bad pathType": ("ingress.hosts.0.paths.0.pathType", {"ingress": {"enabled": True, "hosts": [
        {"host": "a.example.com", "paths": [{"path": "/", "pathType": "Regex"}]}]}}),
    "HPA with zero minReplicas": ("autoscaling.minReplicas", {"autoscaling": {"enabled": True, "minReplicas": 0}}),
    "HPA without any metric": ("autoscaling", {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}),
    "PDB percentage without %": ("podDisruptionBudget.maxUnavailable", {"podDisruptionBudget": {"maxUnavailable": "50"}}),
    "PDB with neither bound": ("podDisruptionBudget", {"podDisruptionBudget": {"enabled": True, "maxUnavailable": None}}),
    "negative preStop sleep": ("shutdown.preStopSleepSeconds", {"shutdown": {"preStopSleepSeconds": -5}}),
    "unknown preStop action": ("shutdown.preStopAction", {"shutdown": {"preStopAction": "http"}}),
    "bad cache size": ("cache.sizeLimit", {"cache": {"sizeLimit": "lots"}}),
    "bad existing secret name": ("registry.existingSecret", {"registry": {"existingSecret": "MLflow_Credentials"}}),
    "bad ServiceMonitor interval": ("serviceMonitor.interval", {"serviceMonitor": {"enabled": True, "interval": "30 seconds"}}),
    "bad topology policy": ("topologySpread.whenUnsatisfiable", {"topologySpread": {"whenUnsatisfiable": "Maybe"}}),
    "topology spread with no keys": ("topologySpread.topologyKeys", {"topologySpread": {"enabled": True, "topologyKeys": []}}),
    "env entry without a name": ("env.0", {"env": [{"value": "x"}]}),
    "requests that are not quantities": ("resources.requests.cpu", {"resources": {"requests": {"cpu": "half"}}}),
    "auth without its Secret": ("auth.existingSecret", {"auth": {"enabled": True}}),
    "TLS without its Secret": ("tls.existingSecret", {"tls": {"enabled": True}}),
    "bad auth Secret name": ("auth.existingSecret", {"auth": {"enabled": True, "existingSecret": "API_Tokens"}}),
    "token key with a slash": ("auth.tokensKey", {"auth": {"tokensKey": "tokens/v1"}}),
    "metricsWithoutAuth as a string": ("auth.metricsWithoutAuth", {"auth": {"metricsWithoutAuth": "yes"}}),
    "misspelt auth key": ("auth", {"auth": {"secretName": "tokens"}}),
    "misspelt TLS key": ("tls", {"tls": {"enabled": True, "existingSecret": "t", "certFile": "/x"}}),
    "bad scrape token key": ("serviceMonitor.bearerTokenSecret.key",
                             {"serviceMonitor": {"bearerTokenSecret": {"key": "prometheus token"}}}),
    "models entry without a uri": ("models.0", {"models": [{"name": "churn"}]}),
    "models entry with a camelCase key": ("models.0", {"models": [{"uri": "models:/churn/1", "reloadInterval": 5}]}),
    "models URI without its scheme": ("models.0.uri", {"models": [{"uri": "churn@champion"}]}),
    "models name with a slash": ("models.0.name", {"models": [{"uri": "models:/churn/1", "name": "churn/v1"}]}),
    "models zero max_concurrency": ("models.0.max_concurrency", {"models": [{"uri": "/m", "max_concurrency": 0}]}),
    "models and model.uri": ("model.uri", {"models": [{"uri": "models:/churn/1"}], "model": {"uri": "/m"}}),
    "models and a baked model": ("model.baked", {"models": [{"uri": "models:/churn/1"}], "model": {"baked": True}}),
    "models and an existing ConfigMap": ("modelsConfig.existingConfigMap", {
        "models": [{"uri": "models:/churn/1"}], "modelsConfig": {"existingConfigMap": "scoring-models"}}),
    "existing ConfigMap and model.uri": ("model.uri", {
        "modelsConfig": {"existingConfigMap": "scoring-models"}, "model": {"uri": "/m"}}),
    "bad existing ConfigMap name": ("modelsConfig.existingConfigMap", {"modelsConfig": {"existingConfigMap": "Models"}}),
    "traffic without models": ("models", {"traffic": {"churn": {"policy": "shadow"}}}),
    "unknown traffic policy": ("traffic.churn.policy", {
        "models": [{"uri": "models:/churn@a"}, {"uri": "models:/churn@b"}], "traffic": {"churn": {"policy": "ab"}}}),
    "canary without a share": ("traffic.churn", {
        "models": [{"uri": "models:/churn@a"}, {"uri": "models:/churn@b"}], "traffic": {"churn": {"policy": "canary"}}}),
    "canary share as a percentage": ("traffic.churn.share", {
        "models": [{"uri": "models:/churn@a"}, {"uri": "models:/churn@b"}],
        "traffic": {"churn": {"policy": "canary", "share": 10}}}),
    "shadow with a share": ("traffic.churn.share", {
        "models": [{"uri": "models:/churn@a"}, {"uri": "models:/churn@b"}],
        "traffic": {"churn": {"policy": "shadow", "share": 0.5}}}),
    "sticky header with a space": ("traffic.churn.sticky_header", {
        "models": [{"uri": "models:/churn@a"}, {"uri": "models:/churn@b"}],
        "traffic": {"churn": {"policy": "canary", "share": 0.5, "sticky_header": "x user"}}}),
    "zero maxLoadedModels": ("maxLoadedModels", {"maxLoadedModels": 0}),
    "privileged gRPC port": ("grpc.port", {"grpc": {"port": 443}}),
    "gRPC port as a string": ("grpc.port", {"grpc": {"port": "8081"}}),
    "gRPC off as a string": ("grpc.enabled", {"grpc": {"enabled": "false"}}),
    "misspelt gRPC key": ("grpc", {"grpc": {"enable": False}}),
    "gRPC probes without gRPC": ("grpc.probes", {"grpc": {"enabled": False, "probes": True}}),
    "gRPC Service port out of range": ("service.grpcPort", {"service": {"grpcPort": 70000}}),
    "gRPC nodePort out of range": ("service.grpcNodePort", {"service": {"type": "NodePort", "grpcNodePort": 8081}}),
}


# ---------------------------------------------------------------------------------------------
# helpers

@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def render(chart, values: dict) -> tuple[list[dict], str]:
    """The chart's manifests as parsed objects, and the rendered NOTES.txt."""
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict] = []
    notes = ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        assert path.endswith(".yaml"), path
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs, notes


def container(docs: list[dict]) -> dict:
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["sigserve"]
    return pod["containers"][0]


def env_of(c: dict) -> dict[str, dict]:
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names)), f"duplicate env entries: {names}"
    return {e["name"]: e for e in c["env"]}


def validate_crd_service_monitor(doc: dict, service: dict) -> None:
    """ServiceMonitor is a Prometheus Operator CRD, absent from the Kubernetes schemas: check the
    fields that make Prometheus scrape sigserve."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    spec = doc["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels", "scheme", "tlsConfig",
                             "authorization"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint["interval"])


def merged(chart, overrides: dict) -> dict:
    """Chart defaults coalesced with overrides, exactly as Helm does before it validates."""
    return chart.merge_values(overrides)


# ---------------------------------------------------------------------------------------------
# the chart itself

def test_chart_metadata_and_app_version(chart):
    meta = chart.metadata
    assert meta["name"] == "sigserve"
    assert meta["apiVersion"] == "v2"
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)[1]
    assert meta["appVersion"] == version, "Chart.yaml appVersion must follow the package version"


def test_schema_is_valid_and_accepts_the_defaults(chart, schema):
    jsonschema.Draft7Validator.check_schema(schema)
    assert chart.schema == schema
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_is_clean(name):
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, kube_version=f"v{K8S_VERSION}")
    assert report["errors"] == []
    # severity 2 = warning, 3 = error; 1 (info) is only "icon is recommended"
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_validates_against_kubernetes(chart, schema, name):
    values = VALUE_SETS[name]
    jsonschema.Draft7Validator(schema).validate(merged(chart, values))
    docs, notes = render(chart, values)
    assert docs and notes
    kinds = by_kind(docs)
    for doc in docs:
        assert doc["metadata"]["namespace"] == NAMESPACE
        if doc["kind"] == "ServiceMonitor":
            validate_crd_service_monitor(doc, kinds["Service"])
            continue
        validate_k8s(doc, name)


@pytest.mark.parametrize("name, expected", [
    ("defaults", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}),
    ("existing-secret", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}),
    ("hpa", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "HorizontalPodAutoscaler"}),
    ("ingress", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "Ingress"}),
    ("baked-model", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}),
    ("everything-else", {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"}),
    ("minimal", {"Deployment", "Service", "ServiceAccount"}),
    ("auth", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor"}),
    ("tls", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "Ingress", "ServiceMonitor"}),
    ("auth-and-tls", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor"}),
    ("models", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"}),
    ("models-shadow", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"}),
    ("existing-config-map", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}),
    ("grpc-off", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor"}),
    ("grpc-probes", {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}),
])
def test_optional_objects_only_when_enabled(chart, name, expected):
    docs, _ = render(chart, VALUE_SETS[name])
    assert set(by_kind(docs)) == expected


# ---------------------------------------------------------------------------------------------
# what the Deployment must say for sigserve to work

def test_deployment_defaults_follow_the_container_contract(chart):
    docs, _ = render(chart, {})
    kinds = by_kind(docs)
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    c = container(docs)

    assert c["image"] == f"sigserve:{chart.metadata['appVersion']}"
    assert "command" not in c and "args" not in c, "the image's entrypoint (sigserve serve) must run as is"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "grpc", "containerPort": 8081, "protocol": "TCP"}]

    env = env_of(c)
    assert env["SIGSERVE_HOST"]["value"] == "0.0.0.0"
    assert env["SIGSERVE_PORT"]["value"] == "8080"
    assert env["SIGSERVE_GRPC_PORT"]["value"] == "8081", "the gRPC port the container declares, whatever the image's default"
    assert env["SIGSERVE_LOG_FORMAT"]["value"] == "json"
    assert env["SIGSERVE_TIMEOUT"]["value"] == "60"
    assert env["SIGSERVE_MAX_BODY_BYTES"]["value"] == "67108864"
    assert env["SIGSERVE_NATIVE_THREADS"]["value"] == "1"
    assert all(isinstance(e.get("value", ""), str) for e in c["env"])
    assert "MODEL_URI" not in env, "with no model.uri the image's MODEL_URI must not be overridden"
    assert not any(n.startswith("MLFLOW_") for n in env)

    # probes: KServe V2 health endpoints on the named port, startup long enough for a model load
    for kind, path in [("startupProbe", "/v2/health/live"), ("livenessProbe", "/v2/health/live"),
                       ("readinessProbe", "/v2/health/ready")]:
        assert c[kind]["httpGet"] == {"path": path, "port": "http"}, kind
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300

    # non-root, read-only root filesystem, no privileges
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsGroup"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False

    # writable volumes: the model cache (SIGSERVE_CACHE_DIR) and /tmp
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert env["SIGSERVE_CACHE_DIR"]["value"] == "/var/cache/sigserve"
    assert set(mounts) == {"/var/cache/sigserve", "/tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/var/cache/sigserve"]]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {"sizeLimit": "256Mi"}

    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert c["resources"]["limits"] == {"memory": "2Gi"}

    # replicas and spreading
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    spread = pod["topologySpreadConstraints"]
    assert [t["topologyKey"] for t in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for t in spread:
        assert t["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert t["whenUnsatisfiable"] == "ScheduleAnyway"
        assert t["matchLabelKeys"] == ["pod-template-hash"]

    # the Service and the PDB find the pods, and the Service reaches the container port
    service = kinds["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}]
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"] == FULLNAME


def grace_and_prestop(docs: list[dict]) -> tuple[int, int]:
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    pre_stop = container(docs)["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        sleep = pre_stop["sleep"]["seconds"]
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep" and len(command) == 2
        sleep = int(command[1])
    return pod["terminationGracePeriodSeconds"], sleep


@pytest.mark.parametrize("name", VALUE_SETS)
def test_grace_period_covers_prestop_and_drain(chart, name):
    """Rolling updates drop no request: the pod is killed only after the preStop sleep and the
    server's full drain (timeout + 5 s)."""
    docs, _ = render(chart, VALUE_SETS[name])
    grace, sleep = grace_and_prestop(docs)
    timeout = float(env_of(container(docs))["SIGSERVE_TIMEOUT"]["value"])
    assert sleep >= 5, "endpoints need a few seconds to deregister before SIGTERM"
    assert grace >= sleep + math.ceil(timeout) + SERVER_DRAIN_EXTRA_SECONDS
    strategy = by_kind(docs)["Deployment"]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_grace_period_arithmetic(chart):
    docs, _ = render(chart, {"server": {"timeout": 120.5}, "shutdown": {"preStopSleepSeconds": 15, "marginSeconds": 7}})
    assert grace_and_prestop(docs) == (15 + 121 + 5 + 7, 15)
    assert env_of(container(docs))["SIGSERVE_TIMEOUT"]["value"] == "120.5"

    docs, _ = render(chart, {"shutdown": {"terminationGracePeriodSeconds": 75}})
    assert grace_and_prestop(docs) == (75, 10)

    docs, _ = render(chart, {"shutdown": {"preStopAction": "sleep", "preStopSleepSeconds": 20}})
    assert container(docs)["lifecycle"]["preStop"] == {"sleep": {"seconds": 20}}
    assert grace_and_prestop(docs)[0] == 20 + 60 + 5 + 10


def test_too_short_grace_period_is_refused(chart):
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds=74 is shorter than"):
        render(chart, {"shutdown": {"terminationGracePeriodSeconds": 74}})
    # (helm lint renders in lint mode, where Helm turns `fail` into a log line, so only a real
    # render refuses it; helm install and helm template render for real.)
    with pytest.raises(helm.HelmRenderError, match="=120 is shorter than .* = 315"):
        render(chart, {"server": {"timeout": 300}, "shutdown": {"terminationGracePeriodSeconds": 120}})


def test_existing_secret_feeds_registry_credentials(chart):
    docs, _ = render(chart, VALUE_SETS["existing-secret"])
    env = env_of(container(docs))
    assert env["MODEL_URI"] == {"name": "MODEL_URI", "value": "models:/churn@champion"}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.example.com"
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "mlflow-credentials", "key": "token", "optional": True}}
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "MLFLOW_TRACKING_PASSWORD"
    assert "MLFLOW_TRACKING_USERNAME" not in env, "an empty key name means: not in the Secret"
    assert not any(d["kind"] == "Secret" for d in docs), "the chart must never create the credentials"

    docs, _ = render(chart, {"registry": {"existingSecret": "creds"}})
    env = env_of(container(docs))
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "creds", "key": var, "optional": True}


def test_baked_model(chart):
    docs, notes = render(chart, VALUE_SETS["baked-model"])
    c = container(docs)
    assert c["image"] == "registry.example.com:5000/ml/sigserve-churn:2024.06.1"
    assert env_of(c)["MODEL_URI"]["value"] == "/opt/model"
    assert c["startupProbe"]["httpGet"]["path"] == "/ping"
    assert by_kind(docs)["Deployment"]["metadata"]["labels"]["app.kubernetes.io/version"] == "2024.06.1"
    assert "baked into the image" in notes


def test_hpa_owns_the_replica_count(chart):
    docs, _ = render(chart, VALUE_SETS["hpa"])
    kinds = by_kind(docs)
    assert "replicas" not in kinds["Deployment"]["spec"], "a fixed replica count would fight the HPA"
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]}
    assert targets == {"cpu": 60, "memory": 80}
    assert hpa["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}

    with pytest.raises(helm.HelmRenderError, match="minReplicas .* is greater than"):
        render(chart, {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}})


def test_ingress_routes_to_the_service(chart):
    docs, notes = render(chart, VALUE_SETS["ingress"])
    kinds = by_kind(docs)
    ingress = kinds["Ingress"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "churn-tls", "hosts": ["churn.models.example.com"]}]
    (rule,) = ingress["rules"]
    assert rule["host"] == "churn.models.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == kinds["Service"]["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in kinds["Service"]["spec"]["ports"]}
    assert "URL=https://churn.models.example.com" in notes
    assert env_of(container(docs))["MODEL_URI"]["value"] == "runs:/0123456789abcdef/model"


def test_everything_else_is_wired_through(chart):
    docs, _ = render(chart, VALUE_SETS["everything-else"])
    kinds = by_kind(docs)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    env = env_of(c)
    assert c["image"] == "sigserve@sha256:" + "ab" * 32
    assert env["SIGSERVE_WORKERS"]["value"] == "4"
    assert env["SIGSERVE_MAX_BODY_BYTES"]["value"] == "1073741824", "no float formatting of large integers"
    assert env["SIGSERVE_BATCH_MAX_SIZE"]["value"] == "64"
    assert env["SIGSERVE_BATCH_MAX_WAIT_MS"]["value"] == "1.5"
    assert env["SIGSERVE_ACCESS_LOG"]["value"] == "false"
    assert env["SIGSERVE_LOG_LEVEL"]["value"] == "debug"
    assert env["MLFLOW_TRACKING_INSECURE_TLS"]["value"] == "true"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    assert c["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert c["args"] == ["--log-level", "debug"]
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    assert pod["terminationGracePeriodSeconds"] == 15 + 121 + 5 + 5
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-cache"] == {"name": "model-cache",
                                      "persistentVolumeClaim": {"claimName": "sigserve-model-cache"}}
    assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "128Mi"}
    assert {"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True} in c["volumeMounts"]
    assert pod["serviceAccountName"] == "ml-serving"
    assert pod["topologySpreadConstraints"] == VALUE_SETS["everything-else"]["topologySpreadConstraints"]
    assert pod["priorityClassName"] == "high-priority"
    assert kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"] == {"example.com/team": "ml"}
    assert kinds["Service"]["spec"]["ports"][0]["nodePort"] == 30080
    assert kinds["PodDisruptionBudget"]["spec"] == {
        "minAvailable": "50%", "selector": kinds["PodDisruptionBudget"]["spec"]["selector"]}
    monitor = kinds["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_notes_show_how_to_try_it(chart):
    _, notes = render(chart, VALUE_SETS["existing-secret"])
    assert f"kubectl -n {NAMESPACE} port-forward svc/{FULLNAME} 8080:80" in notes
    assert "curl -s $URL/invocations -H 'Content-Type: application/json'" in notes
    assert "curl -s $URL/v2/health/ready" in notes
    assert "models:/churn@champion" in notes
    assert "WARNING" not in notes
    _, notes = render(chart, {})
    assert "WARNING: model.uri is empty" in notes


# ---------------------------------------------------------------------------------------------
# authentication and TLS

def secret_volume(pod: dict, container_: dict, mount_path: str) -> tuple[dict, dict]:
    """The Secret volume mounted at `mount_path`, and its mount: whole, read-only, no subPath (so
    a rotated Secret reaches the running pod)."""
    (mount,) = [m for m in container_["volumeMounts"] if m["mountPath"] == mount_path]
    assert mount == {"name": mount["name"], "mountPath": mount_path, "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["defaultMode"] == 0o440, "root-owned files the pod's fsGroup may read"
    return volume["secret"], mount


def test_defaults_have_neither_auth_nor_tls(chart):
    docs, notes = render(chart, {})
    c = container(docs)
    assert not any(n.startswith(("SIGSERVE_AUTH", "SIGSERVE_TLS", "SIGSERVE_METRICS")) for n in env_of(c))
    assert all(p.get("scheme", "HTTP") == "HTTP" for p in (c[k]["httpGet"] for k in
                                                           ("startupProbe", "livenessProbe", "readinessProbe")))
    assert "consider auth.enabled, tls.enabled" in notes


def test_auth_mounts_the_token_secret_as_a_file(chart):
    docs, notes = render(chart, VALUE_SETS["auth"])
    kinds = by_kind(docs)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    env = env_of(c)
    secret, mount = secret_volume(pod, c, "/etc/sigserve/auth")
    assert secret["secretName"] == "churn-tokens"
    assert secret["items"] == [{"key": "tokens", "path": "tokens"}]
    assert env["SIGSERVE_AUTH_TOKEN_FILE"]["value"] == mount["mountPath"] + "/tokens"
    assert env["SIGSERVE_METRICS_WITHOUT_AUTH"]["value"] == "false"
    assert "SIGSERVE_AUTH_TOKENS" not in env, "tokens never go into the pod spec"
    assert not any(d["kind"] == "Secret" for d in docs), "the chart never creates the tokens"
    # probes need no token and stay on plain HTTP without TLS
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    (endpoint,) = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer",
                                         "credentials": {"name": "churn-tokens", "key": "prometheus-token"}}
    assert "scheme" not in endpoint
    assert "get secret churn-tokens -o jsonpath='{.data.tokens}'" in notes
    assert 'curl -s -H "Authorization: Bearer $TOKEN" $URL/invocations' in notes
    assert "curl -s $URL/v2/health/ready" in notes


def test_tls_serves_probes_and_scrapes_over_https(chart):
    docs, notes = render(chart, VALUE_SETS["tls"])
    kinds = by_kind(docs)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    env = env_of(c)
    secret, mount = secret_volume(pod, c, "/etc/sigserve/tls")
    assert secret["secretName"] == "churn-tls"
    assert secret["items"] == [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]
    assert env["SIGSERVE_TLS_CERT"]["value"] == mount["mountPath"] + "/tls.crt"
    assert env["SIGSERVE_TLS_KEY"]["value"] == mount["mountPath"] + "/tls.key"
    assert c["ports"] == [{"name": "https", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "grpc", "containerPort": 8081, "protocol": "TCP"}]
    for kind, path in [("startupProbe", "/v2/health/live"), ("livenessProbe", "/v2/health/live"),
                       ("readinessProbe", "/v2/health/ready")]:
        assert c[kind]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}, kind
    assert kinds["Service"]["spec"]["ports"] == [
        {"name": "https", "port": 80, "targetPort": "https", "protocol": "TCP", "appProtocol": "https"},
        {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}]
    backend = kinds["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["port"] == {"name": "https"}
    (endpoint,) = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] == "https" and endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == VALUE_SETS["tls"]["serviceMonitor"]["tlsConfig"]
    assert "authorization" not in endpoint, "no auth: no scrape token"
    assert "TLS is on" in notes and "backend-protocol" in notes
    assert "SIGSERVE_AUTH_TOKEN_FILE" not in env_of(c)


def test_auth_and_tls_with_metrics_left_open(chart):
    docs, notes = render(chart, VALUE_SETS["auth-and-tls"])
    kinds = by_kind(docs)
    c = container(docs)
    env = env_of(c)
    assert env["SIGSERVE_METRICS_WITHOUT_AUTH"]["value"] == "true"
    assert env["SIGSERVE_TLS_CERT"]["value"].startswith("/etc/sigserve/tls/")
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    secret, _ = secret_volume(pod, c, "/etc/sigserve/auth")
    assert secret["items"] == [{"key": "api.tokens", "path": "tokens"}]
    (endpoint,) = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["scheme"] == "https" and "authorization" not in endpoint
    assert "/metrics is left open" in notes
    assert "jsonpath='{.data.api\\.tokens}'" in notes, "a dot in a key name is escaped for jsonpath"
    assert "URL=https://127.0.0.1:8080" in notes and "curl -sk $URL/v2/health/ready" in notes


def test_scrape_needs_a_token_when_auth_covers_metrics(chart):
    values = {"auth": {"enabled": True, "existingSecret": "churn-tokens"}, "serviceMonitor": {"enabled": True}}
    with pytest.raises(helm.HelmRenderError, match="set serviceMonitor.bearerTokenSecret.key"):
        render(chart, values)
    docs, _ = render(chart, {**values, "serviceMonitor": {"enabled": True, "bearerTokenSecret": {
        "name": "prometheus-scrape", "key": "token"}}})
    (endpoint,) = by_kind(docs)["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == {"name": "prometheus-scrape", "key": "token"}


# ---------------------------------------------------------------------------------------------
# gRPC: the Open Inference Protocol's gRPC API and grpc.health.v1 on a port of their own

HTTP_PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def test_grpc_is_exposed_by_default(chart):
    docs, notes = render(chart, {})
    kinds = by_kind(docs)
    c = container(docs)
    (grpc,) = [p for p in c["ports"] if p["name"] == "grpc"]
    assert env_of(c)["SIGSERVE_GRPC_PORT"]["value"] == str(grpc["containerPort"]) == "8081"
    (service_port,) = [p for p in kinds["Service"]["spec"]["ports"] if p["name"] == "grpc"]
    assert service_port["targetPort"] == grpc["name"] and service_port["appProtocol"] == "grpc"
    for kind in HTTP_PROBES:
        assert set(c[kind]) & {"httpGet", "grpc"} == {"httpGet"}, "HTTP probes unless grpc.probes"
    assert f"port-forward svc/{FULLNAME} 8081:8081" in notes
    assert f"{FULLNAME}.{NAMESPACE}.svc.cluster.local:8081" in notes
    assert "import tritonclient.grpc" in notes and "headers=" not in notes, "no auth: no token metadata"


def test_grpc_off_leaves_no_port_or_probe(chart):
    docs, notes = render(chart, VALUE_SETS["grpc-off"])
    kinds = by_kind(docs)
    c = container(docs)
    assert env_of(c)["SIGSERVE_GRPC_PORT"]["value"] == "0", "0 turns the server's gRPC port off"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert kinds["Service"]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    for kind in HTTP_PROBES:
        assert "grpc" not in c[kind] and c[kind]["httpGet"]["port"] == "http", kind
    (endpoint,) = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert "gRPC" not in notes and "8081" not in json.dumps(docs) + notes


def test_grpc_probes_keep_the_http_probes_timings(chart):
    values = VALUE_SETS["grpc-probes"]
    docs, notes = render(chart, values)
    kinds = by_kind(docs)
    c = container(docs)
    assert env_of(c)["SIGSERVE_GRPC_PORT"]["value"] == "9000"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "grpc", "containerPort": 9000, "protocol": "TCP"}]
    http = container(render(chart, {**values, "grpc": {"port": 9000, "probes": False}})[0])
    for kind, timings, service in (("livenessProbe", values["probes"]["liveness"], ""),
                                   ("readinessProbe", values["probes"]["readiness"], "inference.GRPCInferenceService")):
        # the kubelet's own gRPC probe: a grpc.health.v1 Check on a port number (a gRPC probe
        # takes no port name); "" is the server (live), the inference service its readiness
        assert c[kind]["grpc"] == {"port": 9000, "service": service}, kind
        assert "httpGet" not in c[kind], kind
        assert {k: v for k, v in c[kind].items() if k != "grpc"} == \
            {k: v for k, v in http[kind].items() if k != "httpGet"}, f"{kind}: the same timings as over HTTP"
        assert {k: c[kind][k] for k in timings if k != "path"} == {k: v for k, v in timings.items() if k != "path"}
    assert c["startupProbe"] == http["startupProbe"], "the startup probe stays on HTTP"
    assert c["startupProbe"]["httpGet"]["port"] == "http"
    assert kinds["Service"]["spec"]["ports"][1] == {
        "name": "grpc", "port": 443, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc", "nodePort": 30443}
    assert "nodePort" not in kinds["Service"]["spec"]["ports"][0], "service.nodePort is unset"
    assert f"get svc {FULLNAME} -o jsonpath='{{.status.loadBalancer.ingress[0].ip}}'):443" in notes
    assert "is_server_ready(headers={'authorization': 'Bearer $TOKEN'})" in notes
    assert "grpc.health.v1 needs none" in notes


@pytest.mark.parametrize("values, message", [
    ({"grpc": {"port": 8080}}, "grpc.port and server.port are both 8080"),
    ({"server": {"port": 9000}, "grpc": {"port": 9000}}, "grpc.port and server.port are both 9000"),
    ({"service": {"grpcPort": 80}}, "service.grpcPort and service.port are both 80"),
    ({"tls": {"enabled": True, "existingSecret": "churn-tls"}, "grpc": {"probes": True}},
     "which the kubelet's gRPC probe cannot speak"),
])
def test_grpc_values_the_template_refuses(chart, values, message):
    chart.validate_schema(values)
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(chart, values)


def test_grpc_off_frees_its_ports(chart):
    """With gRPC off, its port numbers may be the HTTP ones: nothing listens on them."""
    docs, _ = render(chart, {"grpc": {"enabled": False, "port": 8080}, "service": {"grpcPort": 80}})
    assert env_of(container(docs))["SIGSERVE_GRPC_PORT"]["value"] == "0"
    for doc in docs:
        validate_k8s(doc, "grpc off")


# ---------------------------------------------------------------------------------------------
# several models: models.yaml in a ConfigMap (SIGSERVE_CONFIG)

def models_mount(docs: list[dict]) -> tuple[dict, dict]:
    """The volume holding models.yaml and its mount: the directory SIGSERVE_CONFIG is in, mounted
    whole (no subPath) and read-only."""
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    c = container(docs)
    assert env_of(c)["SIGSERVE_CONFIG"]["value"] == MODELS_DIR + "/models.yaml"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == MODELS_DIR]
    assert mount == {"name": mount["name"], "mountPath": MODELS_DIR, "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume, mount


def pod_annotations(docs: list[dict]) -> dict:
    return by_kind(docs)["Deployment"]["spec"]["template"]["metadata"].get("annotations", {})


def test_models_list_is_written_to_a_mounted_config_map(chart):
    values = VALUE_SETS["models"]
    docs, _ = render(chart, values)
    kinds = by_kind(docs)
    config_map = kinds["ConfigMap"]
    assert config_map["metadata"]["name"] == f"{FULLNAME}-models"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert set(config_map["data"]) == {"models.yaml"}
    text = config_map["data"]["models.yaml"]
    config = yaml.safe_load(text)
    assert config == {"models": values["models"], "traffic": values["traffic"]}
    assert [m["uri"] for m in config["models"]] == ["models:/churn@champion", "models:/churn@challenger",
                                                    "models:/fraud/3"]

    volume, _ = models_mount(docs)
    assert volume["configMap"] == {"name": config_map["metadata"]["name"],
                                   "items": [{"key": "models.yaml", "path": "models.yaml"}]}
    env = env_of(container(docs))
    assert "MODEL_URI" not in env, "the models come from models.yaml only"
    assert env["SIGSERVE_MAX_LOADED_MODELS"]["value"] == "2"
    assert env["SIGSERVE_RELOAD_INTERVAL"]["value"] == "30", "server.* stay the per-model defaults"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "https://mlflow.example.com"
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-credentials"

    checksum = pod_annotations(docs)["checksum/models-config"]
    assert checksum == hashlib.sha256(text.removesuffix("\n").encode()).hexdigest()


@pytest.mark.parametrize("name", ["models", "models-shadow"])
def test_models_yaml_is_what_sigserve_reads(chart, name, tmp_path):
    """The ConfigMap's models.yaml goes through sigserve's own config reader (serve --config)."""
    values = VALUE_SETS[name]
    docs, _ = render(chart, values)
    path = tmp_path / "models.yaml"
    path.write_text(by_kind(docs)["ConfigMap"]["data"]["models.yaml"])
    config = read_config(str(path))
    assert [(m.uri, m.name) for m in config.models] == [(m["uri"], m.get("name")) for m in values["models"]]
    first = config.models[0].options
    assert first.reload_interval == values["models"][0].get("reload_interval")
    assert {name: policy.policy for name, policy in config.traffic.items()} == \
        {name: policy["policy"] for name, policy in values["traffic"].items()}
    if name == "models":
        fraud = config.models[2].options
        assert (fraud.batch_max_size, fraud.batch_max_wait_ms, fraud.max_concurrency) == (32, 1.5, 16)
        assert (config.traffic["churn"].share, config.traffic["churn"].sticky_header) == (0.1, "x-user-id")


def test_models_checksum_rolls_the_pods_only_when_the_models_change(chart):
    base = VALUE_SETS["models-shadow"]
    docs, _ = render(chart, base)
    annotations = pod_annotations(docs)
    assert annotations["example.com/team"] == "ml", "podAnnotations are kept next to the checksum"
    checksum = annotations["checksum/models-config"]
    assert re.fullmatch(r"[0-9a-f]{64}", checksum)

    unrelated, _ = render(chart, {**base, "replicaCount": 5, "server": {"workers": 2}})
    assert pod_annotations(unrelated)["checksum/models-config"] == checksum
    for changed in ({**base, "traffic": {"churn": {"policy": "canary", "share": 0.5}}},
                    {**base, "models": [*base["models"], {"uri": "models:/fraud/3"}]},
                    {**base, "models": [{**base["models"][0], "reload_interval": 5}, base["models"][1]]}):
        docs, _ = render(chart, changed)
        assert pod_annotations(docs)["checksum/models-config"] != checksum, changed
        assert yaml.safe_load(by_kind(docs)["ConfigMap"]["data"]["models.yaml"])["models"] == changed["models"]


def test_existing_config_map_is_mounted_as_models_yaml(chart):
    docs, notes = render(chart, VALUE_SETS["existing-config-map"])
    assert "ConfigMap" not in by_kind(docs), "the chart never creates the user's ConfigMap"
    volume, _ = models_mount(docs)
    assert volume["configMap"] == {"name": "scoring-models", "items": [{"key": "config.yaml", "path": "models.yaml"}]}
    env = env_of(container(docs))
    assert "MODEL_URI" not in env
    assert env["SIGSERVE_MAX_LOADED_MODELS"]["value"] == "50"
    assert "checksum/models-config" not in pod_annotations(docs)
    assert f"rollout restart deployment/{FULLNAME}" in notes and "WARNING" not in notes


@pytest.mark.parametrize("name", sorted(set(VALUE_SETS) - MODELS_VALUE_SETS))
def test_single_model_values_render_as_before(chart, name):
    """Without models or modelsConfig nothing of the models.yaml wiring appears."""
    docs, notes = render(chart, VALUE_SETS[name])
    assert "ConfigMap" not in by_kind(docs)
    c = container(docs)
    env = env_of(c)
    assert not {"SIGSERVE_CONFIG", "SIGSERVE_MAX_LOADED_MODELS"} & set(env)
    assert MODELS_DIR not in {m["mountPath"] for m in c["volumeMounts"]}
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    assert not any("configMap" in v for v in pod["volumes"] if v["name"] != "ca")
    assert "checksum/models-config" not in pod_annotations(docs)
    uri = VALUE_SETS[name].get("model", {}).get("uri")
    if uri:
        assert env["MODEL_URI"]["value"] == uri and f"Model: {uri}" in notes


@pytest.mark.parametrize("values, message", [
    ({"models": [{"uri": "models:/churn/1"}, {"uri": "models:/churn/1"}]}, r"models\[1\] \(models:/churn/1\) is listed twice"),
    ({"models": [{"uri": "models:/churn@champion"}, {"uri": "models:/churn@challenger"}, {"uri": "models:/fraud/3"}],
      "traffic": {"frod": {"policy": "shadow"}}}, "traffic.frod names no model: the models are churn, fraud"),
    ({"models": [{"uri": "models:/churn@champion"}, {"uri": "models:/fraud/3"}],
      "traffic": {"fraud": {"policy": "canary", "share": 0.1}}}, "traffic.fraud .* needs two versions of fraud"),
])
def test_models_the_template_refuses(chart, values, message):
    chart.validate_schema(values)
    with pytest.raises(helm.HelmRenderError, match=message):
        render(chart, values)


@pytest.mark.parametrize("values", [
    # explicit names group versions; a path's name is the server's to choose, so it is not checked
    {"models": [{"uri": "models:/churn@champion", "name": "c"}, {"uri": "models:/churn_v2/4", "name": "c"}],
     "traffic": {"c": {"policy": "shadow"}}},
    {"models": [{"uri": "models:/churn@champion"}, {"uri": "/models/fraud"}], "traffic": {"fraud": {"policy": "shadow"}}},
    # champion (the default policy: all to the first version) needs no challenger
    {"models": [{"uri": "models:/churn@champion"}], "traffic": {"churn": {"policy": "champion"}}},
])
def test_models_the_template_accepts(chart, values):
    docs, _ = render(chart, values)
    assert yaml.safe_load(by_kind(docs)["ConfigMap"]["data"]["models.yaml"])["traffic"] == values["traffic"]


def documented_models_values() -> list[tuple[str, dict]]:
    """The `models:` values examples in the READMEs, as a user would copy them."""
    examples = []
    for doc in (ROOT / "README.md", CHART / "README.md"):
        for block in re.findall(r"^( *)```yaml\n(.*?)^\1```", doc.read_text(), re.MULTILINE | re.DOTALL):
            indent, text = block
            values = yaml.safe_load("\n".join(line[len(indent):] for line in text.splitlines()))
            if isinstance(values, dict) and "models" in values:
                examples.append((doc.relative_to(ROOT).as_posix(), values))
    return examples


def test_documented_models_examples_render(chart):
    examples = documented_models_values()
    assert {where for where, _ in examples} == {"README.md", "helm/sigserve/README.md"}
    for where, values in examples:
        chart.validate_schema(values)
        docs, _ = render(chart, values)
        config = yaml.safe_load(by_kind(docs)["ConfigMap"]["data"]["models.yaml"])
        assert config["models"] == values["models"], where
        assert [m["uri"] for m in config["models"]][:2] == ["models:/churn@champion", "models:/churn@challenger"]


def test_notes_list_the_models(chart):
    _, notes = render(chart, VALUE_SETS["models"])
    assert "Models (3, in ConfigMap scoring-sigserve-models, key models.yaml), registry https://mlflow.example.com:" in notes
    assert "  models:/churn@challenger  (name churn)" in notes
    assert "Traffic for churn: canary, 0.1 of requests to the challenger, sticky per x-user-id." in notes
    assert "X-Model-Alias" in notes
    assert "curl -s $URL/invocations -H" in notes and "curl -s $URL/invocations/fraud -H" in notes
    assert "$URL/invocations/churn" not in notes, "the first model is already shown on /invocations"
    assert "WARNING" not in notes


# ---------------------------------------------------------------------------------------------
# values.schema.json refuses bad values

@pytest.mark.parametrize("problem", BAD_VALUE_SETS)
def test_schema_rejects_bad_values(chart, schema, problem):
    path, values = BAD_VALUE_SETS[problem]
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(merged(chart, values)))
    assert errors, f"jsonschema accepted {problem}: {values}"
    assert path in {".".join(str(p) for p in e.absolute_path) for e in errors}, \
        f"refused for another reason: {[e.message for e in errors]}"
    helm_path = "'/" + path.replace(".", "/") + "'" if path else "''"
    with pytest.raises(helm.HelmValuesError, match=re.escape(f"at {helm_path}")):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError, match="values don't meet the specifications of the schema"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert helm.lint(CHART, values)["errors"], f"helm lint accepted {problem}"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_schema_accepts_good_values(chart, name):
    chart.validate_schema(VALUE_SETS[name])
