"""The lab's writes into its etcd (podnet/lab/etcd_shadow.py), against a real etcd: only the
difference is written, in transactions etcd accepts (it refuses one of more than 128
operations), and a write while etcd is down is kept pending, not lost."""

from __future__ import annotations

import pytest

from cluster.etcd import EtcdClient
from podnet.lab.etcd_shadow import EtcdShadow
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
