"""Starting and following API jobs: each runs ``python -m leadscore.jobs.runner`` in its own process."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import orjson

from leadscore.infra.job_store import JobStore
from leadscore.infra.launch import settings_env
from leadscore.settings import Settings

log = logging.getLogger(__name__)


class JobRunner:
    """Runs jobs one at a time per API process (training uses every core it is given).

    Args:
        settings: passed to each job's process through its environment.
        store: where job records live.
    """

    def __init__(self, settings: Settings, store: JobStore, concurrency: int = 1) -> None:
        self.settings = settings
        self.store = store
        self.root = Path(settings.api_jobs_dir)
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    async def submit(
        self,
        kind: str,
        args: dict[str, Any],
        created_by: str | None,
        public_params: dict[str, Any] | None = None,
        job: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a job and start it in the background; returns the job record."""
        job = job or await self.store.create(kind, created_by, public_params or args)
        task = asyncio.create_task(self._run(job["id"], kind, args), name=f"job-{job['id']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job_id: str, kind: str, args: dict[str, Any]) -> None:
        directory = self.job_dir(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        spec = directory / "spec.json"
        spec.write_bytes(orjson.dumps({"kind": kind, "args": args}))
        async with self._slots:
            await self.store.update(job_id, status="running", stage="starting")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "leadscore.jobs.runner", str(spec),
                stdout=asyncio.subprocess.PIPE,
                stderr=(directory / "job.log").open("wb"),
                env={**settings_env(self.settings), "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            outcome: dict[str, Any] = {}
            try:
                if process.stdout is None:
                    raise RuntimeError("the job process has no stdout pipe")
                async for line in process.stdout:
                    try:
                        message = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if "stage" in message:
                        total = message.get("total") or 0
                        progress = min(message["done"] / total, 1.0) if total else 0.0
                        await self.store.update(
                            job_id, stage=message["stage"], progress=round(progress, 4)
                        )
                    else:
                        outcome = message
                code = await process.wait()
            except asyncio.CancelledError:
                process.kill()
                await self.store.update(job_id, status="failed", message="the API process stopped")
                raise
            if code == 0 and "result" in outcome:
                await self.store.update(
                    job_id, status="succeeded", progress=1.0, stage="done", result=outcome["result"]
                )
            else:
                reason = (
                    outcome.get("error")
                    or f"the job process exited with status {code}; see {directory / 'job.log'}"
                )
                log.warning("job %s failed: %s", job_id, reason)
                await self.store.update(job_id, status="failed", stage="failed", message=reason)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # shutting down: already recorded as failed
                log.debug("job task %s ended on shutdown", task.get_name())
