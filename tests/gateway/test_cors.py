"""CORS in `make gateway`: pages on localhost or 127.0.0.1 (any port) may call it, one more
origin by CORS_ORIGIN, no other; the production configurations keep their exact lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import ROOT
from tests.gateway.conftest import Gateway, serve_gateway

pytestmark = pytest.mark.usefixtures("gateway_files")

DEVELOPMENT = [
    "http://localhost:5173",  # Vite
    "http://localhost:3000",
    "http://127.0.0.1:4200",
    "http://localhost:8080",  # the gateway's own page
    "http://localhost",
    "http://127.0.0.1:65535",
]
OTHERS = [
    "https://evil.example",
    "http://localhost.evil.example:5173",
    "http://127.0.0.1.nip.io",
    "https://localhost:5173",  # not what a dev server serves; and no https origin is listed
    "http://localhost:5173/",
    "http://localhost:123456",
    "null",
]
EXTRA = "https://dev.example.com:8443"


def allowed(gateway: Gateway, origin: str) -> bool:
    """Whether a preflight from `origin` (of the JSON endpoint and of gRPC-web) is allowed;
    both answers must agree."""
    answers = set()
    for path, asked in (("/", "content-type"), ("/sdksign.v1.SignatureService/Sign", "x-grpc-web")):
        status, headers, _ = gateway.request(
            "OPTIONS",
            path,
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": asked,
            },
        )
        assert status == 200
        answers.add(headers.get("access-control-allow-origin") == origin)
    (answer,) = answers
    return answer


def test_development_origins_pass_and_others_do_not(gateway: Gateway) -> None:
    assert {origin: allowed(gateway, origin) for origin in DEVELOPMENT + OTHERS + [EXTRA]} == {
        **dict.fromkeys(DEVELOPMENT, True),
        **dict.fromkeys([*OTHERS, EXTRA], False),
    }


def origin_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "gateway" / "origin.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cors_origin_adds_that_origin_alone(tmp_path: Path, server_env: dict[str, str]) -> None:
    made = origin_script(EXTRA)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "envoy-gateway.yaml"
    config.write_text(made.stdout)
    for gateway in serve_gateway(tmp_path, server_env, config=config):
        assert allowed(gateway, EXTRA)
        assert allowed(gateway, "http://localhost:5173")
        assert not allowed(gateway, "https://dev.example.com")  # another port: another origin
        assert not allowed(gateway, "https://evil.example")


@pytest.mark.parametrize(
    "origin", ["*", "https://dev.example.com/app", "dev.example.com", "https://*.example.com", ""]
)
def test_cors_origin_must_be_one_origin(origin: str) -> None:
    refused = origin_script(origin)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "is not an origin" in refused.stderr


def cors_policy(config: dict[str, Any]) -> dict[str, Any]:
    """The virtual host's CORS policy of an Envoy configuration."""
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    manager = chain["filters"][0]["typed_config"]
    (host,) = manager["route_config"]["virtual_hosts"]
    policy: dict[str, Any] = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    return policy


@pytest.mark.parametrize(
    "config",
    [
        yaml.safe_load((ROOT / "examples" / "envoy-production.yaml").read_text()),
        yaml.safe_load(
            next(
                doc
                for doc in yaml.safe_load_all(
                    (ROOT / "deploy" / "kubernetes" / "gateway-configmap.yaml").read_text()
                )
                if doc and doc.get("kind") == "ConfigMap"
            )["data"]["envoy.yaml"]
        ),
    ],
    ids=["envoy-production.yaml", "gateway-configmap.yaml"],
)
def test_production_configs_keep_their_exact_allow_list(config: dict[str, Any]) -> None:
    assert cors_policy(config)["allow_origin_string_match"] == [
        {"exact": "https://app.example.com"},
        {"exact": "https://classroom.example.com"},
    ]
