"""The store revision a proxier vouches for: every change up to it is in the rules it applied.
A lab's controller counts a pod available on that word (podnet/lab/pod.py), so it must never
run ahead of what was applied."""

from __future__ import annotations

import pytest

from proxy.backend import ApplyError
from proxy.feed import TrackerFeed
from proxy.model import NodeContext
from proxy.proxier import Proxier
from proxy.trackers import Trackers
from tests.proxy.test_tally import _Backend
from tests.support import synthetic as S


class _Failing(_Backend):
    fail = False

    def apply(self, tx) -> None:
        if self.fail:
            raise ApplyError("refused")


def test_a_sync_vouches_for_the_revision_fed_before_it_drained_and_a_failed_one_for_none():
    trackers = Trackers(S.NODE)
    requests: list[int] = []
    feed = TrackerFeed(trackers, lambda: None, requests.append)
    backend = _Failing()
    proxier = Proxier(NodeContext(name=S.NODE), backend, trackers, clean_conntrack=False)
    feed.synced()
    S.feed(trackers, S.service(1), S.endpoint_slice(1, 2))
    feed.progress(7)
    proxier.sync()
    assert proxier.synced_revision == 7 and requests == [7]
    # changes fed after the revision was announced are drained, but vouched for only once announced
    S.feed(trackers, S.endpoint_slice(1, 3))
    proxier.sync()
    assert proxier.synced_revision == 7
    feed.progress(9)  # a revision with none of the proxy's kinds (a Pod was written): nothing to apply
    proxier.sync()
    assert proxier.synced_revision == 9
    S.feed(trackers, S.endpoint_slice(1, 4))
    feed.progress(12)
    backend.fail = True
    with pytest.raises(ApplyError):
        proxier.sync()
    assert proxier.synced_revision == 9
    backend.fail = False
    proxier.sync()  # the full sync after a failure programs everything fed so far
    assert proxier.synced_revision == 12
