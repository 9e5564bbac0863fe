"""The lab's writes into its etcd (podnet/lab/etcd_shadow.py), against a real etcd: only the
difference is written, in transactions etcd accepts (it refuses one of more than 128
operations), and a write while etcd is down is kept pending, not lost."""

from __future__ import annotations

import pytest

from cluster.etcd import EtcdClient
from podnet.lab import spec
from podnet.lab.etcd_shadow import EtcdShadow
from podnet.lab.pod import RUNNING, Pod
from podnet.lab.pod_objects import PodObjectWriter
from tests.support.etcd_server import EtcdServer

pytestmark = pytest.mark.integration

PREFIX = "/shadow-test/"


@pytest.fixture
def server(tmp_path):
    s = EtcdServer(str(tmp_path / "etcd"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


def stored(client: EtcdClient) -> dict[str, str]:
    return {kv.key: kv.value for kv in client.get_prefix(PREFIX)}


def test_hundreds_of_objects_go_in_transactions_etcd_accepts(server):
    client = EtcdClient("127.0.0.1", server.client_port)
    shadow = EtcdShadow(client, "test objects")
    want = {f"{PREFIX}{i:04d}": f'{{"n": {i}}}' for i in range(300)}
    assert shadow.write(dict, lambda: want)
    assert stored(client) == want and not shadow.pending
    # only the difference: 250 removed, one changed, the rest untouched
    fewer = {k: v for k, v in list(want.items())[:50]}
    fewer[f"{PREFIX}0000"] = '{"n": "changed"}'
    assert shadow.write(dict, lambda: fewer)
    assert stored(client) == fewer


def test_a_write_while_etcd_is_down_stays_pending(server):
    client = EtcdClient("127.0.0.1", server.client_port, timeout=1.0)
    shadow = EtcdShadow(client, "test objects")
    want = {f"{PREFIX}a": "1"}
    assert shadow.write(dict, lambda: want)
    shadow.note(True)
    server.stop()
    assert not shadow.write(dict, lambda: {f"{PREFIX}b": "2"})
    assert shadow.failing and shadow.pending and shadow.written == want


def test_each_write_knows_its_revision_and_a_watcher_reports_reaching_it(server):
    """What Pod.available rests on: the shadow knows the store revision its last write made,
    and the agents' objects source says (progress) when it has delivered that revision."""
    import threading
    import time

    from cluster.etcd_source import EtcdObjectSource
    from cluster.source import CollectingSink

    client = EtcdClient("127.0.0.1", server.client_port)
    shadow = EtcdShadow(client, "test objects")
    key = "/lab/registry/services/default/web"
    svc = '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}}'
    assert shadow.write(dict, lambda: {key: svc})
    first = shadow.revision
    assert first == client.revision() > 0
    assert shadow.write(dict, lambda: {key: svc}) and shadow.revision == first  # nothing to write
    sink, stop = CollectingSink(), threading.Event()
    source = EtcdObjectSource(EtcdClient("127.0.0.1", server.client_port), "/lab")
    watcher = threading.Thread(target=source.run, args=(sink, stop), daemon=True)
    watcher.start()
    try:
        assert sink.is_synced.wait(5) and sink.revision >= first
        assert shadow.write(dict, lambda: {key: svc.replace("web", "web2", 1)})
        assert shadow.revision > first
        deadline = time.monotonic() + 5
        while sink.revision < shadow.revision and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.revision == shadow.revision and len(sink.received) == 2
    finally:
        stop.set()
        source.close()
        watcher.join(5)
    # a controller taking over: nothing to write, and the revision is that of what it read back
    successor = EtcdShadow(client, "test objects")
    written = svc.replace("web", "web2", 1)

    def ours() -> dict[str, str]:
        kv = client.get(key)
        assert kv is not None
        successor.revision = kv.mod_revision
        return {key: kv.value}

    client.put("/elsewhere/lease", "x")  # the store moves on outside what the agents watch
    assert successor.write(ours, lambda: {key: written}) and successor.revision == shadow.revision
    assert successor.revision < client.revision()


def test_a_pod_whose_object_is_written_is_published_at_that_write(server):
    """Pod.available waits for every node to have programmed its Pod object (its policy),
    not only its EndpointSlice: the object's write moves the pod's published revision on."""
    client = EtcdClient("127.0.0.1", server.client_port)
    writer = PodObjectWriter(client, PREFIX)
    pod = Pod("client", "client", "t", "v1", {"access": "true"}, "a", "command", 0, phase=RUNNING, ip="10.244.0.9")
    pod.published_revision = 1  # its EndpointSlice write, say, came first
    writer.sync(spec.default(), [pod], [], True)
    (kv,) = [kv for kv in client.get_prefix(PREFIX) if kv.key.endswith("/pods/default/client")]
    assert pod.published_revision == kv.mod_revision == writer.shadow.revision > 1
    writer.shadow.last_write = 0.0  # due again; nothing of the pod changed
    writer.sync(spec.default(), [pod], [], True)
    assert pod.published_revision == kv.mod_revision
