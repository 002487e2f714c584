"""Run ``leadscore worker`` as a child process, configured by a :class:`Settings`.

The demo, the integration tests and the benchmarks all start workers this way: the
settings are passed as environment variables (the only way a worker is configured),
the child cannot outlive its parent (:func:`leadscore.infra.embedded.processes.spawn_child`),
and "ready" means the worker has joined its group and recovered its table.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from leadscore.infra.embedded.processes import spawn_child, stop_child
from leadscore.settings import Settings, env_var

#: What the worker logs once it has joined its group and recovered its table.
READY_LINE = b"[^Worker]: Ready"
#: Tansu holds a group join for half the session timeout; recovery adds a little.
DEFAULT_READY_TIMEOUT_S = 90.0


class WorkerStartError(RuntimeError):
    """The worker exited or did not become ready; the message holds its log's tail."""


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the environment variables that configure a worker.

    Examples:
        >>> env = settings_env(Settings(kafka_bootstrap="k:9092", grade_thresholds=(90, 70, 50)))
        >>> env["KAFKA_BOOTSTRAP"], env["LEADSCORE_GRADE_THRESHOLDS"]
        ('k:9092', '90,70,50')
    """
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(str(part) for part in value)
        env[env_var(name)] = str(value)
    return env


def start_worker(
    settings: Settings,
    log_path: Path,
    *,
    cwd: Path | None = None,
    loglevel: str = "info",
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> subprocess.Popen[bytes]:
    """Start a worker and wait until it is ready.

    Its output goes to ``log_path`` (appended). The inherited environment is kept,
    with every setting of ``settings`` on top.

    Raises:
        WorkerStartError: it exited, or was not ready within ``ready_timeout_s``.
    """
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    child = spawn_child(
        [sys.executable, "-m", "leadscore", "worker", "--loglevel", loglevel],
        log_path,
        env,
        cwd or Path.cwd(),
    )
    try:
        wait_ready(child, log_path, timeout_s=ready_timeout_s, offset=offset)
    except BaseException:
        stop_child(child, grace_s=5.0)
        raise
    return child


def wait_ready(
    child: subprocess.Popen[bytes], log_path: Path, *, timeout_s: float, offset: int = 0
) -> None:
    """Wait until ``child`` logs :data:`READY_LINE` after ``offset`` bytes of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise WorkerStartError(
                f"the worker exited with code {child.returncode}; its log ({log_path}) ends:\n"
                + log_tail(log_path)
            )
        with open(log_path, "rb") as log:
            log.seek(offset)
            if READY_LINE in log.read():
                return
        time.sleep(0.2)
    raise WorkerStartError(
        f"the worker was not ready after {timeout_s:.0f} s; its log ({log_path}) ends:\n"
        + log_tail(log_path)
    )


def stop_worker(child: subprocess.Popen[bytes], *, grace_s: float = 15.0) -> None:
    """Stop a worker cleanly (SIGTERM: it commits and leaves its group), SIGKILL after ``grace_s``."""
    stop_child(child, grace_s=grace_s)


def kill_worker(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker: a crash, with no commit and no goodbye to the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


@contextlib.contextmanager
def running_worker(
    settings: Settings, log_path: Path, **options: object
) -> Iterator[subprocess.Popen[bytes]]:
    """A ready worker for the ``with`` block, stopped after it."""
    child = start_worker(settings, log_path, **options)  # type: ignore[arg-type]
    try:
        yield child
    finally:
        stop_worker(child)


class ApiStartError(RuntimeError):
    """``leadscore api`` exited or did not become ready; the message holds its log's tail."""


def start_api(
    settings: Settings, log_path: Path, *, cwd: Path | None = None, ready_timeout_s: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start ``leadscore api`` on ``settings.api_host:api_port`` and wait for ``/readyz``.

    Raises:
        ApiStartError: it exited, or was not ready within ``ready_timeout_s``.
    """
    import urllib.error
    import urllib.request

    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child = spawn_child(
        [sys.executable, "-m", "leadscore", "api", "--loglevel", "warning"],
        log_path,
        env,
        cwd or Path.cwd(),
    )
    url = f"http://{settings.api_host}:{settings.api_port}/readyz"
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise ApiStartError(
                f"the API exited with code {child.returncode}; its log ({log_path}) ends:\n"
                + log_tail(log_path)
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return child
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    stop_child(child, grace_s=5.0)
    raise ApiStartError(
        f"the API was not ready at {url} after {ready_timeout_s:.0f} s; its log ends:\n"
        + log_tail(log_path)
    )


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
