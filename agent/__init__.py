"""pbx-agent: a bridge between an Asterisk PBX and CRMs."""

__version__ = "0.1.0"
