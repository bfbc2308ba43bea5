"""FlexVoice: a programmable-voice / CPaaS engine."""

__version__ = "0.1.0"
