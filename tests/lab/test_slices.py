"""EndpointSlices of at most a hundred endpoints, each endpoint staying in its slice (no root)."""

from __future__ import annotations

from podnet.lab import endpointslices, objects, spec
from podnet.lab.endpointslices import Placement


def ep(i: int) -> objects.Endpoint:
    return objects.Endpoint(f"p{i}", f"10.244.{i // 250}.{i % 250 + 2}", "node1", True, True, False)


def test_split_fills_slices_of_a_hundred_and_keeps_places():
    place = Placement()
    assert [len(s) for s in place.split("default/web", [ep(i) for i in range(250)])] == [100, 100, 50]
    # one pod goes, another comes: it takes the freed place, and no other endpoint moves
    eps = [ep(i) for i in range(250) if i != 5] + [ep(999)]
    parts = place.split("default/web", eps)
    assert [len(s) for s in parts] == [100, 100, 50] and ep(999) in parts[0]
    assert [e.pod for e in parts[1]] == [f"p{i}" for i in range(100, 200)]
    assert place.split("default/web", []) == [[]]  # a Service without endpoints still has its slice


def test_slice_names_and_learning_them_back():
    lab = spec.default()
    svc = lab.service("frontend")
    first, third = objects.endpoint_slice(svc, lab, [ep(1)], 0), objects.endpoint_slice(svc, lab, [ep(2)], 2)
    assert first["metadata"]["name"] == "frontend-lab" and third["metadata"]["name"] == "frontend-lab-2"
    writer = endpointslices.EndpointSliceWriter(client=None, prefix="/podnet")  # type: ignore[arg-type]
    writer._learn(third)
    assert writer.placement.slice_of == {f"{svc.namespace}/frontend": {"p2": 2}}
