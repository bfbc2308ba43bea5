"""The verb registry: one small module per verb. Later verbs (conference) add a line."""

from __future__ import annotations

from flexvoice.flows.base import Verb
from flexvoice.flows.verbs.answer import Answer
from flexvoice.flows.verbs.conference import Conference
from flexvoice.flows.verbs.dial import Dial
from flexvoice.flows.verbs.gather import Gather
from flexvoice.flows.verbs.goto import Goto
from flexvoice.flows.verbs.hangup import Hangup
from flexvoice.flows.verbs.hours import Hours
from flexvoice.flows.verbs.menu import Menu
from flexvoice.flows.verbs.play import Play
from flexvoice.flows.verbs.queue import Queue
from flexvoice.flows.verbs.record import Record
from flexvoice.flows.verbs.redirect import Redirect
from flexvoice.flows.verbs.set import Set
from flexvoice.flows.verbs.sms import Sms
from flexvoice.flows.verbs.switch import Switch
from flexvoice.flows.verbs.webhook import Webhook

VERBS: dict[str, type[Verb]] = {
    cls.verb: cls
    for cls in (
        Answer,
        Play,
        Menu,
        Gather,
        Dial,
        Redirect,
        Queue,
        Hours,
        Record,
        Conference,
        Switch,
        Set,
        Goto,
        Webhook,
        Sms,
        Hangup,
    )
}


def register(cls: type[Verb]) -> None:
    """Add a verb (for later issues and plug-ins); its name must be new."""
    if cls.verb in VERBS:
        raise ValueError(f"verb '{cls.verb}' is already registered")
    VERBS[cls.verb] = cls
