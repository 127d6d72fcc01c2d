"""deploy/kubernetes: the manifests parse and keep the promises of their README."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deploy.cfn import DEPLOY

KUBERNETES = DEPLOY / "kubernetes"
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET", re.IGNORECASE)


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    found = [
        document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document
    ]
    assert found
    return found


def kind(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == name]


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for document in documents:
        if document["kind"] == "CronJob":
            yield "CronJob", document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif document["kind"] == "Deployment":
            yield "Deployment", document["spec"]["template"]["spec"]


def test_cronjob_syncs_once_a_minute_one_at_a_time(documents: list[dict[str, Any]]) -> None:
    (cronjob,) = kind(documents, "CronJob")
    spec = cronjob["spec"]
    assert spec["schedule"] == "* * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 60
    (container,) = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["sync", "--once"]


def test_serve_deployment_is_probed_on_healthz_behind_a_service(documents: list[dict[str, Any]]) -> None:
    (deployment,) = kind(documents, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    (service,) = kind(documents, "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # one writer of the state at a time


def test_every_pod_runs_non_root_read_only_without_capabilities(documents: list[dict[str, Any]]) -> None:
    specs = list(pod_specs(documents))
    assert len(specs) == 2
    for where, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        mounts_of = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            mounted = {mount["mountPath"]: mounts_of[mount["name"]] for mount in container["volumeMounts"]}
            assert "persistentVolumeClaim" in mounted["/var/lib/sirsync"], where
            assert "emptyDir" in mounted["/tmp"], where


def test_every_container_has_requests_and_limits(documents: list[dict[str, Any]]) -> None:
    for where, spec in pod_specs(documents):
        for container in spec["containers"]:
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (where, bound)


def test_secrets_come_from_a_secret_never_a_literal(documents: list[dict[str, Any]]) -> None:
    secret_refs = 0
    for where, spec in pod_specs(documents):
        for container in spec["containers"]:
            for variable in container.get("env", []):
                if SECRET_NAME.search(variable["name"]):
                    assert "value" not in variable, (where, variable["name"])
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == "sirsync-secrets"
                    secret_refs += 1
    assert secret_refs >= 4
    for config in kind(documents, "ConfigMap"):
        assert [name for name in config["data"] if SECRET_NAME.search(name)] == []


def test_example_secret_holds_only_marked_placeholders(documents: list[dict[str, Any]]) -> None:
    (secret,) = kind(documents, "Secret")
    assert "data" not in secret
    assert secret["stringData"]
    for key, value in secret["stringData"].items():
        assert value.startswith("REPLACE_WITH_"), key
    keys = {
        variable["valueFrom"]["secretKeyRef"]["key"]
        for _, spec in pod_specs(documents)
        for container in spec["containers"]
        for variable in container.get("env", [])
        if "valueFrom" in variable
    }
    assert keys <= set(secret["stringData"])


def test_kustomization_applies_everything_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml"}
