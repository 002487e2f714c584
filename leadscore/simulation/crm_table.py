"""A CRM-style lead table from the simulator: what a batch-scoring user exports and uploads.

The stream scores leads from their events; many teams also have a table (one row per lead:
profile fields and activity counts) that they want scored in bulk. :func:`simulated_crm_table`
makes such a table from simulated leads, as a CRM export taken ``export_after_days`` after
each lead arrived: profile as of then, activity counted up to then, and ``converted`` = the
lead converted *after* the export (leads whose outcome was already known at the export, or
that were too recent to have one, are left out). `leadscore demo` trains a table model on
it so the dashboard's Batch tab works out of the box (docs/api.md).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Final

import pandas as pd

from leadscore.simulation.config import SimConfig
from leadscore.simulation.leads import LeadTruth
from leadscore.simulation.simulator import Simulator

#: Activity types counted, and their column names.
COUNTED: Final = {
    "lead.page_viewed": "page_views",
    "lead.email_opened": "email_opens",
    "lead.email_clicked": "email_clicks",
    "lead.form_submitted": "forms_submitted",
    "lead.content_downloaded": "content_downloads",
    "lead.call_logged": "calls",
    "lead.demo_requested": "demo_requests",
    "lead.meeting_held": "meetings",
    "lead.social_engaged": "social_engagements",
    "lead.referral_made": "referrals",
}
PROFILE: Final = ("country", "lead_source", "industry", "company_size", "job_title", "seniority")
OUTCOMES: Final = ("lead.converted", "lead.disqualified")


def simulated_crm_table(
    n_leads: int = 3000,
    *,
    seed: int = 0,
    span_days: float = 180.0,
    export_after_days: float = 14.0,
    min_follow_up_days: float = 60.0,
) -> pd.DataFrame:
    """One row per simulated lead, as exported ``export_after_days`` after it arrived.

    Args:
        n_leads: leads to simulate.
        seed: the simulator's seed.
        span_days: simulated history.
        export_after_days: the export's age per lead: activity after it is not counted.
        min_follow_up_days: leads exported less than this before the end of the history are
            left out (their outcome is not known yet).

    Returns:
        Columns ``lead_id``, ``created_on`` (date), the profile fields, the activity counts,
        ``contact_fields`` (how many contact fields are filled) and ``converted`` (yes/no),
        oldest lead first.

    Examples:
        >>> table = simulated_crm_table(300, seed=1)
        >>> {"lead_id", "company_size", "page_views", "converted"} <= set(table.columns)
        True
        >>> sorted(set(table["converted"]))
        ['no', 'yes']
    """
    truths: dict[str, LeadTruth] = {}
    config = SimConfig(n_leads=n_leads, seed=seed, span_days=span_days)
    rows: dict[str, dict[str, Any]] = {}
    counts: dict[str, Counter[str]] = {}
    last_time: datetime | None = None
    export = timedelta(days=export_after_days)
    for event in Simulator(config).events(
        on_lead=lambda truth: truths.__setitem__(truth.lead_id, truth)
    ):
        lead_id = event["subject"]
        truth = truths[lead_id]
        time = datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        last_time = time
        if time > truth.created_at + export or event["type"] in OUTCOMES:
            continue
        row = rows.setdefault(
            lead_id, {"lead_id": lead_id, "created_on": truth.created_at.date().isoformat()}
        )
        data = event.get("data") or {}
        if event["type"] == "lead.profile_updated":
            row.update({name: data[name] for name in PROFILE if data.get(name) is not None})
            if isinstance(data.get("contact_fields"), dict):
                row["contact_fields"] = sum(bool(v) for v in data["contact_fields"].values())
        elif event["type"] in COUNTED:
            counts.setdefault(lead_id, Counter())[COUNTED[event["type"]]] += 1
    if last_time is None:
        return pd.DataFrame()
    out = []
    for lead_id, row in rows.items():
        truth = truths[lead_id]
        exported = truth.created_at + export
        if exported > last_time - timedelta(days=min_follow_up_days):
            continue  # too recent: its outcome is not known yet
        if truth.outcome_time is not None and truth.outcome_time <= exported:
            continue  # the outcome was already known at the export
        converted = truth.outcome == "converted" and truth.outcome_time is not None
        out.append(
            {
                **row,
                **{name: counts.get(lead_id, Counter())[name] for name in COUNTED.values()},
                "converted": "yes" if converted else "no",
            }
        )
    columns = ["lead_id", "created_on", *PROFILE, "contact_fields", *COUNTED.values(), "converted"]
    table = pd.DataFrame(out)
    return (
        table.reindex(columns=[c for c in columns if c in table.columns])
        .sort_values(["created_on", "lead_id"], kind="stable")
        .reset_index(drop=True)
    )
