"""deploy/kubernetes and the Containerfile, read for the tests: the manifests' objects, the
sdksign Deployment's container, its configuration with the secrets filled in."""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

KIT = ROOT / "deploy" / "kubernetes"
CONTAINERFILE = ROOT / "Containerfile"
INSTALL_SCRIPT = ROOT / "deploy" / "image" / "install.sh"
NAMESPACE = "sdksign"
# The Kubernetes versions the kit is checked against: the oldest it supports (the preStop
# `sleep` action is on by default from 1.30) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30", "1.37")
# Seconds terminationGracePeriodSeconds keeps beyond preStop + drain + shutdown_grace: the
# process's own exit (workers joined, the last log lines and spans written).
STOP_MARGIN = 5

Resource = dict[str, Any]


def manifests() -> list[Path]:
    """Every manifest file of the kit (kustomization.yaml is kustomize's, not an object)."""
    return sorted(p for p in KIT.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> list[Resource]:
    return [doc for path in manifests() for doc in documents(path)]


def find(kind: str, name: str) -> Resource:
    (found,) = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def pod_spec(name: str) -> Resource:
    spec: Resource = find("Deployment", name)["spec"]["template"]["spec"]
    return spec


def container(deployment: str) -> Resource:
    (only,) = pod_spec(deployment)["containers"]
    assert isinstance(only, dict)
    return only


def container_ports(deployment: str) -> dict[str, int]:
    """The container's ports, name -> number."""
    return {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}


def mount_path(deployment: str, volume: str) -> str:
    (path,) = [m["mountPath"] for m in container(deployment)["volumeMounts"] if m["name"] == volume]
    return str(path)


def mounted_key(deployment: str, path: str) -> tuple[str, str]:
    """The ConfigMap or Secret, and its key, that the file at `path` in the Deployment's
    container comes from (a volume's `items`, a mount's `subPath` followed)."""
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    for mount in container(deployment)["volumeMounts"]:
        folder = mount["mountPath"].rstrip("/")
        if "subPath" in mount:
            if path != folder:
                continue
            relative = mount["subPath"]
        elif path.startswith(f"{folder}/"):
            relative = path[len(folder) + 1 :]
        else:
            continue
        volume = volumes[mount["name"]]
        source = volume.get("configMap") or volume["secret"]
        items = {item["path"]: item["key"] for item in source.get("items", [])}
        key = items[relative] if items else relative
        return str(source.get("name") or source["secretName"]), key
    raise AssertionError(f"{path}: no volume of {deployment} holds it")


def config_text() -> str:
    """The TOML of the ConfigMap sdksign-config (the Deployment's --config)."""
    return str(find("ConfigMap", "sdksign-config")["data"]["sdksign.toml"])


def secret_keys() -> list[str]:
    return sorted(find("Secret", "sdksign-app-secrets")["stringData"])


def write_config(folder: Path, secret_values: dict[str, str] | None = None) -> Path:
    """The ConfigMap's TOML in `folder`, its secret files there too: the Secret's keys with
    `secret_values` (default: a random secret each, as an operator fills them in). Paths
    under the Secret's mount are moved into `folder`."""
    secrets_folder = folder / "secrets"
    secrets_folder.mkdir(parents=True, exist_ok=True)
    if secret_values is None:
        secret_values = {key: secrets.token_urlsafe(32) for key in secret_keys()}
    for key, value in secret_values.items():
        (secrets_folder / key).write_text(value)
    mounted = mount_path("sdksign", "app-secrets").rstrip("/") + "/"
    assert mounted in config_text()
    config = folder / "sdksign.toml"
    config.write_text(config_text().replace(mounted, f"{secrets_folder}/"))
    return config


def server_args() -> list[str]:
    return [str(arg) for arg in container("sdksign")["args"]]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def containerfile_instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions as (KEYWORD, rest), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def entrypoint() -> list[str]:
    (value,) = [rest for keyword, rest in containerfile_instructions() if keyword == "ENTRYPOINT"]
    command = json.loads(value)
    assert isinstance(command, list)
    return [str(part) for part in command]
