"""The agent's `dir:` objects source reads a directory as podnet-proxy does: hostile files
(a FIFO, an alias bomb, a file that turns bad) are refused without a hang, and a file that
becomes unreadable keeps what it last held. No root needed."""

from __future__ import annotations

import os

import yaml

from cluster.dir_source import DirObjectSource

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]},
}
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def names(source: DirObjectSource) -> list[str]:
    return [obj["metadata"]["name"] for _ref, obj in source.scan()]


def test_fifo_and_alias_bomb_are_refused_and_the_rest_is_read(tmp_path):
    (tmp_path / "web.yaml").write_text(yaml.safe_dump(SERVICE))
    os.mkfifo(tmp_path / "x.yaml")  # opening it for reading would block for ever
    (tmp_path / "bomb.yaml").write_text(BOMB)  # 9**9 nodes once the aliases are expanded
    assert names(DirObjectSource(str(tmp_path))) == ["web"]


def test_a_file_that_turns_bad_keeps_what_it_last_held(tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(SERVICE))
    source = DirObjectSource(str(tmp_path))
    assert names(source) == ["web"]
    path.write_bytes(b"\xff\xfe not utf-8 \x00")
    assert names(source) == ["web"]
    path.unlink()
    assert names(source) == []
