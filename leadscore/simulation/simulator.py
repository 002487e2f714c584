"""A generative model of leads: synthetic CloudEvents traffic with a known truth per lead.

The model, in the order a lead lives it (``docs/simulator.md`` has the numbers):

1. **Arrival.** Leads arrive uniformly over ``[start, start + span_days)``. Each
   belongs to an *account* (a company) from a pool shared by about three leads,
   which fixes its industry, size, country and an account-level intent component.
2. **Who they are.** Lead source, seniority (and a job title that implies it),
   contact completeness. Not everything is known: size, industry, seniority and
   the title are each missing from the profile for some leads.
3. **Hidden state.** ``z = mu[source] + 0.5 * account_z + 0.85 * N(0, 1)`` is the
   intent logit; ``intent = sigmoid(z - 1)`` is reported as truth. The fit logit is
   a sum of firmographic effects (industry, company size, seniority, country,
   contact completeness, source) plus unobserved noise; ``fit = sigmoid(fit_logit)``.
4. **The journey.** With probability ``sigmoid(d + W0 + 1.6 z)`` a lead enters a
   *buying window* some days after arriving. Inside it, activity ramps up (``r``
   goes 0 -> 1) and the mix moves to high-intent actions: pricing/demo pages,
   demo requests, answered calls, meetings. At the end of the window the lead
   converts with probability ``sigmoid(d + C0 + fit_logit + 0.5 z)``, otherwise
   the deal is lost (and usually disqualified a few days later). Leads without a
   window drift away (interest decays) and are often disqualified for bad fit.
   ``d`` is solved so that the share of leads that eventually convert equals
   ``SimConfig.base_conversion_rate``.
5. **Activity.** Each calendar day's activity is Poisson with a rate that is the
   product of the lead's activity level, an interest envelope, a weekday factor
   and a Gamma burst factor (so activity comes in bursts), times a per-type gain
   on the window ramp. Emails follow a weekly send schedule; opens and clicks
   depend on intent and the ramp. Form submits, downloads and demo requests are
   followed up by sales calls; demo requests by meetings.
6. **Outcome.** ``lead.converted`` or ``lead.disqualified``; all activity stops
   at the outcome. Nothing after the end of the simulated span is emitted, so
   recent leads are still open (censored), as in a real CRM.

A :class:`Shift` switches to another :class:`Regime` at a time ``T``: leads
arriving from ``T`` come from a different industry mix and convert on a
different fit (small companies and healthcare win), and every email sent from
``T`` is opened at a different rate. That is covariate, behavioural and concept
drift at once, for the drift detector and the retrainer to find.

This module holds the entry points (:class:`Simulator`, :func:`simulate`,
:func:`live_events`). The model's parts: :mod:`~leadscore.simulation.config` (regimes,
the shift, :class:`SimConfig`), :mod:`~leadscore.simulation.leads` (who the leads are,
the truth), :mod:`~leadscore.simulation.activity` (what they do, as events) and
:mod:`~leadscore.simulation.cohort` (a cohort's leads, merged by time). Runs on disk:
:mod:`~leadscore.simulation.files`; how learnable the signal is:
:mod:`~leadscore.simulation.learnability`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from leadscore.simulation.cohort import Cohort
from leadscore.simulation.config import DAY_S, Shift, SimConfig
from leadscore.simulation.leads import LeadTruth, calibrate


class Simulator:
    """Holds the calibration for a config; produces batch runs and live cohorts.

    Args:
        config: what to simulate.

    Examples:
        >>> from datetime import UTC, datetime
        >>> sim = Simulator(SimConfig(n_leads=5, start=datetime(2026, 1, 5, tzinfo=UTC)))
        >>> first = next(sim.events())
        >>> first["type"], first["time"] < "2026-02-04"
        ('lead.profile_updated', True)
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._offsets = {0: calibrate(config.regime, config.base_conversion_rate)}
        if config.shift is not None:
            self._offsets[1] = calibrate(config.shift.regime, config.base_conversion_rate)

    def events(
        self,
        *,
        on_lead: Callable[[LeadTruth], None] | None = None,
        now: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The events of the whole run, in event-time order.

        Args:
            on_lead: called with each lead's truth when the lead is generated (in
                arrival order, before any of its events is yielded).
            now: the wall-clock time the span ends at when ``config.start`` is
                ``None`` (default: the current time).

        Yields:
            CloudEvents dicts (structured JSON mode), ready for ``orjson.dumps``.
        """
        cfg = self.config
        if cfg.start is not None:
            start_t = cfg.start.timestamp()
        else:
            start_t = (now.timestamp() if now is not None else time.time()) - cfg.span_days * DAY_S
        end_t = start_t + cfg.span_days * DAY_S
        return self._cohort(0, start_t, end_t, cfg.run_id, cfg.shift, on_lead)

    def live_events(
        self,
        *,
        on_lead: Callable[[LeadTruth], None] | None = None,
        clock: Callable[[], float] = time.time,
        cohorts: int | None = None,
        run_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Cohort after cohort of leads whose histories end at the wall-clock time.

        Cohort ``k`` is generated when the previous one is exhausted, over
        ``[clock() - span_days, clock())``, with lead ids ``<run_id>-<k>-<n>``, so no
        event time is ever ahead of the wall clock. Event time restarts (goes back
        by ``span_days``) at each cohort, but each lead's events are in order.

        Args:
            on_lead: called with each lead's truth when the lead is generated.
            clock: epoch seconds now; injectable for tests.
            cohorts: stop after this many cohorts (default: never).
            run_id: the lead id prefix; default ``<config.run_id>-<start time, base 16>``,
                so two runs never reuse lead or event ids.

        Yields:
            CloudEvents dicts, in event-time order within each cohort.
        """
        cfg = self.config
        run = run_id or f"{cfg.run_id}-{int(clock()):x}"
        k = 0
        while cohorts is None or k < cohorts:
            now_t = clock()
            start_t = now_t - cfg.span_days * DAY_S
            shift = cfg.shift
            if shift is not None:  # wall-clock semantics: the whole cohort after T is shifted
                shifted = now_t >= shift.at.timestamp()
                at_t = start_t if shifted else now_t + 1.0
                shift = replace(shift, at=datetime.fromtimestamp(at_t, UTC))
            yield from self._cohort(k, start_t, now_t, run, shift, on_lead)
            k += 1

    def _cohort(
        self,
        cohort: int,
        start_t: float,
        end_t: float,
        run_id: str,
        shift: Shift | None,
        on_lead: Callable[[LeadTruth], None] | None,
    ) -> Iterator[dict[str, Any]]:
        gen = Cohort(
            self.config,
            cohort=cohort,
            start_t=start_t,
            end_t=end_t,
            run_id=run_id,
            shift_t=shift.at.timestamp() if shift is not None else None,
            shift_regime=shift.regime if shift is not None else None,
            offsets=self._offsets,
        )
        return gen.events(on_lead)


def simulate(
    config: SimConfig,
    *,
    on_lead: Callable[[LeadTruth], None] | None = None,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of a batch run in event-time order; see :meth:`Simulator.events`."""
    return Simulator(config).events(on_lead=on_lead, now=now)


def live_events(
    config: SimConfig,
    *,
    on_lead: Callable[[LeadTruth], None] | None = None,
    clock: Callable[[], float] = time.time,
    cohorts: int | None = None,
    run_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Unbounded live traffic, never ahead of the wall clock; see :meth:`Simulator.live_events`."""
    sim = Simulator(config)
    return sim.live_events(on_lead=on_lead, clock=clock, cohorts=cohorts, run_id=run_id)


def simulate_with_truth(
    config: SimConfig, *, now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[LeadTruth]]:
    """A whole (small) run in memory: the events in time order and the truth per lead."""
    truth: list[LeadTruth] = []
    events = list(simulate(config, on_lead=truth.append, now=now))
    return events, truth
