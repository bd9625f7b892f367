"""deploy/kubernetes/ cannot be applied here (no cluster; `kubectl apply --dry-run=client`
still asks an API server for its resource types, and fails offline), so it is checked as a
schema instead: every document has the fields its kind requires, names and labels line up
(Deployment ↔ Service ↔ PodDisruptionBudget), probes hit /healthz and /readyz on the
container's port, every mount has its volume, secrets are files — and the config the pods
run is one the daemon's own loader accepts, reading its secrets from those files. When a
kubectl is installed, `kubectl kustomize` (offline) must render the directory too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"

# kind → (apiVersion, dotted paths that must be present)
REQUIRED: dict[str, tuple[str, tuple[str, ...]]] = {
    "Deployment": (
        "apps/v1",
        (
            "spec.replicas",
            "spec.selector.matchLabels",
            "spec.template.metadata.labels",
            "spec.template.spec.containers",
        ),
    ),
    "Service": ("v1", ("spec.selector", "spec.ports")),
    "PodDisruptionBudget": ("policy/v1", ("spec.selector.matchLabels",)),
    "ConfigMap": ("v1", ("data",)),
}


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        assert isinstance(value, dict) and part in value, f"{doc['kind']}: {path} missing"
        value = value[part]
    return value


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBE / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def docs(kustomization: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """kind → the one document of that kind, from the files the kustomization lists."""
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((KUBE / name).read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def pod(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return docs["Deployment"]["spec"]["template"]["spec"]


def test_every_manifest_is_listed_and_has_its_required_fields(
    kustomization: dict[str, Any], docs: dict[str, dict[str, Any]]
) -> None:
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert set(docs) == set(REQUIRED)
    for kind, doc in docs.items():
        api_version, paths = REQUIRED[kind]
        assert doc["apiVersion"] == api_version, kind
        assert doc["metadata"]["name"], kind
        for path in paths:
            _get(doc, path)


def test_replicas_selectors_and_disruption_budget_line_up(docs: dict[str, Any]) -> None:
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    pdb = docs["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    # A drain may take a replica, never the last: 1 ≤ minAvailable < replicas.
    assert 1 <= pdb["minAvailable"] < deployment["spec"]["replicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 1


def test_probes_ports_and_security(pod: dict[str, Any], docs: dict[str, Any]) -> None:
    (container,) = pod["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == 8080 and port["name"] == "http"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"][:2] == ["slo-engine", "run"]
    (service_port,) = docs["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in ("http", 8080)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Longer than the daemon's shutdown flush (10 s by default) plus its sign-off.
    assert pod["terminationGracePeriodSeconds"] >= 15


def test_mounts_have_volumes_and_secrets_are_files(pod: dict[str, Any]) -> None:
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts.keys() == volumes.keys()
    secret = volumes["secrets"]["secret"]
    assert secret["secretName"] and secret["defaultMode"] & 0o007 == 0  # not world-readable
    assert mounts["secrets"]["readOnly"] is True
    # Nothing but emptyDirs is writable, and the root filesystem is read-only.
    for name, mount in mounts.items():
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[name], name
    assert not any("env" in c for c in pod["containers"]), "secrets never in the environment"


def test_the_config_loads_and_reads_its_secrets_from_the_secret_mount(
    pod: dict[str, Any], docs: dict[str, Any], tmp_path: Path
) -> None:
    from engine.daemon.config import load_config

    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["args"][-1] == mounts["config"]
    text = docs["ConfigMap"]["data"]["config.yml"]
    (tmp_path / "config.yml").write_text(text)
    config = load_config(tmp_path / "config.yml")
    assert config.shared_store and config.replica_id is None  # the pod's name is unique
    for path in (config.store_password_file, config.api_token_file):
        assert str(path).startswith(mounts["secrets"] + "/"), path
    assert str(config.specs[0]).startswith(mounts["specs"])
    assert str(config.state_dir) == mounts["state"]
    assert config.listen_host == "0.0.0.0" and config.listen_port == 8080
    for word in ("password:", "token:", "secret:"):
        assert word not in text


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_renders_it_offline() -> None:
    proc = subprocess.run(
        ["kubectl", "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(proc.stdout)]
    assert sorted(kinds) == sorted(REQUIRED)
