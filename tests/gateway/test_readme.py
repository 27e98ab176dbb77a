"""The README and the pages under docs/ run as written: each of their shell, Python and
JavaScript examples, against a real server (development apps, as `make run` serves) behind the
real Envoy (as `make gateway` runs it).

The examples are the pages' fenced code blocks. Each `sh`, `python` and `js` block runs,
unless an HTML comment just above it says why not: `<!-- readme: not run: REASON -->` (the
set-up commands that CI runs anyway, servers that run until Ctrl-C, minutes-long benchmarks).
`sh` blocks run in bash (-e, -o pipefail) from the checkout's root, `python` blocks with the
checkout's Python, `js` blocks as ES modules in Node.js from examples/node-backend (where the
Node client is installed, as in a backend that uses it); a block without a language is
output, shown and never run, and a `toml` block must be valid TOML. The one change made to a
block: the ports 50051, 9464 (the admin listener) and 8080 become this test's (and
$SDKSIGN_TARGET, the CLI's default server, points at the same port). A `sh` block must end in
the folder it started in: pasted in order, the next block runs where the last one left the
shell.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import ROOT
from tests.conftest import log_lines
from tests.gateway.conftest import Gateway, serve_gateway

pytestmark = pytest.mark.usefixtures("gateway_files")  # Envoy's descriptor set and the page

README = ROOT / "README.md"
# The pages whose blocks run: the README, then every page under docs/.
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))
RUN = ("sh", "python", "js")
SHOWN = ("", "toml", "text", "json")
# Run after each sh block: a `cd` left at its end would move the reader's shell.
STAYS = (
    '\n[ "$(pwd -P)" = "$README_START" ] || { echo "the block ends in $(pwd), not where it '
    'started ($README_START): a cd moved the shell, and the next block would run there" >&2; '
    "exit 1; }\n"
)
_BLOCK = re.compile(
    r"(?:<!-- readme: (?P<directive>[^\n]*?) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)


@dataclass(frozen=True)
class Block:
    page: str  # the page's path in the checkout, e.g. docs/gateway.md
    line: int
    lang: str
    body: str
    directive: str | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def skipped(self) -> str | None:
        """Why the block is not run (None: it runs)."""
        if self.directive is None:
            return None
        reason = self.directive.removeprefix("not run:").strip()
        assert self.directive.startswith("not run:") and reason, (
            f"{self.where}: write <!-- readme: not run: REASON -->, not {self.directive!r}"
        )
        return reason


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    name = page.relative_to(ROOT).as_posix()
    return [
        Block(name, text.count("\n", 0, m.start("body")), m["lang"], m["body"], m["directive"])
        for m in _BLOCK.finditer(text)
    ]


BLOCKS = [block for page in PAGES for block in blocks(page)]
RUNS = [b for b in BLOCKS if b.lang in RUN and b.directive is None]


def test_every_block_is_run_shown_or_says_why_not() -> None:
    assert len(PAGES) > 1, "no pages found under docs/"
    for block in BLOCKS:
        assert block.lang in RUN + SHOWN, f"{block.where}: unknown language {block.lang}"
        if block.directive is not None:
            assert block.lang in RUN, f"{block.where}: only sh, python and js blocks run"
            assert block.skipped  # the reason is written
    assert len([b for b in RUNS if b.page == "README.md"]) >= 5, "most of the README's examples run"
    assert {b.page for b in RUNS} > {"README.md"}, "the pages under docs/ run too"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.lang == "toml"], ids=lambda b: f"{b.page}-line{b.line}"
)
def test_toml_blocks_are_valid_toml(block: Block) -> None:
    tomllib.loads(block.body)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from serve_gateway(tmp_path_factory.mktemp("readme"), {})


def on_ports(body: str, gateway: Gateway) -> str:
    server_port = gateway.server.target.rsplit(":", 1)[1]
    (admin,) = {
        str(line["admin_address"])
        for line in log_lines(gateway.server.logs())
        if line["event"] == "listening"
    }
    admin_port = admin.rsplit(":", 1)[1]
    return (
        body.replace(":50051", f":{server_port}")
        .replace(":9464", f":{admin_port}")
        .replace(":8080", f":{gateway.port}")
    )


@pytest.mark.parametrize("block", RUNS, ids=lambda b: f"{b.page}-line{b.line}-{b.lang}")
def test_example_runs_as_written(block: Block, gateway: Gateway, tmp_path: Path) -> None:
    body = on_ports(block.body, gateway)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SDKSIGN_TARGET": f"localhost:{gateway.server.target.rsplit(':', 1)[1]}",
        "README_START": str(ROOT.resolve()),
    }
    cwd = ROOT
    if block.lang == "sh":
        command = ["bash", "-e", "-o", "pipefail", "-c", body + STAYS]
    elif block.lang == "js":
        command, cwd = (
            ["node", "--input-type=module", "-e", body],
            ROOT / "examples" / "node-backend",
        )
    else:
        script = tmp_path / "example.py"
        script.write_text(body)
        command = [sys.executable, str(script)]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, (
        f"{block.where} ({block.lang}) exited {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    # Each block prints only what it means to: no tool complaining on the way (a grep of a
    # log file its server has not created yet).
    assert "No such file or directory" not in done.stderr, f"{block.where}: {done.stderr}"


def test_the_vault_block_shows_why_bao_cannot_start(tmp_path: Path) -> None:
    """Pasted while bao's port is taken (here by a socket that never answers), the Vault block
    stops at once with bao's own words, instead of waiting forever or talking to another bao."""
    (block,) = [b for b in BLOCKS if "bao server -dev" in b.body]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.body],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "BAO_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0, done.stdout
    assert f"listen tcp 127.0.0.1:{port}: bind: address already in use" in done.stderr
