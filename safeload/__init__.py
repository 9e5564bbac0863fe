"""Reading files nobody vouches for: the proxy's objects directory, a lab's topology and manifests.

Every reader of outside input goes through here, so the same limits hold everywhere:

- only a regular file is read, and it is opened non-blocking: a FIFO (or a device) put where a
  file is expected is refused at once instead of hanging the reader for ever;
- at most `max_bytes` are read, and the text must be UTF-8;
- YAML is composed with a bound on nesting depth and on the size of the tree once aliases are
  expanded (an "alias bomb" of a few hundred bytes expands to billions of nodes), and an
  alias that points into its own anchor (`&a [*a]`, a cycle) is refused; JSON gets the same
  depth bound. Everything else about the text is PyYAML's safe loader or Python's json.

It knows nothing of its callers: a problem is a `LoadError` naming the file and what is wrong,
and the caller decides what that means (skip the file, keep the last good state, exit).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 4 << 20  # the API server takes requests up to 3 MiB; a little above that
    max_depth: int = 64  # Kubernetes objects nest about 10 deep; manifests a little more
    max_nodes: int = 1_000_000  # scalars, lists and mappings of one document, aliases expanded


DEFAULT = Limits()


class LoadError(ValueError):
    """A file or text that is refused; `where` names it, `problem` says why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_bytes(path: str, limits: Limits = DEFAULT, where: str | None = None) -> bytes:
    """The contents of the regular file at `path` (symlinks followed: a ConfigMap volume's
    files are symlinks), never blocking and never more than `limits.max_bytes`."""
    where = path if where is None else where
    try:
        # O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer; the file type is
        # checked on the open fd, so nothing swapped in after a stat() can slip through
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise LoadError(where, f"cannot open: {getattr(e, 'strerror', None) or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LoadError(where, f"{_kind(st.st_mode)}, not a regular file: refused")
        if st.st_size > limits.max_bytes:
            raise LoadError(where, f"{st.st_size} bytes, more than the limit of {limits.max_bytes}")
        chunks = []
        left = limits.max_bytes + 1  # a file still growing is caught by reading one byte more
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except BlockingIOError:  # cannot happen for a regular file; never wait for it
                break
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limits.max_bytes:
            raise LoadError(where, f"more than the limit of {limits.max_bytes} bytes")
        return data
    except OSError as e:
        raise LoadError(where, f"cannot read: {e.strerror or errno.errorcode.get(e.errno or 0, e)}") from None
    finally:
        os.close(fd)


def decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is allowed, as kubectl allows it
    except UnicodeDecodeError as e:
        raise LoadError(where, f"not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r})") from None


def read_text(path: str, limits: Limits = DEFAULT, where: str | None = None) -> str:
    where = path if where is None else where
    return decode(read_bytes(path, limits, where), where)


# ---------------------------------------------------------------- YAML


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, composing with bounds: depth, expanded size, no cyclic aliases."""

    def __init__(self, stream: str, limits: Limits, where: str) -> None:
        super().__init__(stream)
        self.limits = limits
        self.where = where
        self.depth = 0
        self.open_anchors: set[str] = set()  # anchors whose node is still being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise LoadError(self.where, f"alias *{event.anchor} refers to its own anchor (a cycle): refused")
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise LoadError(self.where, f"nested more than {self.limits.max_depth} levels deep")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.discard(anchor)


def _expanded_size(node: yaml.Node, limits: Limits, where: str) -> int:
    """Nodes in the tree once every alias is expanded, counted without expanding it: each
    distinct node's size is computed once (aliases share their anchor's node object)."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        known = sizes.get(id(n))
        if known is not None:
            return known
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        if total > limits.max_nodes:
            raise LoadError(where, f"more than {limits.max_nodes} values once aliases are expanded (an alias bomb?)")
        sizes[id(n)] = total
        return total

    return size(node)  # depth is bounded by the composer, so this recursion is too


def yaml_documents(text: str, where: str, limits: Limits = DEFAULT) -> Iterator[Any]:
    """Each document of a (multi-document) YAML text, as the safe loader builds it."""
    try:
        # the reader checks the characters as it is made: a NUL byte fails here already
        loader = _LimitedLoader(text, limits, where)
    except yaml.YAMLError as e:
        raise LoadError(where, f"not valid YAML: {_one_line(e)}") from None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _expanded_size(node, limits, where)
            yield loader.construct_document(node)
    except yaml.YAMLError as e:
        raise LoadError(where, f"not valid YAML: {_one_line(e)}") from None
    except RecursionError:  # a bound above should always come first; never a traceback
        raise LoadError(where, "nested too deeply") from None
    finally:
        loader.dispose()


def load_yaml(text: str, where: str, limits: Limits = DEFAULT) -> Any:
    """The one document of a YAML text (None when empty); more than one is an error."""
    docs = list(yaml_documents(text, where, limits))
    if len(docs) > 1:
        raise LoadError(where, f"holds {len(docs)} YAML documents, one expected")
    return docs[0] if docs else None


# ---------------------------------------------------------------- JSON


def load_json(text: str, where: str, limits: Limits = DEFAULT) -> Any:
    _check_json_depth(text, where, limits.max_depth)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise LoadError(where, f"not valid JSON: {_one_line(e)}") from None


def _check_json_depth(text: str, where: str, max_depth: int) -> None:
    """Refuse nesting deeper than max_depth before json builds anything (its C scanner would
    only stop at the interpreter's recursion limit, and then with a traceback's error)."""
    depth = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > max_depth:
                raise LoadError(where, f"nested more than {max_depth} levels deep")
        elif c in "]}":
            depth -= 1


# strings (skipped whole, brackets inside them do not nest) or one bracket; regex, not a
# character loop, because a 4 MiB file would take a Python loop most of a second
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def load_documents(text: str, where: str, limits: Limits = DEFAULT) -> list[Any]:
    """JSON (text starting with `{` or `[`) or multi-document YAML, as kubectl reads a file."""
    if text.lstrip().startswith(("{", "[")):
        return [load_json(text, where, limits)]
    return list(yaml_documents(text, where, limits))


def _one_line(e: Exception) -> str:
    text = str(e).strip()
    return " ".join(text.split()) if text else type(e).__name__
