"""A shared store whose allocations for this node are serialised by a lock on this node.

A node's pod addresses come from its own subnet, so only that node's plugin calls ever
allocate from its pool, even when the claims live in etcd. Without a lock, concurrent ADDs
on one node all try the same next address (host-local's order) and all but one lose a
round trip to etcd per step; a local flock costs microseconds and puts them in a queue
instead. Claims stay compare-and-create transactions, so a second machine that wrongly
shares the pool still never gets a duplicate.
"""

from __future__ import annotations

from ipam.disk import DiskStore

# Without importing typing, which costs each standalone plugin run more than it is worth:
# the store interface is only needed by the type checker (which treats this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ipam.store import Store


class NodeLockedStore:
    def __init__(self, store: Store, lock_dir: str) -> None:
        self.store = store
        self._lock = DiskStore(lock_dir)

    def lock(self):
        return self._lock.lock()

    def __getattr__(self, name: str):
        return getattr(self.store, name)
