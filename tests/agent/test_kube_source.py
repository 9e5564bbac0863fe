"""The kubernetes objects source, offline: the official client's own API classes and
`kubernetes.watch.Watch` parse recorded JSON served by a stand-in for urllib3's pool (the
only piece replaced). This is NOT a test against a live API server -- none can be installed
here -- so what a real server does differently (chunking, bookmarks, auth) is untested."""

from __future__ import annotations

import io
import json
import threading

import pytest

pytest.importorskip("kubernetes")

import urllib3  # noqa: E402
from kubernetes import client  # noqa: E402

from cluster.kube_source import KubernetesObjectSource, load_api_client  # noqa: E402
from cluster.source import ADDED, DELETED, MODIFIED, CollectingSink  # noqa: E402

SVC = {"metadata": {"name": "web", "namespace": "default", "resourceVersion": "10"},
       "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}  # fmt: skip
LIST = {"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"}, "items": [SVC]}
EVENTS = [
    {"type": "MODIFIED", "object": {"kind": "Service", "apiVersion": "v1", **SVC,
                                    "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 81}]}}},
    {"type": "ADDED", "object": {"kind": "Service", "apiVersion": "v1",
                                 "metadata": {"name": "db", "namespace": "x", "resourceVersion": "12"}}},
    {"type": "BOOKMARK", "object": {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": "13"}}},
    {"type": "DELETED", "object": {"kind": "Service", "apiVersion": "v1", **SVC}},
]  # fmt: skip


class Recording(io.BytesIO):
    """A response body that reads as closed once consumed, as a finished HTTP stream does."""

    @property
    def closed(self) -> bool:
        return self.tell() >= len(self.getvalue())


def _response(data: bytes) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(Recording(data), status=200, preload_content=False)


class RecordedPool:
    """Answers the client's HTTP requests from recordings: a list, then a watch stream."""

    def __init__(self, watch_lines: list[bytes]) -> None:
        self.watch_lines = watch_lines
        self.requests: list[str] = []
        self.done = threading.Event()

    def request(self, method, url, **kw):
        self.requests.append(url)
        if "watch=True" in url or "watch=true" in url:
            if len(self.requests) > 2:  # after the recording: end the test's stream
                self.done.set()
                body = json.dumps({"type": "ERROR", "object": {"code": 400, "reason": "End", "message": "end"}})
                return _response(body.encode() + b"\n")
            return _response(b"".join(self.watch_lines))
        return _response(json.dumps(LIST).encode())


def test_list_then_watch_events_through_the_library(tmp_path):
    api = client.ApiClient()
    pool = RecordedPool([json.dumps(e).encode() + b"\n" for e in EVENTS])
    api.rest_client.pool_manager = pool
    source = KubernetesObjectSource(api, kinds=("Service",))
    sink = CollectingSink()
    stop = threading.Event()
    t = threading.Thread(target=source.run, args=(sink, stop), daemon=True)
    t.start()
    assert pool.done.wait(10), pool.requests
    stop.set()
    source.close()
    t.join(5)
    seen = [(e.type, str(e.ref)) for e in sink.received]
    assert seen[:4] == [
        (ADDED, "Service/default/web"),
        (MODIFIED, "Service/default/web"),
        (ADDED, "Service/x/db"),
        (DELETED, "Service/default/web"),
    ]
    assert sink.is_synced.is_set()
    assert sink.received[0].obj["kind"] == "Service"  # list items get their kind back
    assert "resourceVersion=10" in pool.requests[1]  # the watch starts at the list's version
    # The stream's end led to a fresh list (web back, db gone in the recording): exactly that
    # difference is delivered, nothing twice.
    assert [(e.type, str(e.ref)) for e in sink.received[4:]] == [
        (DELETED, "Service/x/db"),
        (ADDED, "Service/default/web"),
    ]


def test_kubeconfig_loading(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))  # fmt: skip
    api = load_api_client(str(kubeconfig))
    assert api.configuration.host == "https://10.0.0.1:6443"
    assert "t0ken" in str(api.configuration.api_key)
