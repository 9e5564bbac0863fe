"""The classic pcap file format (what `tcpdump -w` writes): a global header, then a record
header and the bytes of each packet. Flushed per packet, so a capture cut short by Ctrl-C
still leaves a file every reader opens."""

from __future__ import annotations

import struct

MAGIC_NS = 0xA1B23C4D  # nanosecond timestamps
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


class PcapWriter:
    def __init__(self, path: str, linktype: int = LINKTYPE_ETHERNET):
        self._f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._f.write(struct.pack("<IHHiIII", MAGIC_NS, 2, 4, 0, 0, SNAPLEN, linktype))
        self._f.flush()

    def write(self, ts_ns: int, data: bytes) -> None:
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        caplen = min(len(data), SNAPLEN)
        self._f.write(struct.pack("<IIII", sec, nsec, caplen, len(data)) + data[:caplen])
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
