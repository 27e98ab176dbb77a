"""The workers' metric files (observe.metricfiles.ReservedFile): their disk space is taken before
they are written, and a file that cannot grow goes on in memory instead of killing the
process. A real file system, and a real file size limit (RLIMIT_FSIZE) in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict

from sdksign.server.observe.metricfiles import INITIAL_SIZE, ReservedFile

ROOT = Path(__file__).resolve().parents[2]


def allocated(path: Path) -> int:
    """The bytes of `path` that have blocks on disk."""
    return os.stat(path).st_blocks * 512


def test_its_pages_are_on_disk_before_they_are_written(tmp_path: Path) -> None:
    reserved = ReservedFile(str(tmp_path / "counter_1.db"))
    sparse = MmapedDict(str(tmp_path / "counter_2.db"))  # prometheus-client's own: no blocks yet
    assert os.path.getsize(tmp_path / "counter_1.db") == INITIAL_SIZE
    assert allocated(tmp_path / "counter_1.db") >= INITIAL_SIZE
    assert allocated(tmp_path / "counter_2.db") < INITIAL_SIZE
    for index in range(
        4000
    ):  # past the first size (32 bytes each): the file doubles, reserved each time
        reserved.write_value(f"key-{index:04}", float(index), 0.0)
    size = os.path.getsize(tmp_path / "counter_1.db")
    assert size > INITIAL_SIZE and allocated(tmp_path / "counter_1.db") >= size
    assert not reserved.in_memory
    assert dict((key, value) for key, value, _ in reserved.read_all_values()) == {
        f"key-{index:04}": float(index) for index in range(4000)
    }
    reserved.close()
    sparse.close()


# Run in a child whose files may not pass a size limit (argv[2]): ReservedFile writes
# argv[3] values (32 bytes each in the file) and reads them back.
CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
from sdksign.server.observe.metricfiles import ReservedFile, report
values = ReservedFile(sys.argv[1] + "/counter_1.db")
for index in range(int(sys.argv[3])):
    values.write_value(f"key-{index:04}", float(index), 0.0)
print("LOG SET UP", flush=True)  # as serve() does: what was said waits for the log
report()
print("RESULT " + json.dumps({
    "in_memory": values.in_memory,
    "values": {key: value for key, value, _ in values.read_all_values()},
}))
"""


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(INITIAL_SIZE + 4096, id="its growth does not fit"),
        pytest.param(4096, id="not even its first size fits"),
    ],
)
def test_a_file_that_cannot_grow_goes_on_in_memory_and_says_so_once_the_log_is_set_up(
    tmp_path: Path, limit: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(limit), "4000"],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'client'}:{ROOT / 'server'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    output = (done.stdout + done.stderr).splitlines()  # structlog, unconfigured, writes stdout
    [result] = [json.loads(line[7:]) for line in output if line.startswith("RESULT ")]
    assert result["in_memory"] is True
    assert result["values"] == {f"key-{index:04}": float(index) for index in range(4000)}
    said = [index for index, line in enumerate(output) if "metrics file cannot grow" in line]
    assert len(said) == 1 and "counter_1.db" in output[said[0]]  # once, naming the file
    assert said[0] > output.index("LOG SET UP")  # not before the log is set up
    assert os.path.getsize(tmp_path / "counter_1.db") <= limit  # the file kept its size
