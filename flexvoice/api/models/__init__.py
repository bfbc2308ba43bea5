"""Request and response models, one module a resource (base.py holds what they share): they
validate requests and they are the OpenAPI schemas, so the document can never drift from what
the server accepts. Requests forbid unknown fields. Every model imports from here too."""

from flexvoice.api.models.base import (
    E164,
    CallStatusName,
    FlowName,
    Month,
    Query,
    Request,
    Resource,
    StatusEvent,
)
from flexvoice.api.models.calls import (
    CallCreate,
    CallEvent,
    CallEvents,
    CallLegSummary,
    CallList,
    CallListQuery,
    CallResource,
    CallUpdate,
    EndedByName,
    PricePart,
)
from flexvoice.api.models.flows import FlowList, FlowProblem, FlowResource
from flexvoice.api.models.messages import (
    MessageCreate,
    MessageList,
    MessageListQuery,
    MessageResource,
    MessageStatusName,
)
from flexvoice.api.models.numbers import (
    Continuity,
    ContinuityPut,
    NumberList,
    NumberPut,
    NumberResource,
)
from flexvoice.api.models.recordings import RecordingList, RecordingListQuery, RecordingResource
from flexvoice.api.models.usage import UsageExportQuery, UsageLine, UsageQuery, UsageStatement
from flexvoice.api.models.verifications import (
    VerificationCheck,
    VerificationCreate,
    VerificationResource,
    VerificationStatusName,
    VerificationUpdate,
)

__all__ = [
    "E164",
    "CallCreate",
    "CallEvent",
    "CallEvents",
    "CallLegSummary",
    "CallList",
    "CallListQuery",
    "CallResource",
    "CallStatusName",
    "CallUpdate",
    "Continuity",
    "ContinuityPut",
    "EndedByName",
    "FlowList",
    "FlowName",
    "FlowProblem",
    "FlowResource",
    "MessageCreate",
    "MessageList",
    "MessageListQuery",
    "MessageResource",
    "MessageStatusName",
    "Month",
    "NumberList",
    "NumberPut",
    "NumberResource",
    "PricePart",
    "Query",
    "RecordingList",
    "RecordingListQuery",
    "RecordingResource",
    "Request",
    "Resource",
    "StatusEvent",
    "UsageExportQuery",
    "UsageLine",
    "UsageQuery",
    "UsageStatement",
    "VerificationCheck",
    "VerificationCreate",
    "VerificationResource",
    "VerificationStatusName",
    "VerificationUpdate",
]
