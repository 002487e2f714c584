"""What a simulated lead does: its journey as compact events, and the CloudEvents that say so.

A lead's day-by-day activity (sessions, forms, downloads, demo requests, meetings, social,
referrals, calls), its weekly emails (opens and clicks), the sales follow-ups and its
outcome, built as compact ``(t, code, a, b)`` tuples; :func:`cloudevent` turns one into
a CloudEvents dict when it is emitted.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Final

import numpy as np

from leadscore.simulation.config import DAY_S, HOUR_S, SimConfig
from leadscore.simulation.leads import CADENCED, INBOUND, Lead, psig

# --- event codes, payload tables ------------------------------------------------------------

(_PROFILE, _PAGE, _OPEN, _CLICK, _FORM, _CONTENT, _DEMO, _CALL, _MEETING, _SOCIAL, _REFERRAL,
 _CONVERTED, _DISQUALIFIED) = range(13)  # fmt: skip
_TYPE_OF: Final = (
    "lead.profile_updated", "lead.page_viewed", "lead.email_opened", "lead.email_clicked",
    "lead.form_submitted", "lead.content_downloaded", "lead.demo_requested", "lead.call_logged",
    "lead.meeting_held", "lead.social_engaged", "lead.referral_made", "lead.converted",
    "lead.disqualified",
)  # fmt: skip
_SOURCE_OF: Final = (
    "sim/crm", "sim/web-tracker", "sim/email", "sim/email", "sim/web-tracker", "sim/web-tracker",
    "sim/web-tracker", "sim/call-center", "sim/crm", "sim/social", "sim/crm", "sim/crm", "sim/crm",
)  # fmt: skip

_GENERIC_URLS: Final = (
    "/", "/blog/what-is-lead-scoring", "/blog/intent-data-101", "/blog/sales-and-marketing",
    "/about", "/careers", "/docs/getting-started", "/customers", "/events",
)  # fmt: skip
_PRODUCT_URLS: Final = (
    "/product", "/product/real-time-scoring", "/product/explanations", "/integrations",
    "/integrations/salesforce", "/security",
)  # fmt: skip
_HIGH_INTENT_URLS: Final = (
    "/pricing", "/pricing", "/demo", "/contact", "/plans/enterprise", "/trial",
)  # fmt: skip
_WEB: Final = "https://www.example.com"

# Content: early-journey kinds first, late-journey kinds last.
_EARLY_ASSETS: Final = (
    ("state-of-lead-scoring-2026", "whitepaper"), ("ml-for-revops", "ebook"),
    ("webinar-real-time-scoring", "webinar"), ("intent-signals-guide", "ebook"),
)  # fmt: skip
_LATE_ASSETS: Final = (
    ("case-study-fintech", "case_study"), ("case-study-healthcare", "case_study"),
    ("platform-datasheet", "datasheet"), ("pricing-guide", "pricing"),
    ("security-overview", "datasheet"),
)  # fmt: skip
_PRODUCTS: Final = ("core", "analytics", "enterprise")
_NETWORKS: Final = ("linkedin", "linkedin", "linkedin", "x", "facebook", "youtube")
_SOCIAL_ACTIONS: Final = ("like", "like", "like", "comment", "share", "follow")

# Daily activity grid: (name, base rate per day at level 1, gain at the top of the window ramp).
_GRID: Final = (
    ("session", 0.30, 2.5),
    ("form", 0.010, 4.0),
    ("content", 0.025, 2.0),
    ("demo", 0.0015, 25.0),
    ("meeting", 0.0008, 40.0),
    ("social", 0.02, 1.0),
    ("referral", 0.0005, 3.0),
    ("call", 0.006, 12.0),
)
_G_BASE: Final = np.array([g[1] for g in _GRID])
_G_GAIN: Final = np.array([g[2] for g in _GRID])

# One event, compactly: (epoch seconds, code, payload, payload); dicts are built at emission.
Ev = tuple[Any, ...]


class Activity:
    """Generates the events of each lead of a cohort whose span ends at ``end_t``.

    Args:
        config: what is simulated.
        end_t: the end of the cohort's span (epoch seconds): nothing at or after it is emitted.
        shift_t: when the regime shifts (emails sent from then use the second open factor).
        open_factor: the email open factor of each regime (before and after the shift).
    """

    def __init__(
        self,
        config: SimConfig,
        *,
        end_t: float,
        shift_t: float | None,
        open_factor: tuple[float, ...],
    ) -> None:
        self.config = config
        self.end_t = end_t
        self.shift_t = shift_t
        self.open_factor = open_factor

    def events(self, pr: random.Random, rng: np.random.Generator, lead: Lead) -> list[Ev]:
        """All events of one lead, sorted by time: ``(t, code, a, b)`` tuples (compact)."""
        c = lead.created_t
        stop = min(self.end_t, c + self.config.max_life_days * DAY_S)
        if lead.outcome_t is not None:
            stop = min(stop, lead.outcome_t)
        ws = lead.window_start
        we = ws + lead.window_len if ws is not None else math.inf
        lost = ws is not None and not lead.will_convert

        def ramp(t: float) -> float:
            if ws is None or t < ws or t >= we:
                return 0.0
            # Annotated: mypy types float ** float as Any (it could be complex; not here).
            value: float = ((t - ws) / lead.window_len) ** 1.5
            return value

        ev: list[Ev] = [(c, _PROFILE, lead.profile, None)]
        self._arrival(pr, lead, ev)

        # Daily grid over calendar days: rates (days x types) -> Poisson counts, one numpy call.
        first_day, last_day = int(c // DAY_S), int((stop - 1e-6) // DAY_S)
        days = np.arange(first_day, last_day + 1)
        if len(days) and stop > c:
            mid = days * DAY_S + 12 * HOUR_S
            env = np.exp(-np.maximum(mid - c, 0.0) / (lead.tau_days * DAY_S)) + 0.03
            r = np.zeros(len(days))
            if ws is not None:
                inside = (mid >= ws) & (mid < we)
                r[inside] = ((mid[inside] - ws) / lead.window_len) ** 1.5
                env = np.where(inside, np.maximum(env, 0.8 + 1.5 * r), env)
                if lost:  # the deal is lost: interest collapses after the decision
                    env = np.where(mid >= we, 0.3 * np.exp(-(mid - we) / (10 * DAY_S)), env)
            weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = weekend
            factor = lead.level * env * np.where(weekday >= 5, 0.3, 1.0)
            factor = factor * rng.gamma(0.5, 2.0, len(days))  # bursts: mean 1, CV 1.4
            rates = factor[:, None] * _G_BASE[None, :] * (1.0 + r[:, None] * _G_GAIN[None, :])
            counts = rng.poisson(rates)
            for d_i, kind in zip(*np.nonzero(counts), strict=True):
                day_t = float(days[d_i]) * DAY_S
                rr = float(r[d_i])
                for _ in range(int(counts[d_i, kind])):
                    hour = (lead.hour + pr.gauss(0.0, 2.5)) % 24.0  # around the lead's working day
                    self._grid_event(pr, lead, int(kind), day_t + hour * HOUR_S, rr, ev)

        self._emails(pr, lead, c, stop, ramp, ev)
        self._follow_ups(pr, lead, ramp, ev)
        if lead.late_profile is not None and stop > c + HOUR_S:
            ev.append((pr.uniform(c + HOUR_S, stop), _PROFILE, lead.late_profile, None))

        kept = [e for e in ev if c < e[0] < stop]
        kept.sort(key=itemgetter(0))
        kept.insert(0, ev[0])
        if lead.outcome_t is not None and lead.outcome_t < self.end_t:
            code = _CONVERTED if lead.outcome == "converted" else _DISQUALIFIED
            kept.append((lead.outcome_t, code, lead.outcome_data, None))
        return kept

    def _arrival(self, pr: random.Random, lead: Lead, ev: list[Ev]) -> None:
        """What created the lead: a form on the site (inbound), a referral, an event."""
        t = lead.created_t + pr.uniform(1.0, 30.0)
        if lead.source in INBOUND:
            form = pr.choices(("newsletter", "gated-content", "contact-us", "trial-signup"),
                              (0.35, 0.35, 0.15, 0.15))[0]  # fmt: skip
            t = self._session(pr, t, 0.1, lead.z, ev, pages=1 + int(pr.expovariate(0.7)))
            ev.append((t, _FORM, form, None))
            if form == "gated-content":
                ev.append((t + 2.0, _CONTENT, *pr.choice(_EARLY_ASSETS)))
        elif lead.source == "referral":
            ev.append((t, _FORM, "contact-us", None))
        elif lead.source == "event":
            ev.append((t, _FORM, "event-registration", None))
        if lead.source in CADENCED and lead.has_phone:  # an SDR calling down a list
            for day in (0.5, 2.0, 5.0, 10.0, 20.0):
                if pr.random() < 0.6:
                    t_call = lead.created_t + day * DAY_S + pr.uniform(0.0, 6.0) * HOUR_S
                    ev.append(self._call(pr, t_call, 0.0, lead.z))

    def _grid_event(
        self, pr: random.Random, lead: Lead, kind: int, t: float, rr: float, ev: list[Ev]
    ) -> None:
        z = lead.z
        if kind == 0:
            self._session(pr, t, rr, z, ev, pages=1 + int(pr.expovariate(1.0 / (1.2 + 3.0 * rr))))
        elif kind == 1:
            late = pr.random() < 0.2 + 0.6 * rr
            form = (
                pr.choice(("contact-us", "trial-signup"))
                if late
                else pr.choice(("newsletter", "gated-content", "webinar-registration"))
            )
            ev.append((t, _FORM, form, None))
        elif kind == 2:
            asset = pr.choice(_LATE_ASSETS if pr.random() < 0.15 + 0.7 * rr else _EARLY_ASSETS)
            ev.append((t, _CONTENT, *asset))
        elif kind == 3:
            ev.append((t - 40.0, _PAGE, "/demo", round(pr.uniform(20, 90), 1)))
            ev.append((t, _DEMO, pr.choice(_PRODUCTS), None))
        elif kind == 4:
            ev.append((t, _MEETING, pr.choice((30, 30, 45, 60)), None))
        elif kind == 5:
            ev.append((t, _SOCIAL, pr.choice(_NETWORKS), pr.choice(_SOCIAL_ACTIONS)))
        elif kind == 6:
            ref = f"{lead.lead_id}-ref{pr.randrange(100)}" if pr.random() < 0.7 else None
            ev.append((t, _REFERRAL, ref, None))
        elif lead.has_phone:
            ev.append(self._call(pr, t, rr, z))

    @staticmethod
    def _session(
        pr: random.Random, t: float, rr: float, z: float, ev: list[Ev], pages: int
    ) -> float:
        """A browsing session of ``pages`` page views from ``t``; returns its end time."""
        p_high = psig(-3.2 + 0.4 * z + 3.5 * rr)
        for _ in range(pages):
            u = pr.random()
            if u < p_high:
                url, typical = pr.choice(_HIGH_INTENT_URLS), 60.0
            elif u < p_high + 0.3:
                url, typical = pr.choice(_PRODUCT_URLS), 45.0
            else:
                url, typical = pr.choice(_GENERIC_URLS), 30.0
            duration = round(min(pr.lognormvariate(math.log(typical), 0.9), 1_800.0), 1)
            ev.append((t, _PAGE, url, duration))
            t += duration + pr.expovariate(1.0 / 8.0)
        return t

    @staticmethod
    def _call(pr: random.Random, t: float, rr: float, z: float) -> Ev:
        if pr.random() < psig(-0.7 + 0.6 * z + 1.8 * rr):
            p_interested = psig(-1.6 + 0.8 * z + 2.5 * rr)
            u = pr.random()
            if u < p_interested:
                outcome, typical = "interested", 420.0
            elif u < p_interested + 0.45 * (1 - p_interested):
                outcome, typical = "callback", 150.0
            elif u < 0.97:
                outcome, typical = "not_interested", 60.0
            else:
                outcome, typical = "other", 90.0
            duration = round(pr.lognormvariate(math.log(typical), 0.5), 1)
            return (t, _CALL, True, (duration, outcome))
        if pr.random() < 0.55:
            return (t, _CALL, False, (round(pr.uniform(15, 45), 1), "voicemail"))
        return (t, _CALL, False, (0.0, "no_answer"))

    def _emails(
        self,
        pr: random.Random,
        lead: Lead,
        c: float,
        stop: float,
        ramp: Callable[[float], float],
        ev: list[Ev],
    ) -> None:
        """Weekly newsletter/nurture sends (not events); opens and clicks are."""
        send = (int((c + pr.uniform(0.5, 7.0) * DAY_S) // DAY_S)) * DAY_S + 14 * HOUR_S
        z = lead.z
        while send < stop:
            rr = ramp(send)
            factor = self.open_factor[1 if self.shift_t is not None and send >= self.shift_t else 0]
            if pr.random() < min(0.95, psig(-1.4 + 0.5 * z + 1.5 * rr) * factor):
                campaign = f"cmp-{int(send // (7 * DAY_S))}"
                t_open = send + pr.expovariate(1.0 / (5 * HOUR_S))
                ev.append((t_open, _OPEN, campaign, None))
                if pr.random() < 0.25:
                    ev.append((t_open + pr.expovariate(1.0 / DAY_S), _OPEN, campaign, None))
                if pr.random() < psig(-2.2 + 0.5 * z + 1.5 * rr):
                    t_click = t_open + pr.expovariate(1.0 / 120.0)
                    high = pr.random() < 0.2 + 0.5 * rr
                    path = pr.choice(_HIGH_INTENT_URLS if high else _PRODUCT_URLS)
                    ev.append((t_click, _CLICK, campaign, f"{_WEB}{path}?utm_campaign={campaign}"))
                    seconds = round(pr.lognormvariate(math.log(50.0), 0.8), 1)
                    ev.append((t_click + 3.0, _PAGE, path, seconds))  # the landing page
            if pr.random() < 0.02:  # unsubscribed
                break
            send += 7 * DAY_S

    def _follow_ups(
        self, pr: random.Random, lead: Lead, ramp: Callable[[float], float], ev: list[Ev]
    ) -> None:
        """Sales reacts: calls after forms, downloads and demo requests; meetings after demos."""
        z = lead.z
        for t, code, *_ in list(ev):
            if code in (_FORM, _CONTENT) and lead.has_phone and pr.random() < 0.35:
                t_call = t + pr.expovariate(1.0 / (0.8 * DAY_S))
                ev.append(self._call(pr, t_call, ramp(t_call), z))
            elif code == _DEMO:
                if lead.has_phone and pr.random() < 0.85:
                    t_call = t + pr.expovariate(1.0 / (4 * HOUR_S))
                    ev.append(self._call(pr, t_call, ramp(t_call), z))
                if pr.random() < 0.3 + 0.6 * ramp(t):
                    t_meeting = t + pr.uniform(1.0, 6.0) * DAY_S
                    ev.append((t_meeting, _MEETING, pr.choice((30, 45, 60)), None))


# --- event dicts ----------------------------------------------------------------------------

_DAY_PREFIX: dict[int, str] = {}


def iso(t: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (truncated to the millisecond; fast)."""
    ms_total = int(t * 1000.0)
    seconds, ms = divmod(ms_total, 1000)
    day, seconds = divmod(seconds, 86_400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
        if len(_DAY_PREFIX) < 100_000:
            _DAY_PREFIX[day] = prefix
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"


def cloudevent(lead_id: str, pos: int, event: Ev) -> dict[str, Any]:
    """The CloudEvents dict of a compact event, the ``pos``-th of ``lead_id``."""
    t, code, a, b = event
    if code == _PAGE:
        data: dict[str, Any] = {"url": a, "duration_s": b}
    elif code == _OPEN:
        data = {"campaign_id": a}
    elif code == _CLICK:
        data = {"campaign_id": a, "url": b}
    elif code == _FORM:
        data = {"form_id": a}
    elif code == _CONTENT:
        data = {"asset": a, "kind": b}
    elif code == _DEMO:
        data = {"product": a}
    elif code == _CALL:
        data = {"answered": a, "duration_s": b[0], "outcome": b[1]}
    elif code == _MEETING:
        data = {"duration_min": a}
    elif code == _SOCIAL:
        data = {"network": a, "action": b}
    elif code == _REFERRAL:
        data = {"referred_lead_id": a} if a is not None else {}
    else:  # profile, converted, disqualified: the data dict is stored as is
        data = a
    return {
        "specversion": "1.0",
        "id": f"{lead_id}.{pos}",
        "source": _SOURCE_OF[code],
        "type": _TYPE_OF[code],
        "time": iso(t),
        "subject": lead_id,
        "datacontenttype": "application/json",
        "data": data,
    }
