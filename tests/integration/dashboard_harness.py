"""Helpers for the dashboard's end-to-end tests: the browser, the build, seed events, a CSV.

Used by ``test_dashboard_e2e.py``. The browser is Debian's chromium driven by Playwright
(never a downloaded browser); the dashboard is the checkout's ``dashboard/dist``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import math
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Response

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: The build under test: the checkout's, or LEADSCORE_TEST_DASHBOARD_DIR (e.g. a deliberately
#: broken copy, to see these tests fail).
DIST = Path(os.environ.get("LEADSCORE_TEST_DASHBOARD_DIR") or REPO / "dashboard" / "dist")
ARTIFACTS = REPO / "artifacts" / "e2e"
VIEWPORT = {"width": 1366, "height": 900}

_UNDER_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
_T = TypeVar("_T")


def require_browser_and_build() -> None:
    """Skip (fail under ``CI=true``) when chromium or the built dashboard is missing."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(
            f"{CHROMIUM} is missing: install Debian's chromium (sudo apt-get install chromium)"
        )
    if not (DIST / "index.html").is_file():
        missing.append(f"{DIST / 'index.html'} is missing: build the dashboard (make dashboard)")
    if not missing:
        return
    message = "; ".join(missing)
    if _UNDER_CI:
        pytest.fail(
            f"{message}\n(CI=true: a missing prerequisite fails, never skips)", pytrace=False
        )
    pytest.skip(message)


def run_async(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion in a thread of its own.

    Playwright's sync API keeps an event loop running in this thread, so ``asyncio.run``
    cannot be called here while a browser is open.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


# --- input events --------------------------------------------------------------------------------


def event(
    lead: str,
    type_: str,
    at: datetime,
    data: dict[str, Any] | None = None,
    *,
    id_: str | None = None,
) -> dict[str, Any]:
    """One CloudEvent for ``lead`` (docs/events.md)."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": id_
        or f"{lead}-{type_.rsplit('.', 1)[-1]}-{at.timestamp():.3f}-{random.getrandbits(32):08x}",
        "source": "e2e-test",
        "type": type_,
        "time": at.isoformat(),
        "subject": lead,
    }
    if data is not None:
        body["data"] = data
    return body


def profile(lead: str, at: datetime, *, hot: bool) -> dict[str, Any]:
    contact = {k: hot for k in ("email", "phone", "company", "job_title", "linkedin", "address")}
    contact["email"] = True
    return event(lead, "lead.profile_updated", at, {
        "company_size": 4000 if hot else 8,
        "industry": "software" if hot else "education",
        "seniority": "c_level" if hot else "student",
        "lead_source": "referral" if hot else "purchased_list",
        "country": "DE",
        "contact_fields": contact,
    })  # fmt: skip


def high_intent(lead: str, at: datetime) -> list[dict[str, Any]]:
    """A burst that should raise a score: pricing views, a demo request, a meeting."""
    return [
        event(
            lead, "lead.page_viewed", at, {"url": "https://example.com/pricing", "duration_s": 240}
        ),
        event(lead, "lead.demo_requested", at + timedelta(seconds=1), {"product": "core"}),
        event(lead, "lead.meeting_held", at + timedelta(seconds=2), {"duration_min": 45}),
    ]


def seed_events(leads: Iterable[str], seed: int = 5) -> list[dict[str, Any]]:
    """A profile and 2-6 activities per lead over the last hour; about a third are hot."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for n, lead in enumerate(leads):
        at = now - timedelta(minutes=60 - n)
        hot = n % 3 == 0
        events.append(profile(lead, at, hot=hot))
        if hot and n % 2 == 0:  # some leads well above the rest, for grades A and B
            events += high_intent(lead, at + timedelta(seconds=5)) + high_intent(
                lead, at + timedelta(seconds=10)
            )
            at += timedelta(seconds=15)
        for k in range(rng.randint(2, 6)):
            at += timedelta(seconds=30)
            kind = rng.choice(
                ["page", "email", "download", "call"] + (["demo", "meeting"] if hot else [])
            )
            if kind == "page":
                url = rng.choice(
                    [
                        "https://example.com/blog/a",
                        "https://example.com/pricing",
                        "https://example.com/docs",
                    ]
                )
                events.append(
                    event(
                        lead,
                        "lead.page_viewed",
                        at,
                        {"url": url, "duration_s": rng.randint(5, 400)},
                    )
                )
            elif kind == "email":
                events.append(event(lead, "lead.email_opened", at, {"campaign_id": "nov"}))
            elif kind == "download":
                events.append(
                    event(
                        lead,
                        "lead.content_downloaded",
                        at,
                        {"asset": f"guide-{k}", "kind": "whitepaper"},
                    )
                )
            elif kind == "call":
                events.append(
                    event(
                        lead,
                        "lead.call_logged",
                        at,
                        {"answered": rng.random() < 0.5, "duration_s": 120},
                    )
                )
            elif kind == "demo":
                events.append(event(lead, "lead.demo_requested", at, {"product": "core"}))
            else:
                events.append(event(lead, "lead.meeting_held", at, {"duration_min": 30}))
    return events


# --- the table model for batch scoring -----------------------------------------------------------


def synthetic_table(path: Path, rows: int = 400, seed: int = 7) -> list[dict[str, str]]:
    """A CRM-like CSV with signal in ``converted``; returns its rows as read back."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["lead_id", "company_size", "visits", "industry", "source", "converted"])
        for i in range(rows):
            size = int(10 ** rng.uniform(0.5, 4))
            visits = rng.randint(0, 40)
            industry = rng.choice(["software", "retail", "healthcare", "education"])
            source = rng.choice(["website", "referral", "event", "purchased_list"])
            z = (
                -2
                + 0.08 * visits
                + 0.4 * math.log10(size)
                + 0.8 * (source == "referral")
                + 0.5 * (industry == "software")
            )
            converted = "yes" if rng.random() < 1 / (1 + math.exp(-z)) else "no"
            out.writerow([f"row-{i:04d}", size, visits, industry, source, converted])
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def start_training(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``leadscore train <args>`` with few folds and no search, logging to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "leadscore", "train", "--folds", "2", "--search", "none",
             "--compare", "ensemble", "--seed", "1", *args],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip


def finish_training(
    process: subprocess.Popen[bytes], log: Path, what: str, timeout_s: float = 150.0
) -> None:
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(
            f"training {what} took over {timeout_s:.0f} s:\n{log.read_text()[-3000:]}",
            pytrace=False,
        )
    if code != 0:
        pytest.fail(f"training {what} exited {code}:\n{log.read_text()[-3000:]}", pytrace=False)


# --- the API, seen with a key --------------------------------------------------------------------


def api_get(url: str, key: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers={"X-API-Key": key}, timeout=30)


def wait_for(
    what: str, probe: Callable[[], _T | None], timeout_s: float = 60.0, poll_s: float = 0.25
) -> _T:
    """Call ``probe`` until it returns something other than ``None``; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s:.0f} s", pytrace=False)
        time.sleep(poll_s)


# --- the page ------------------------------------------------------------------------------------


class PageWatch:
    """Everything that went wrong on a page: console errors, uncaught errors, 4xx/5xx, failed requests.

    ``expect_status(pattern, status)`` allows one provoked answer (a URL regex and its status).
    Keys are masked in what is recorded.
    """

    def __init__(self, page: Page, secrets: Iterable[str] = ()) -> None:
        self.page = page
        self.problems: list[str] = []
        self.allowed: list[tuple[re.Pattern[str], int]] = []
        self.secrets = [s for s in secrets if s]
        self.loads = 0
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self._add(f"uncaught error: {exc}"))
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)
        page.on("load", self._load)

    def _load(self, _: Page) -> None:
        self.loads += 1

    def expect_status(self, pattern: str, status: int) -> None:
        self.allowed.append((re.compile(pattern), status))

    def _is_allowed(self, url: str, status: int | None) -> bool:
        return any(p.search(url) and (status is None or status == s) for p, s in self.allowed)

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<key>")
        return re.sub(r"lsk_[A-Za-z0-9]+_[A-Za-z0-9_-]+", "lsk_<masked>", text)

    def _add(self, problem: str) -> None:
        self.problems.append(f"[{self.page.url}] {self._mask(problem)}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "") if message.location else ""
        if "Failed to load resource" in message.text and self._is_allowed(where, None):
            return
        self._add(f"console error: {message.text} (at {where})")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and not self._is_allowed(response.url, response.status):
            self._add(f"HTTP {response.status} {response.request.method} {response.url}")

    def _request_failed(self, request: Request) -> None:
        failure = request.failure or ""
        # a navigation away cancels the page's fetches: that is not a failure of the page
        if "ERR_ABORTED" in failure:
            return
        self._add(f"request failed: {request.method} {request.url}: {failure}")

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems


def sign_in_by_hash(page: Page, base_url: str, key: str, path: str = "/") -> None:
    """Open ``path#key=…``: the app signs in with it and removes it from the address."""
    page.goto(f"{base_url}{path}#key={key}")
    page.get_by_role("navigation", name="Main").wait_for(timeout=20_000)


def settle(page: Page, timeout_ms: int = 15_000) -> list[str]:
    """Wait for the page's requests to finish and its loading states to go; what is still wrong.

    Returns the problems seen: spinners still up after ``timeout_ms``, error states shown.
    """
    problems = []
    try:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
    except Exception:  # Playwright's TimeoutError: the page keeps fetching; not fatal by itself
        pass
    try:
        page.wait_for_function(
            "() => document.querySelectorAll('main .state.loading').length === 0",
            timeout=timeout_ms,
        )
    except Exception:
        texts = page.locator("main .state.loading").all_inner_texts()
        problems.append(f"[{page.url}] still loading after {timeout_ms / 1000:.0f} s: {texts}")
    for alert in page.locator("main [role=alert]").all():
        if alert.is_visible():
            problems.append(f"[{page.url}] shows an error: {alert.inner_text()!r}")
    return problems


_NUMBER = re.compile(r"(?<![\w.])([+\-\u2212]?)\s?(\d+(?:,\d{3})*\.\d)(?!\d)")


def signed_one_decimal(text: str) -> list[float]:
    """Every number with exactly one decimal in ``text``, with its sign (``−`` U+2212 or ``-``)."""
    out = []
    for sign, digits in _NUMBER.findall(text):
        value = float(digits.replace(",", ""))
        out.append(-value if sign in ("-", "\u2212") else value)
    return out
