"""IPAM errors, independent of CNI; the CNI plugins map them to CNI codes."""


class IPAMError(Exception):
    """Bad input to an allocator (names the field and the problem)."""


class RangeFull(IPAMError):
    """No free address left."""


class AlreadyAllocated(IPAMError):
    """A specific address was asked for and someone else holds it."""


class StoreUnavailable(IPAMError):
    """The store cannot be reached now; the call may succeed later."""
