"""Writes whose reply is lost: redis-py's retry re-sends them, and they must apply once.

The connector's clients retry a command after a timeout (`RedisSettings.retries`), so a
script whose reply was lost runs again. These tests drop one script reply on the socket (the
server applied the call; the client sees a timeout and re-sends) and check what was written.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from deepagents_redis.coord import TaskClient
from deepagents_redis.core import _connections


class _Loss:
    """Drops the reply of the first script call whose packed command holds `match`."""

    def __init__(self) -> None:
        self.match: bytes | None = None
        self.lost = 0

    def arm(self, match: bytes) -> None:
        self.match, self.lost = match, 0


@pytest.fixture
def loss(monkeypatch: pytest.MonkeyPatch) -> _Loss:
    state = _Loss()
    for cls in (_connections.DeadlineConnection, _connections.AsyncDeadlineConnection):
        _patch(monkeypatch, cls, state)
    return state


def _chosen(state: _Loss, command: Any) -> bool:
    parts = command if isinstance(command, list) else [command]
    data = b"".join(bytes(p) for p in parts)
    return (
        state.match is not None and state.lost == 0 and b"EVAL" in data[:30] and state.match in data
    )


def _patch(monkeypatch: pytest.MonkeyPatch, cls: Any, state: _Loss) -> None:
    send, read = cls.send_packed_command, cls.read_response
    if cls is _connections.AsyncDeadlineConnection:

        async def asend(self: Any, command: Any, check_health: bool = True) -> None:
            self._test_lose = _chosen(state, command)
            await send(self, command, check_health)

        async def aread(self: Any, *args: Any, **kwargs: Any) -> Any:
            reply = await read(self, *args, **kwargs)
            if getattr(self, "_test_lose", False):
                self._test_lose = False
                state.lost += 1
                raise redis.exceptions.TimeoutError("reply dropped by the test")
            return reply

        monkeypatch.setattr(cls, "send_packed_command", asend)
        monkeypatch.setattr(cls, "read_response", aread)
        return

    def ssend(self: Any, command: Any, check_health: bool = True) -> None:
        self._test_lose = _chosen(state, command)
        send(self, command, check_health)

    def sread(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = read(self, *args, **kwargs)
        if getattr(self, "_test_lose", False):
            self._test_lose = False
            state.lost += 1
            raise redis.exceptions.TimeoutError("reply dropped by the test")
        return reply

    monkeypatch.setattr(cls, "send_packed_command", ssend)
    monkeypatch.setattr(cls, "read_response", sread)


async def test_a_follow_up_whose_reply_was_lost_is_delivered_once(
    connector: Any, loss: _Loss
) -> None:
    # send() is one script call; its reply lost, the client's retry ran it again and the
    # task's inbox held the follow-up twice (the agent got the same message twice, and the
    # events stream two 'message' events), though send() returned one entry id.
    tasks = TaskClient(connector=connector, check_agents=False)
    task_id = tasks.submit("nobody-serves-this", {"n": 1})
    inbox = tasks.keys.task(task_id).inbox
    raw = connector.client()
    loss.arm(b"follow-up-sync")
    entry = tasks.send(task_id, "follow-up-sync")
    assert loss.lost == 1
    loss.arm(b"follow-up-async")
    aentry = await tasks.asend(task_id, "follow-up-async")
    assert loss.lost == 1
    rows = raw.xrange(inbox)
    assert [r[0].decode() for r in rows] == [entry, aentry]
    kinds = [e.type.rsplit(".", 1)[-1] for _, e in tasks.events(task_id)]
    assert kinds.count("message") == 2
    tasks.cancel(task_id)
