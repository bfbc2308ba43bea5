"""The REST API's resources, in the order /openapi.json and /docs list them.

The node's API component (flexvoice/node/api.py) mounts their routes under /v1.
"""

from __future__ import annotations

from flexvoice.api import calls, flows, numbers, recordings, statistics, usage
from flexvoice.api.framework import Resource

RESOURCES: list[Resource] = [
    calls.resource,
    numbers.resource,
    flows.resource,
    recordings.resource,
    usage.resource,
    statistics.resource,
]
