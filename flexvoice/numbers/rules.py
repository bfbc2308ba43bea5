"""What a hosted number, a flow name and a prompt name must look like, and the error that says
what is wrong (`NumberError`, with a code stable for APIs). The E.164 rule itself is
flexvoice/e164.py; this adds what hosting needs (a valid, assigned, geographic number)."""

from __future__ import annotations

import re

import phonenumbers

from flexvoice import e164 as e164_rule
from flexvoice.errors import UserError

# The one rule for a flow's name (the flows' model and the API use it too): short enough to be
# a file name everywhere.
FLOW_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROMPT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")


class NumberError(UserError):
    """A number operation refused for a reason the caller can fix; `code` is stable for APIs."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code  # "invalid-number", "not-found", "conflict", "managed-by-file", ...
        self.field = field


def parse_e164(text: str, *, geographic: bool = False, field: str = "number") -> str:
    """`text` when it is a valid E.164 number (flexvoice/e164.py: national forms such as
    02 555 10 01 are refused, with the E.164 form to write), or a NumberError saying what is
    wrong. With `geographic`, mobile and special numbers are refused: only fixed-line numbers
    can be hosted on the platform."""
    try:
        parsed = e164_rule.parse(text)
    except e164_rule.NotE164 as exc:
        raise NumberError("invalid-number", f"{field}: {exc}", field) from None
    if not phonenumbers.is_valid_number(parsed):
        raise NumberError(
            "invalid-number",
            f"{field}: '{text}' is not a valid number (wrong length or unassigned range); "
            "write it in E.164, e.g. +3225551001",
            field,
        )
    e164 = text
    if geographic:
        kind = phonenumbers.number_type(parsed)
        fixed = (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        )
        if kind not in fixed:
            raise NumberError(
                "invalid-number",
                f"{field}: {e164} is not a geographic (fixed-line) number; only geographic "
                "numbers such as +3225551001 (Brussels) can be hosted",
                field,
            )
    return e164


def check_flow_name(name: str, field: str = "flow") -> str:
    return _checked(
        FLOW_NAME_RE.match(name) is not None,
        name,
        field,
        f"{field}: '{name}' is not a flow name; use lower-case letters, digits, '-' and '_' "
        "(the file flows/NAME.yaml)",
    )


def check_prompt_name(name: str, field: str = "prompt") -> str:
    return _checked(
        PROMPT_NAME_RE.match(name) is not None and ".." not in name,
        name,
        field,
        f"{field}: '{name}' is not a prompt name; name a file in ivr_prompts/ without .wav",
    )


def _checked(ok: bool, name: str, field: str, message: str) -> str:
    if not ok:
        raise NumberError("invalid-field", message, field)
    return name
