"""Child processes that cannot outlive us: spawn, stop, and stop them all at exit.

The embedded servers and the demo's worker and API run as such children:

- ``stop_child()`` sends SIGTERM, waits, then SIGKILL; context managers and an
  ``atexit`` hook call it, so Ctrl-C and a normal exit clean up.
- Each child runs in its own process group, so a Ctrl-C in the terminal reaches
  only us (and we stop the child once), not both.
- On Linux each child asks the kernel for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``), which covers a SIGKILLed or crashed parent. The kernel
  sends it when the *thread* that started the child exits, so start children from
  a thread that lives as long as they should (the main thread), not from a
  short-lived worker thread such as ``asyncio.to_thread``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

# Only these variables reach the servers. Tansu also reads its settings from the
# environment (LISTENER_URL, STORAGE_ENGINE, CLUSTER_ID, SCHEMA_REGISTRY, CERT, KEY, ...)
# and exports metrics over HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
_PASSED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_live_children: set[subprocess.Popen[bytes]] = set()


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def child_setup(parent_pid: int) -> Callable[[], None]:
    """What the child runs between fork and exec (``preexec_fn``): its own process group,
    and SIGKILL when ``parent_pid`` dies (Linux)."""
    prctl = _prctl()  # looked up before the fork, not in the child

    def setup() -> None:
        os.setpgid(0, 0)  # own process group: a terminal Ctrl-C is not delivered to it
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os.kill(os.getpid(), signal.SIGKILL)

    return setup


def _spawn(
    argv: list[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    if _prctl() is not None and threading.current_thread() is not threading.main_thread():
        log.warning(
            "starting %s from thread %r: it will be killed when that thread ends",
            Path(argv[0]).name, threading.current_thread().name,
        )  # fmt: skip
    with open(log_path, "ab") as log_file:  # the child keeps its own descriptor
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            preexec_fn=child_setup(os.getpid()),
        )
    _live_children.add(child)
    return child


def _terminate(child: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the child's process group, wait up to ``grace_s``, then SIGKILL it."""
    try:
        if child.poll() is None:  # not reaped, so its pid (= its group id) is still ours
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored SIGTERM for %.1f s; killing it", child.pid, grace_s)
                _signal_group(child.pid, signal.SIGKILL)
                child.wait()
    finally:
        if child.returncode is not None:
            _live_children.discard(child)


def spawn_child(
    argv: list[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start a helper process that cannot outlive us (see the module docstring).

    It gets its own process group (a terminal Ctrl-C is not sent to it; we stop it),
    dies with this process on Linux, and is stopped at exit if still running. Its
    stdout and stderr go to ``log_path``. Call from the main thread.
    """
    return _spawn(argv, log_path, env, cwd)


def stop_child(child: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM a process from :func:`spawn_child`, then SIGKILL it after ``grace_s``."""
    _terminate(child, grace_s)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@atexit.register
def _terminate_all() -> None:
    for child in list(_live_children):
        _terminate(child, grace_s=2.0)


def server_env(
    inherited: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a server gets: a few harmless variables of ours, plus ``extra``.

    Examples:
        >>> inherited = {"PATH": "/bin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        >>> server_env(inherited, {"RUST_LOG": "debug"})
        {'PATH': '/bin', 'NO_COLOR': '1', 'RUST_LOG': 'debug'}
    """
    env = {name: inherited[name] for name in _PASSED_ENV if name in inherited}
    env["NO_COLOR"] = "1"  # plain log lines, no ANSI colour codes
    env.update(extra or {})
    return env
