"""`sdksign serve`'s default worker count: one per core, at most the cgroup's CPU limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdksign.server.runtime.workers import cpu_limit, default_workers


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder laid out as /sys/fs/cgroup with `files` (paths relative to it) in it."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, docker run --cpus 2
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),  # v2, no limit
        # v2's file wins over v1's, which a hybrid host may also show.
        ({"cpu.max": "max 100000\n", "cpu/cpu.cfs_quota_us": "50000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "0\n"}, None),
        ({}, None),  # neither: not Linux, or cgroups not mounted
    ],
)
def test_the_cpu_limit_is_read_from_cgroup_v2_or_v1(
    tmp_path: Path, files: dict[str, str], limit: float | None
) -> None:
    assert cpu_limit(cgroup(tmp_path, files)) == limit


@pytest.mark.parametrize(
    ("files", "workers"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "150000 100000\n"}, 2),  # rounded up: 1.5 CPUs keep two workers busy
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu.max": "6400000 100000\n"}, 8),  # a limit above the cores: the cores
        ({}, 8),
    ],
)
def test_the_default_is_one_per_core_and_at_most_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], workers: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert default_workers(cgroup(tmp_path, files)) == workers
