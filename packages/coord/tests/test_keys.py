"""CoordKeys: the key sets it keeps built are the ones it would build, and stay bounded."""

from __future__ import annotations

import pytest
from deepagents_redis.coord._keys import _KEYS_KEPT, CoordKeys, new_task_id
from deepagents_redis.core import InvalidInputError, KeySpace


def test_kept_keys_equal_fresh_ones_and_stay_bounded() -> None:
    keys = CoordKeys(KeySpace("p"), "ns")
    task_id = new_task_id()
    first = keys.task(task_id)
    assert keys.task(task_id) is first  # kept
    assert CoordKeys(KeySpace("p"), "ns").task(task_id) == first  # what a fresh build gives
    assert keys.queue("agent") is keys.queue("agent")
    assert keys.queue("agent") == CoordKeys(KeySpace("p"), "ns").queue("agent")
    for _ in range(_KEYS_KEPT + 10):
        keys.task(new_task_id())
    assert len(keys._tasks) <= _KEYS_KEPT


@pytest.mark.parametrize("bad", ["", "x" * 32, "A" * 32, "0" * 31, "0" * 32 + "\n"])
def test_a_bad_task_id_is_refused_every_time(bad: str) -> None:
    keys = CoordKeys(KeySpace("p"), "ns")
    for _ in range(2):
        with pytest.raises(InvalidInputError):
            keys.task(bad)
    assert bad not in keys._tasks


@pytest.mark.parametrize(
    "candidate", ["", "x" * 32, "A" * 32, "0" * 31, "0" * 32 + "\n", "0" * 33, "0" * 32]
)
def test_task_id_bytes_agree_with_check_task_id(candidate: str) -> None:
    # Promotion reads delayed members as bytes; the one task-id rule decides for both forms.
    from deepagents_redis.coord._keys import check_task_id, is_task_id_bytes

    try:
        check_task_id(candidate)
        valid = True
    except InvalidInputError:
        valid = False
    assert is_task_id_bytes(candidate.encode()) is valid
    assert is_task_id_bytes(new_task_id().encode()) is True
