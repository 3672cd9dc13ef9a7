"""The managed Unbound's configuration: accepted by unbound-checkconf, every
option under its reason, sized from the machine, and timed so that the
scanner's DNS client outlasts the resolver (scanner/resolve/managed.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scanner.resolve import managed
from scanner.resolve.client import ResolverSettings
from scanner.resolve.unbound_conf import (
    MAX_RTT_MS,
    UNKNOWN_SERVER_MS,
    Setting,
    Sizing,
    dead_address_bound,
    last_send,
    render,
    setting,
    total_wait,
    unbound_conf,
)

# The root zone's KSK-2017 DS (RFC 7958 trust anchor), as a file Unbound reads.
ROOT_DS = ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
OPTION = re.compile(r"^\s+([a-z0-9-]+):(\s|$)")


def unexplained(text: str) -> list[str]:
    """Option lines not directly under a comment (or under the same option
    repeated, as several local-zone lines share one reason)."""
    bad, previous = [], ""
    for line in text.splitlines():
        option = OPTION.match(line)
        if option is not None:
            above = OPTION.match(previous)
            if not previous.lstrip().startswith("#") and (
                above is None or above.group(1) != option.group(1)
            ):
                bad.append(line.strip())
        previous = line
    return bad


def options(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if OPTION.match(line):
            name, _, value = line.strip().partition(":")
            found.setdefault(name, []).append(value.strip())
    return found


def config(tmp_path: Path, *, private_root: bool = True, anchor: str = "root.ds") -> str:
    (tmp_path / anchor).write_text(ROOT_DS)
    hints = tmp_path / "root.hints"
    hints.write_text(". 3600000 IN NS ns1.\nns1. 3600000 IN A 127.84.253.1\n")
    return unbound_conf(
        workdir=tmp_path,
        port=5399,
        trust_anchor=tmp_path / anchor,
        root_hints=hints if private_root else None,
        sizing=Sizing.for_machine(2, 20_000),
    )


@pytest.mark.skipif(
    shutil.which("unbound-checkconf") is None,
    reason="unbound-checkconf not installed (Debian package 'unbound'; make setup installs it)",
)
@pytest.mark.parametrize(
    ("private_root", "anchor"), [(True, "root.ds"), (False, "root.key")], ids=["testbed", "root"]
)
def test_unbound_checkconf_accepts_it(tmp_path: Path, private_root: bool, anchor: str) -> None:
    conf = tmp_path / "unbound.conf"
    conf.write_text(config(tmp_path, private_root=private_root, anchor=anchor))
    proc = subprocess.run(
        ["unbound-checkconf", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no errors" in proc.stdout


@pytest.mark.skipif(
    shutil.which("unbound-checkconf") is None,
    reason="unbound-checkconf not installed (Debian package 'unbound'; make setup installs it)",
)
def test_unbound_checkconf_accepts_what_managed_unbound_writes(tmp_path: Path) -> None:
    """Sized from this machine's CPUs and open-files limit."""
    (tmp_path / "root.ds").write_text(ROOT_DS)
    conf = tmp_path / "unbound.conf"
    conf.write_text(managed.unbound_config(tmp_path, 5399, tmp_path / "root.ds", None))
    proc = subprocess.run(
        ["unbound-checkconf", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_option_is_under_its_reason(tmp_path: Path) -> None:
    text = config(tmp_path)
    assert len(options(text)) > 50  # the parse sees the options at all
    assert unexplained(text) == []
    assert options(text)["local-zone"][0] == '"test." nodefault'


def test_an_option_without_its_comment_is_caught(tmp_path: Path) -> None:
    text = config(tmp_path)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("discard-timeout:"))
    start = at
    while lines[start - 1].lstrip().startswith("#"):
        start -= 1
    stripped = "\n".join(lines[:start] + lines[at:])
    assert unexplained(stripped) == ["discard-timeout: 0"]


def test_a_setting_cannot_be_built_without_a_reason() -> None:
    with pytest.raises(ValueError, match="says why"):
        Setting("discard-timeout", ("0",), "  ")
    with pytest.raises(ValueError, match="no value"):
        setting("local-zone", [], "a reason")


def test_render_repeats_an_option_under_one_comment() -> None:
    text = render("server", [setting("local-zone", ['"a." nodefault', '"b." nodefault'], "why")])
    assert text == (
        'server:\n\n  # why\n  local-zone: "a." nodefault\n  local-zone: "b." nodefault\n'
    )


def test_what_the_timeout_story_rests_on(tmp_path: Path) -> None:
    """managed.py's docstring argues from these values."""
    found = {name: values[0] for name, values in options(config(tmp_path)).items()}
    assert found["unknown-server-time-limit"] == str(UNKNOWN_SERVER_MS)
    assert found["infra-cache-max-rtt"] == str(MAX_RTT_MS)
    assert found["infra-keep-probing"] == "no"
    assert found["discard-timeout"] == "0"
    assert found["wait-limit"] == "0"
    assert found["serve-expired"] == "no"
    assert found["ratelimit"] == "0"
    assert found["so-reuseport"] == "no"


def test_a_private_root_only_with_root_hints(tmp_path: Path) -> None:
    testbed = options(config(tmp_path))
    assert testbed["do-not-query-localhost"] == ["no"]
    assert testbed["trust-anchor-file"] == [f'"{tmp_path}/root.ds"']
    internet = options(config(tmp_path, private_root=False, anchor="root.key"))
    assert "root-hints" not in internet
    assert "local-zone" not in internet
    assert internet["auto-trust-anchor-file"] == [f'"{tmp_path}/root.key"']


@pytest.mark.parametrize(
    ("cpus", "nofile", "expected"),
    [
        (2, 20_000, Sizing(2, 2, 8192, 4096)),
        (3, 1 << 20, Sizing(3, 4, 8192, 4096)),
        (64, 1 << 20, Sizing(8, 8, 8192, 4096)),
        (64, 20_000, Sizing(8, 8, 2172, 1086)),
        (4, 4096, Sizing(3, 4, 1024, 512)),
        (2, 1024, Sizing(1, 1, 640, 320)),
    ],
)
def test_sizing_follows_cpus_and_the_open_files_limit(
    cpus: int, nofile: int, expected: Sizing
) -> None:
    sizing = Sizing.for_machine(cpus, nofile)
    assert sizing == expected
    # Unbound needs these descriptors per thread; they must fit the limit.
    assert sizing.threads * (sizing.outgoing_range + 256 + 64) + 64 <= nofile


def test_dead_address_bound() -> None:
    assert dead_address_bound() == pytest.approx(0.376 + 0.752 + 1.504 + 3.0)
    assert dead_address_bound(6000) == pytest.approx(0.376 + 0.752 + 1.504 + 3.008 + 6.0)
    assert dead_address_bound(300) == pytest.approx(0.3)


def test_client_schedule_arithmetic() -> None:
    assert total_wait(2.0, 2, 2.0) == 14.0
    assert total_wait(2.0, 3, 2.0) == 30.0
    assert last_send(2.0, 3, 2.0) == 14.0
    assert last_send(2.0, 0, 2.0) == 0.0


def test_the_scanner_outlasts_its_resolver() -> None:
    """The DNS client's defaults wait longer than the managed Unbound takes to
    give up on a zone with two dead name server addresses (RFC 2182 section 5),
    so a dead zone ends in SERVFAIL rather than a client timeout."""
    defaults = ResolverSettings()
    waits = total_wait(defaults.timeout, defaults.retries, defaults.backoff)
    assert waits > 2 * dead_address_bound()
