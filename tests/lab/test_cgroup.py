"""The lab's cgroup: `lab down` writes to the cgroup.kill of a recorded path only if that
path is the lab's own (by its name), so a tampered or stale record kills nothing else."""

from __future__ import annotations

import os

import pytest

from podnet.lab import cgroup, names


@pytest.fixture
def state_root(tmp_path, monkeypatch):
    monkeypatch.setattr(names, "STATE_ROOT", str(tmp_path / "labs"))
    return tmp_path


def fake_cgroup(path) -> str:
    os.makedirs(path)
    open(os.path.join(path, "cgroup.kill"), "w").close()
    return str(path)


def record(lab: str, path: str) -> None:
    os.makedirs(names.state_dir(lab), exist_ok=True)
    with open(os.path.join(names.state_dir(lab), "cgroup"), "w") as f:
        f.write(path + "\n")


def test_the_recorded_cgroup_of_the_lab_is_found(state_root):
    path = fake_cgroup(state_root / "cg" / cgroup.name("lab1"))
    record("lab1", path)
    assert cgroup.recorded("lab1") == path


def test_a_recorded_path_that_is_not_the_labs_cgroup_is_refused(state_root):
    record("lab1", fake_cgroup(state_root / "cg" / "system.slice"))
    assert cgroup.recorded("lab1") is None
    record("lab1", fake_cgroup(state_root / "cg" / cgroup.name("lab12")))  # another lab's
    assert cgroup.recorded("lab1") is None


def test_a_recorded_cgroup_that_is_gone_is_none(state_root):
    record("lab1", str(state_root / "cg" / cgroup.name("lab1")))
    assert cgroup.recorded("lab1") is None


def test_mountinfo_names_the_v2_hierarchy(tmp_path, monkeypatch):
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - tmpfs tmpfs ro,mode=755\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw\n"
        "32 30 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:6 - cgroup cgroup rw,memory\n"
    )
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(info))
    assert cgroup.v2_mount() == "/sys/fs/cgroup/unified"
    info.write_text("32 30 0:28 / /sys/fs/cgroup/memory rw shared:6 - cgroup cgroup rw,memory\n")
    assert cgroup.v2_mount() is None
