"""Fixtures of the experiments tests."""

import pytest

from .factories import Canary, make_canary, make_version


@pytest.fixture
def running_canary() -> Canary:
    """A running canary on the chat prompt for every user (traffic 100%): the control, live,
    on gpt-4o-mini and the treatment on gpt-4o, each prompt naming the user. The test's own
    database marker decides whether it is transactional."""
    return make_canary(
        control=make_version("Control prompt for {user_name}.", max_tokens=200, live=True),
        treatment=make_version(
            "Treatment prompt for {user_name}.", model="gpt-4o", temperature="0.2", max_tokens=300
        ),
        traffic_percent=100,
        start=True,
    )
