"""Fixtures for lab tests: labs with unique names that are always torn down, and a check
that nothing of theirs outlives the test."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid

import pytest

from podnet.lab import names, net, spec

PODNET = os.path.join(os.path.dirname(sys.executable), "podnet")


def unique_spec(base: dict | None = None, **changes) -> spec.LabSpec:
    s = spec.parse(base or spec.tutorial_data())
    return dataclasses.replace(s, name=f"t{uuid.uuid4().hex[:7]}", **changes)


def podnet(lab: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    p = subprocess.run([PODNET, "lab", "--lab", lab, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"podnet lab {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def lab_namespaces(lab: str) -> list[str]:
    return [n for n in names.list_netns() if names.is_lab_netns(lab, n)]


@pytest.fixture
def make_lab():
    """make_lab(spec) brings a lab up; every lab made is torn down when the test ends."""
    made: list[str] = []

    def make(s: spec.LabSpec) -> net.Lab:
        made.append(s.name)
        lab = net.Lab(s, keep=True, progress=lambda *_: None)
        lab.up(wait=90)
        return lab

    yield make
    for name in made:
        net.teardown(name)
        assert lab_namespaces(name) == [], f"lab {name} left namespaces behind"
