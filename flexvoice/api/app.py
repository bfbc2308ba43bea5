"""The REST API's resources, in the order /openapi.json and /docs list them.

The node's API component (flexvoice/node/api.py) mounts their routes under /v1.
"""

from __future__ import annotations

from flexvoice.api import (
    calls,
    conferences,
    flows,
    messages,
    numbers,
    recordings,
    statistics,
    usage,
    verifications,
)
from flexvoice.api.framework import Resource

RESOURCES: list[Resource] = [
    calls.resource,
    numbers.resource,
    flows.resource,
    recordings.resource,
    conferences.resource,
    usage.resource,
    statistics.resource,
    messages.resource,
    verifications.resource,
]
