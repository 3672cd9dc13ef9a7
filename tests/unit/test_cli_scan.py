"""The scan's command line: every default is ScanConfig's (scanner.cli reads it)."""

from __future__ import annotations

import dataclasses

from scanner import cli
from scanner.config import ScanConfig

EHLO = "scanner.example.org"


def test_the_cli_defaults_are_scanconfigs() -> None:
    args = cli._scan_parser().parse_args(["domains.txt", "-o", "out", "--ehlo-name", EHLO])
    config = cli._scan_config(args)
    expected = ScanConfig(input="domains.txt", output="out", ehlo_name=EHLO)
    differ = {
        f.name: (getattr(config, f.name), getattr(expected, f.name))
        for f in dataclasses.fields(ScanConfig)
        if getattr(config, f.name) != getattr(expected, f.name)
    }
    assert differ == {}
    assert config.bogus_probe == "dnssec-failed.org."


def test_options_reach_the_config() -> None:
    argv = ["-", "-o", "out", "--ehlo-name", EHLO, "--timeout", "5", "--max-addresses", "2",
            "--rate", "7", "--retries", "0", "--bogus-probe", "", "--starttls", "all"]  # fmt: skip
    config = cli._scan_config(cli._scan_parser().parse_args(argv))
    assert (config.timeout, config.max_addresses, config.rate, config.retries) == (5, 2, 7, 0)
    assert config.bogus_probe is None
    assert config.starttls.value == "all"
