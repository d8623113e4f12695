"""A watchdog process that stops a test session's servers when the session dies unannounced.

Teardown (and SIGTERM, which the plugin turns into an interrupt) stops every private server.
SIGKILL runs no teardown, and it is what a CI runner sends after its grace period, what the
OOM killer sends, and what pytest-xdist's controller does to a worker stuck in a test when it
is itself interrupted: every `redis-server` the session started outlived it, with its temp
dir. The watchdog is a small separate process (its own session, so a signal to the test's
process group does not reach it) that holds the read end of a pipe; the test session writes
the data dir of each server it starts. When the pipe reaches EOF (the session ended, however)
the watchdog stops the processes whose working directory is one of those dirs (each server
runs in its own, so no other process can match) and removes the dirs the session created.
After a normal teardown nothing matches and it just exits. Linux only (it reads ``/proc``);
elsewhere it is not started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

__all__ = ["activate", "deactivate", "register"]

_WATCHDOG = r"""
import os, shutil, signal, sys, time

dirs = {}
for line in sys.stdin:  # until EOF: the test session has ended, whichever way
    remove, _, path = line.rstrip("\n").partition(" ")
    if path:
        dirs[path] = remove == "1"


def owned():
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/cwd") in dirs:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in owned():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    for _ in range(100):
        if not owned():
            break
        time.sleep(0.05)
for path, remove in dirs.items():
    if remove and os.path.basename(path).startswith("dar-redis-"):
        shutil.rmtree(path, ignore_errors=True)
"""

_lock = threading.Lock()
_proc: subprocess.Popen[bytes] | None = None
_pipe: IO[bytes] | None = None
_owner: object = None


def activate(owner: object) -> None:
    """Start the watchdog for this process (once; a no-op without ``/proc``).

    Args:
        owner: Who may `deactivate` it (the pytest config): a session run inside another
            (pytester) must not end the outer session's watchdog, which would stop the
            outer session's live servers.
    """
    global _proc, _pipe, _owner
    with _lock:
        if _proc is not None or not Path("/proc/self/cwd").exists():
            return
        _owner = owner
        _proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-c", _WATCHDOG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _pipe = _proc.stdin


def register(data_dir: Path, *, remove: bool) -> None:
    """Have the watchdog stop the server running in `data_dir` if this process dies.

    Args:
        data_dir: The server's working directory (its own, by `EmbeddedRedis`' design).
        remove: Also remove the directory (one the server created for itself).
    """
    with _lock:
        if _pipe is None:
            return
        with contextlib.suppress(OSError):
            _pipe.write(f"{int(remove)} {os.path.realpath(data_dir)}\n".encode())
            _pipe.flush()


def deactivate(owner: object) -> None:
    """Let the watchdog go (after a teardown there is nothing left for it to stop).

    Args:
        owner: The `activate` caller; anyone else's call is ignored.
    """
    global _proc, _pipe, _owner
    with _lock:
        if owner is not _owner:
            return
        proc, pipe, _proc, _pipe, _owner = _proc, _pipe, None, None, None
    if pipe is not None:
        with contextlib.suppress(OSError):
            pipe.close()
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
