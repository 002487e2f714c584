"""Input events: what leads do and who they are, as CloudEvents 1.0 (structured mode).

Every event is one JSON object with the CloudEvents context attributes and a
``data`` object whose shape depends on ``type``::

    {"specversion": "1.0", "id": "evt-0001", "source": "web-tracker",
     "type": "lead.page_viewed", "time": "2026-11-26T10:00:00Z",
     "subject": "lead-42", "data": {"url": "/pricing", "duration_s": 35}}

``subject`` is the lead id and must also be the Kafka key. ``time`` is the
event time (when it happened, timezone-aware); features are computed in event
time, so a replay gives the same state. ``id`` is unique per event and is used
to drop repeats.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

# A lead id or event id: printable, no control characters, bounded length.
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=500)]
NonNegative = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)]


class _Data(BaseModel):
    """Base of every ``data`` object: unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# --- activity data ------------------------------------------------------------------------


class PageViewData(_Data):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    duration_s: NonNegative = 0.0


class EmailData(_Data):
    campaign_id: ShortText | None = None
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class FormSubmitData(_Data):
    form_id: ShortText | None = None


class ContentKind(str, Enum):
    WHITEPAPER = "whitepaper"
    EBOOK = "ebook"
    CASE_STUDY = "case_study"
    WEBINAR = "webinar"
    DATASHEET = "datasheet"
    PRICING = "pricing"
    OTHER = "other"


class ContentDownloadData(_Data):
    asset: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    kind: ContentKind = ContentKind.OTHER


class DemoRequestData(_Data):
    product: ShortText | None = None


class CallOutcome(str, Enum):
    INTERESTED = "interested"
    CALLBACK = "callback"
    NOT_INTERESTED = "not_interested"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no_answer"
    OTHER = "other"


class CallData(_Data):
    answered: bool
    duration_s: NonNegative = 0.0
    outcome: CallOutcome | None = None


class MeetingData(_Data):
    duration_min: NonNegative = 0.0


class SocialEngagementData(_Data):
    network: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    action: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ReferralData(_Data):
    """The lead referred someone else (a strong advocacy signal)."""

    referred_lead_id: Identifier | None = None


# --- profile and outcome data ----------------------------------------------------------------


class Seniority(str, Enum):
    C_LEVEL = "c_level"
    VP = "vp"
    DIRECTOR = "director"
    MANAGER = "manager"
    INDIVIDUAL = "individual"
    STUDENT = "student"


class ContactFields(_Data):
    """Which contact fields the lead record has (their values are not needed to score)."""

    email: bool = False
    phone: bool = False
    company: bool = False
    job_title: bool = False
    linkedin: bool = False
    address: bool = False


class ProfileData(_Data):
    """A partial update of who the lead is: only the fields present are changed."""

    company_size: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    industry: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    job_title: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    seniority: Seniority | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = None
    lead_source: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    account_id: Identifier | None = None
    contact_fields: ContactFields | None = None


class OutcomeData(_Data):
    reason: ShortText | None = None
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


# --- the envelope ------------------------------------------------------------------------------


class _CloudEvent(BaseModel):
    """CloudEvents 1.0 context attributes shared by every input event."""

    # Extension attributes (lowercase names) are allowed and kept, as CloudEvents permits.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Identifier
    source: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    subject: Identifier
    time: AwareDatetime
    datacontenttype: Literal["application/json"] | None = None
    dataschema: str | None = None

    @property
    def lead_id(self) -> str:
        return self.subject


class PageViewed(_CloudEvent):
    type: Literal["lead.page_viewed"]
    data: PageViewData


class EmailOpened(_CloudEvent):
    type: Literal["lead.email_opened"]
    data: EmailData = EmailData()


class EmailClicked(_CloudEvent):
    type: Literal["lead.email_clicked"]
    data: EmailData = EmailData()


class FormSubmitted(_CloudEvent):
    type: Literal["lead.form_submitted"]
    data: FormSubmitData = FormSubmitData()


class ContentDownloaded(_CloudEvent):
    type: Literal["lead.content_downloaded"]
    data: ContentDownloadData


class DemoRequested(_CloudEvent):
    type: Literal["lead.demo_requested"]
    data: DemoRequestData = DemoRequestData()


class CallLogged(_CloudEvent):
    type: Literal["lead.call_logged"]
    data: CallData


class MeetingHeld(_CloudEvent):
    type: Literal["lead.meeting_held"]
    data: MeetingData = MeetingData()


class SocialEngaged(_CloudEvent):
    type: Literal["lead.social_engaged"]
    data: SocialEngagementData


class ReferralMade(_CloudEvent):
    type: Literal["lead.referral_made"]
    data: ReferralData = ReferralData()


class ProfileUpdated(_CloudEvent):
    type: Literal["lead.profile_updated"]
    data: ProfileData


class LeadConverted(_CloudEvent):
    type: Literal["lead.converted"]
    data: OutcomeData = OutcomeData()


class LeadDisqualified(_CloudEvent):
    type: Literal["lead.disqualified"]
    data: OutcomeData = OutcomeData()


ActivityEvent = (
    PageViewed
    | EmailOpened
    | EmailClicked
    | FormSubmitted
    | ContentDownloaded
    | DemoRequested
    | CallLogged
    | MeetingHeld
    | SocialEngaged
    | ReferralMade
)
OutcomeEvent = LeadConverted | LeadDisqualified
LeadEvent = Annotated[ActivityEvent | ProfileUpdated | OutcomeEvent, Field(discriminator="type")]

ACTIVITY_TYPES: frozenset[str] = frozenset(
    m.model_fields["type"].annotation.__args__[0] for m in ActivityEvent.__args__
)
PROFILE_TYPES: frozenset[str] = frozenset({"lead.profile_updated"})
OUTCOME_TYPES: frozenset[str] = frozenset({"lead.converted", "lead.disqualified"})
EVENT_TYPES: frozenset[str] = ACTIVITY_TYPES | PROFILE_TYPES | OUTCOME_TYPES

lead_event_adapter: TypeAdapter[Any] = TypeAdapter(LeadEvent)
