"""Run one harness under atheris (libFuzzer) for coverage-guided fuzzing.

    .venv/bin/python -m tests.fuzz.run dns_message -max_total_time=60
    make fuzz FUZZ_SECONDS=300          # every target in turn

Every Python function loaded (the scanner's parsers, and the DNS codec's
source next to its compiled build, which atheris cannot instrument) is
instrumented for coverage. libFuzzer starts from the committed seeds
(tests/fuzz/corpus/<target>/) and writes the inputs it finds to
.cache/fuzz/<target>/corpus/, crashing inputs to .cache/fuzz/<target>/ as
``crash-<sha1>``: a finding is fixed in the parser, its bytes go into the
regression table (tests/fuzz/test_regressions.py) and into the corpus.
Further arguments go to libFuzzer (-runs=N, -max_len=N, -jobs=N, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

from tests.fuzz.harnesses import CORPUS, TARGETS, wire_builds

# Inputs longer than these add nothing but time: a DNS answer over UDP fits
# 1232 octets (larger ones come over TCP, up to 64 KiB, through the same
# parser); an SMTP stream must pass the 4096-octet line bound; a certificate
# of the test PKI is about 700 octets.
MAX_LEN = {
    "dns_message": 4096,
    "dns_name": 1024,
    "smtp": 12288,
    "der": 4096,
    "tlsa": 2048,
    "normalise": 2048,
    "reader": 12288,
    "exclude": 4096,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = argv[1]
    work = Path(".cache/fuzz") / target
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    wire_builds()  # load the codec's source build before instrumenting
    atheris.instrument_all()
    harness = TARGETS[target]
    options = [
        f"-max_len={MAX_LEN[target]}",
        "-timeout=10",  # seconds for one input: a parser that loops is a finding
        "-rss_limit_mb=4096",
        f"-artifact_prefix={work}/",
        *argv[2:],
        str(work / "corpus"),  # new inputs go to the first directory
        str(CORPUS / target),
    ]
    atheris.Setup([argv[0], *options], harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
