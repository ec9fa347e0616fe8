"""The version of genolake (here, not in ``__init__``, so the core can read it without importing the API)."""

__version__ = "0.1.0"
