#!/bin/sh
# The install step of the container image (Containerfile), and of tests/deploy/test_image.py,
# which runs this same script into a clean virtual environment:
#
#   install.sh VENV SOURCE
#
# makes the virtual environment VENV with the python3 on PATH, installs the project at
# SOURCE (a folder holding pyproject.toml, README.md, client/sdksign, server/sdksign) into
# it with every optional extra but `dev` (server, redis, vault, otel: whatever pyproject.toml
# lists), not editable, and checks what was installed: its requirements consistent, the
# `sdksign` command and the server's modules importable.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 VENV SOURCE" >&2
    exit 2
fi
venv=$1
source=$2

python3 -m venv "$venv"
# The extras, read from pyproject.toml (Python 3.11's tomllib): all but the development tools.
extras=$("$venv/bin/python" - "$source/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as file:
    extras = tomllib.load(file)["project"]["optional-dependencies"]
print(",".join(name for name in extras if name != "dev"))
PY
)
echo "install.sh: installing $source with the extras $extras into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$source[$extras]"

# What the start step runs, checked here so that a broken install fails the build, not a pod.
"$venv/bin/python" -m pip check --disable-pip-version-check
"$venv/bin/sdksign" --version
"$venv/bin/python" -c 'import sdksign.server.runtime.serve, sdksign.server.runtime.cli'
