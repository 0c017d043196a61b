"""The reference elector tests of tests/test_elector.py, on PostgreSQL and MariaDB.

The same test bodies (five electors, lease 1 s, renew interval 0.1 s, renew deadline
0.9 s) run in the server worlds of ``tests/worlds.py``: one :class:`~leadersim.ORMStorage`
with its own engine per elector, on one table unique to the test and dropped afterwards.
Covered: basic (elect, agree, resign, shrink as members leave), resign window, renew
failure (replaced only after the lease), callback exit (returned and raised).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import test_elector as reference
from worlds import SERVER_WORLDS, World, make_world

pytestmark = pytest.mark.server


@pytest.fixture(params=SERVER_WORLDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    fixture = "postgres_url" if request.param == "postgresql" else "mysql_url"
    return make_world(request.param, tmp_path, request.getfixturevalue(fixture))


def test_basic_five_members_elect_one_leader_and_shrink(world: World) -> None:
    reference.test_five_members_elect_one_leader_and_shrink_as_each_leader_leaves(world)


def test_resign_hands_over_and_does_not_campaign_within_the_window(world: World) -> None:
    reference.test_resigned_leader_hands_over_and_does_not_campaign_within_its_window(world)


def test_renew_failure_steps_down_and_is_replaced_only_after_the_lease(world: World) -> None:
    reference.test_leader_whose_storage_fails_steps_down_and_is_replaced_only_after_its_lease(world)


@pytest.mark.parametrize("how", ["returned", "raised"])
def test_callback_exit_gives_up_the_slot(world: World, how: str) -> None:
    reference.test_leader_whose_callback_exits_gives_up_the_slot_for_a_new_election(world, how)
