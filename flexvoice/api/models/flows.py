"""Flows: a flow as the API shows it, with its validation problems."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flexvoice.api.models.base import (
    Resource,
)


class FlowProblem(Resource):
    line: int = Field(description="1-based line in the flow document; 0: the whole document")
    column: int
    message: str = Field(description="what is wrong and how to fix it (as the CLI prints it)")
    severity: Literal["error", "warning"]


class FlowResource(Resource):
    name: str = Field(description="the flow's name (its `flow:` key)")
    file: str = Field(description="the file in the node's flows folder")
    description: str
    valid: bool = Field(description="the file passes `flexvoice flows validate`")
    digest: str = Field(description="sha256 of the file's text")
    serving_digest: str | None = Field(
        description="sha256 of the version calls run now (the last valid one); null when the "
        "node's flow runtime has not loaded this flow"
    )
    problems: list[FlowProblem] = Field(description="errors and warnings, as the CLI lists them")
    yaml_url: str
    diagram_url: str


class FlowList(Resource):
    flows: list[FlowResource]
