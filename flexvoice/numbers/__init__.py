"""The number registry: which geographic numbers the node answers, for which account, and what
runs when one rings (a flow, or a prompt until flows exist), plus each number's Voice
Continuity switch.

The SIP layer calls `NumberRegistry.lookup()` on every INVITE (404 when it returns None, 403
when `Number.suspended`); the REST API and `flexvoice numbers` manage the same table.

Two ways a number gets here, and who owns it afterwards:
- `sip/numbers.yaml`, edited by the operator and synced at start (`sync_from_yaml`): the file
  owns those numbers. Syncing adds, updates and removes them to match the file; the API and the
  CLI refuse to change or delete them (409) so a restart never silently undoes an API edit.
- `put()` from the API or the CLI: owned by the database, left alone by the sync.
Voice Continuity is the customer's own switch and may be set on either kind.

Every activation period of a number is one `number` usage event (metering issue): adding a
number records it with `active_to: null`; removing it records the same event id again with
`active_to` set, which the metering store treats as closing that period.

One job a module: rules.py (what a number, flow name, prompt name must be), yamlfile.py (the
file's model and reader), table.py (schema, rows, transactions), usage.py (usage events),
sync.py (file to table), registry.py (reads and the API's writes).
"""

from flexvoice.numbers.registry import NumberRegistry
from flexvoice.numbers.rules import (
    FLOW_NAME_RE,
    PROMPT_NAME_RE,
    NumberError,
    check_flow_name,
    check_prompt_name,
    parse_e164,
)
from flexvoice.numbers.table import Number, ensure_schema
from flexvoice.numbers.usage import UsageSink
from flexvoice.numbers.yamlfile import FileNumber, NumbersFile, read_numbers_file

__all__ = [
    "FLOW_NAME_RE",
    "PROMPT_NAME_RE",
    "FileNumber",
    "Number",
    "NumberError",
    "NumberRegistry",
    "NumbersFile",
    "UsageSink",
    "check_flow_name",
    "check_prompt_name",
    "ensure_schema",
    "parse_e164",
    "read_numbers_file",
]
