"""The fuzz tier's hypothesis profiles: `ci` (the default) keeps each property to a few dozen
examples so the suite stays fast; `make fuzz` selects `fuzz` for a long run."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# the CNI fixtures (a node namespace, a runtime driving the plugins in it), for the namespace half
from tests.cni.conftest import node, runtime  # noqa: F401

# database=None: no .hypothesis/ directory in the checkout (the unit tier runs as a user who
# cannot write there); the corpus of hostile inputs lives in tests/fuzz instead
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
