"""The htslib message capture: every reader thread sees every error line (run_threaded's readers each fork it)."""

from __future__ import annotations

import os
import tempfile

from genolake.ingest.reader import _Capture


def test_forked_readers_each_see_an_error_line() -> None:
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        shared = _Capture(tmp.fileno())
        os.write(tmp.fileno(), b"[W::hts] a warning before the readers\n")
        a, b = shared.fork(), shared.fork()
        os.write(tmp.fileno(), b"[E::vcf_parse] bad record\n")
        assert a.new_error() == "[E::vcf_parse] bad record"
        assert a.new_error() is None  # read once per reader ...
        assert b.new_error() == "[E::vcf_parse] bad record"  # ... but not taken from the other one
        assert shared.new_error() == "[E::vcf_parse] bad record"
