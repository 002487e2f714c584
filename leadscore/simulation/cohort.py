"""One cohort of simulated leads: plan each lead's life and merge all their events by time."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from leadscore.simulation.activity import Activity, Ev, cloudevent
from leadscore.simulation.config import DAY_S, INDUSTRIES, Regime, SimConfig
from leadscore.simulation.leads import (
    CONTACT_FIELDS,
    COUNTRY_HOUR,
    COUNTRY_NAMES,
    INDUSTRY_LABELS,
    SENIORITIES,
    SENIORITY_NAMES,
    SOURCE_NAMES,
    SOURCES,
    Accounts,
    Chunk,
    Lead,
    LeadTruth,
    p_close,
    p_window,
    psig,
)

_LOST_REASONS: Final = ("lost_to_competitor", "no_budget", "no_decision")
_INTENT_BIAS: Final = -1.0
_CHUNK: Final = 256


class Cohort:
    """Generates one cohort of leads over ``[start_t, end_t)`` and merges their events by time."""

    def __init__(
        self,
        config: SimConfig,
        *,
        cohort: int,
        start_t: float,
        end_t: float,
        run_id: str,
        shift_t: float | None,
        shift_regime: Regime | None,
        offsets: dict[int, float],
    ) -> None:
        self.config = config
        self.cohort = cohort
        self.start_t = start_t
        self.end_t = end_t
        self.run_id = run_id
        self.shift_t = shift_t
        self.regimes = (config.regime, shift_regime or config.regime)
        self.offsets = offsets
        pool = max(50, config.n_leads // 3)
        self.accounts = tuple(
            Accounts.draw(np.random.default_rng([config.seed, 3, r]), pool, regime, r * pool)
            for r, regime in enumerate(self.regimes)
        )
        self.open_factor = tuple(regime.email_open_factor for regime in self.regimes)
        self.activity = Activity(config, end_t=end_t, shift_t=shift_t, open_factor=self.open_factor)

    def events(self, on_lead: Callable[[LeadTruth], None] | None) -> Iterator[dict[str, Any]]:
        cfg = self.config
        n = cfg.n_leads
        times = np.sort(np.random.default_rng([cfg.seed, 1, self.cohort]).random(n))
        created = self.start_t + times * (self.end_t - self.start_t)
        split = n if self.shift_t is None else int(np.searchsorted(created, self.shift_t))
        # Chunks never straddle the shift, so a chunk is drawn from one regime.
        bounds = sorted({0, split, n} | set(range(0, n, _CHUNK)))
        heap: list[tuple[float, int, int, list[Ev], str]] = []
        seq = 0
        for chunk_no, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
            if lo == hi:
                continue
            regime_no = 0 if lo < split else 1
            rng = np.random.default_rng([cfg.seed, 2, self.cohort, chunk_no])
            chunk = Chunk.draw(rng, hi - lo, self.regimes[regime_no], self.accounts[regime_no])
            for j in range(hi - lo):
                idx = lo + j
                created_t = float(created[idx])
                # Every later lead's events are at or after its arrival: emit what precedes it.
                while heap and heap[0][0] < created_t:
                    yield self._pop(heap)
                lead = self._plan(rng, chunk, j, idx, created_t, regime_no)
                events = self.activity.events(random.Random(int(rng.integers(2**62))), rng, lead)
                if on_lead is not None:
                    on_lead(self._truth(lead))
                heapq.heappush(heap, (events[0][0], seq, 0, events, lead.lead_id))
                seq += 1
        while heap:
            yield self._pop(heap)

    @staticmethod
    def _pop(heap: list[tuple[float, int, int, list[Ev], str]]) -> dict[str, Any]:
        _, seq, pos, events, lead_id = heap[0]
        if pos + 1 < len(events):
            heapq.heapreplace(heap, (events[pos + 1][0], seq, pos + 1, events, lead_id))
        else:
            heapq.heappop(heap)
        return cloudevent(lead_id, pos, events[pos])

    def _plan(
        self,
        rng: np.random.Generator,
        c: Chunk,
        j: int,
        idx: int,
        created_t: float,
        regime_no: int,
    ) -> Lead:
        """Identity, profile and the journey's turning points of lead ``j`` of the chunk."""
        accounts = self.accounts[regime_no]
        acct = int(c.account[j])
        industry = INDUSTRIES[int(accounts.industry[acct])]
        size = max(1, int(10 ** float(accounts.log10_size[acct])))
        country_no = int(accounts.country[acct])
        country = COUNTRY_NAMES[country_no]
        source = SOURCE_NAMES[int(c.source[j])]
        seniority = SENIORITY_NAMES[int(c.seniority[j])]
        contacts = {name: bool(v) for name, v in zip(CONTACT_FIELDS, c.contacts[j], strict=True)}
        z = float(c.z[j])
        fit_logit = float(c.fit_logit[j])
        offset = self.offsets[regime_no]
        u = rng.random(12)

        profile: dict[str, Any] = {
            "country": country,
            "lead_source": _pick(SOURCES[source][3], u[0]),
            "contact_fields": contacts,
        }
        titles = SENIORITIES[seniority][2]
        if contacts["job_title"]:
            profile["job_title"] = _pick(titles, u[1])
        if u[2] < 0.5:
            profile["seniority"] = seniority
        late: dict[str, Any] = {}
        if contacts["company"]:
            profile["account_id"] = f"{self.run_id}-acct-{accounts.offset + acct}"
            (profile if u[3] < 0.8 else late)["company_size"] = size
            (profile if u[4] < 0.9 else late)["industry"] = _pick(INDUSTRY_LABELS[industry], u[5])
        if not late and u[6] < 0.12:  # an occasional later update: new title or richer contacts
            if contacts["job_title"] and u[7] < 0.5:
                late["job_title"] = _pick(titles, u[8])
            else:
                late["contact_fields"] = contacts | {"linkedin": True, "address": True}

        window_start: float | None = None
        window_len = 0.0
        will_convert = False
        outcome: str | None = None
        outcome_t: float | None = None
        outcome_data: dict[str, Any] = {}
        if float(c.u_window[j]) < float(p_window(z, offset)):
            window_start = created_t + DAY_S * (0.5 + rng.gamma(1.2, 5.0))
            window_len = DAY_S * (3.0 + rng.gamma(2.0, 6.0))
            decision_t = window_start + window_len
            if float(c.u_close[j]) < float(p_close(z, fit_logit, offset)):
                will_convert = True
                outcome, outcome_t = "converted", decision_t
                deal = rng.lognormal(math.log(4_000.0 * size**0.35), 0.5)
                outcome_data = {"reason": "closed_won", "value": round(float(deal), 2)}
            elif u[10] < 0.6:
                outcome, outcome_t = "disqualified", decision_t + DAY_S * rng.exponential(4.0)
                outcome_data = {"reason": _pick(_LOST_REASONS, u[11])}
        elif float(c.u_dq[j]) < psig(-0.8 - 0.9 * fit_logit - 0.4 * z):
            outcome, outcome_t = "disqualified", created_t + DAY_S * (0.5 + rng.gamma(2.0, 6.0))
            if seniority == "student":
                reason = "student"
            elif sum(contacts.values()) <= 2:
                reason = "invalid_contact"
            elif fit_logit < -0.5:
                reason = "bad_fit"
            else:
                reason = "no_response"
            outcome_data = {"reason": reason}
        if outcome_t is not None and outcome_t - created_t > self.config.max_life_days * DAY_S:
            outcome, outcome_t, outcome_data = None, None, {}

        return Lead(
            lead_id=f"{self.run_id}-{self.cohort}-{idx:06d}",
            created_t=created_t,
            regime=regime_no,
            source=source,
            seniority=seniority,
            country=country,
            industry=industry,
            z=z,
            fit_logit=fit_logit,
            level=float(c.level[j]) * self.config.activity_scale,
            has_phone=contacts["phone"],
            profile=profile,
            late_profile=late or None,
            window_start=window_start,
            window_len=window_len,
            will_convert=will_convert,
            outcome=outcome,
            outcome_t=outcome_t,
            outcome_data=outcome_data,
            tau_days=float(rng.lognormal(math.log(20.0), 0.5)),
            hour=float(COUNTRY_HOUR[country_no] + rng.normal(0.0, 1.5)),
        )

    def _truth(self, lead: Lead) -> LeadTruth:
        seen_t = lead.outcome_t
        if seen_t is not None and seen_t >= self.end_t:
            seen_t = None  # after the end of the span: not seen yet
        outcome = lead.outcome if seen_t is not None else None
        return LeadTruth(
            lead_id=lead.lead_id,
            created_at=datetime.fromtimestamp(lead.created_t, UTC),
            intent=psig(lead.z + _INTENT_BIAS),
            fit=psig(lead.fit_logit),
            converted=outcome == "converted",
            outcome=outcome,
            outcome_time=datetime.fromtimestamp(seen_t, UTC) if seen_t is not None else None,
            will_convert=lead.will_convert,
            regime=lead.regime,
        )


def _pick(options: tuple[Any, ...], u: float) -> Any:
    return options[min(int(u * len(options)), len(options) - 1)]
