"""`scan verify`: the offline check, its JSON, its exit codes; and the command dispatch."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from scanner.cli import main
from testbed.pki import KeyType, Pki

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pki = Pki(seed=1, now=NOW)
    root = pki.ca("Root", KeyType.ECDSA)
    leaf = pki.leaf(["mx.example.com"], root, KeyType.ECDSA, key_label="mx")
    folder = tmp_path_factory.mktemp("verify")
    chain = folder / "chain.pem"
    root_pem = root.cert.public_bytes(Encoding.PEM)
    chain.write_bytes(b"subject=mx\n" + leaf.cert.public_bytes(Encoding.PEM) + root_pem)
    ca = folder / "ca.pem"
    ca.write_bytes(root_pem)
    (folder / "empty.pem").write_text("no certificates here\n")
    spki = leaf.spki_der
    root_spki = root.spki_der
    return {
        "chain": str(chain),
        "ca": str(ca),
        "empty": str(folder / "empty.pem"),
        "ee": "3 1 1 " + hashlib.sha256(spki).hexdigest(),
        "ta": "2 1 1 " + hashlib.sha256(root_spki).hexdigest(),
        "pkix": "1 1 1 " + hashlib.sha256(spki).hexdigest(),
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], *argv: str
) -> tuple[int, dict[str, object]]:
    code, out, _ = _run(
        capsys,
        "verify",
        "--chain",
        files["chain"],
        "--json",
        "--now",
        "2025-06-01T00:00:00Z",
        *argv,
    )
    return code, json.loads(out)


def test_pass_json(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out = _json(capsys, files, "--tlsa", files["ee"], "--name", "mx.example.com")
    assert code == 0
    assert out["verdict"] == "pass"
    assert out["match_depth"] == 0
    assert out["matched"] == files["ee"].upper()
    assert isinstance(out["reason"], str)
    assert out["reason"]


def test_dane_ta_and_names(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out = _json(capsys, files, "--tlsa", files["ta"], "--name", "mx.example.com")
    assert (code, out["verdict"], out["match_depth"]) == (0, "pass", 1)
    code, out = _json(
        capsys, files, "--tlsa", files["ta"], "--name", "other.example", "--name", "x.test"
    )
    assert (code, out["verdict"], out["match_depth"]) == (1, "fail_ta_name", 1)
    code, out = _json(
        capsys, files, "--tlsa", files["ee"], "--name", "other.example", "--ee-name-checks"
    )
    assert (code, out["verdict"]) == (1, "fail_ta_name")


def test_failures_exit_1(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out = _json(capsys, files, "--tlsa", "3 1 1 " + "00" * 32, "--name", "mx.example.com")
    assert (code, out["verdict"], out["match_depth"], out["matched"]) == (
        1,
        "fail_no_match",
        -1,
        None,
    )
    code, out = _json(capsys, files, "--tlsa", "3 1 1 00", "--name", "mx.example.com")
    assert (code, out["verdict"]) == (1, "unusable")
    assert out["unusable"] == [
        {"record": "3 1 1 00", "problem": "SHA2-256(1) data must be 32 bytes, got 1"}
    ]
    code, out = _json(
        capsys, files, "--tlsa", files["ta"], "--name", "mx.example.com", "--now", "2030-01-01"
    )
    assert (code, out["verdict"]) == (1, "fail_ta_expired")


def test_pkix_with_ca_file(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out = _json(
        capsys, files, "--tlsa", files["pkix"], "--name", "mx.example.com", "--ca-file", files["ca"]
    )
    assert (code, out["verdict"]) == (1, "unusable")
    pkix = out["pkix"]
    assert isinstance(pkix, dict)
    assert (pkix["verdict"], pkix["openssl_code"], pkix["match_depth"]) == ("pass", 0, 0)


def test_text_output(capsys: pytest.CaptureFixture[str], files: dict[str, str]) -> None:
    code, out, _ = _run(
        capsys,
        "verify",
        "--chain",
        files["chain"],
        "--tlsa",
        files["ee"],
        "--name",
        "mx.example.com",
    )
    assert code == 0
    assert out.startswith("verdict: pass\n")
    assert "matched: 3 1 1" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tlsa", "3 1 1 zz"], "bad --tlsa '3 1 1 zz': data is not hexadecimal"),
        (["--tlsa", "3 1"], "bad --tlsa"),
        (["--now", "yesterday"], "bad --now"),
    ],
)
def test_bad_input_exit_2(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], args: list[str], message: str
) -> None:
    base = ["verify", "--chain", files["chain"], "--name", "mx.example.com", "--tlsa", files["ee"]]
    code, out, err = _run(capsys, *base, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("chain", ["empty", "missing"])
def test_unreadable_pem_exit_2(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], chain: str
) -> None:
    path = files.get(chain, "/nonexistent/chain.pem")
    code, _, err = _run(capsys, "verify", "--chain", path, "--tlsa", files["ee"], "--name", "x")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert path in err


def test_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    assert "verify" in out
    # Anything that is not a command is the input of the main form, which needs -o.
    code, _, err = _run(capsys, "frobnicate")
    assert code == 2
    assert "-o/--output" in err
    assert _run(capsys)[0] == 2
    code, out, _ = _run(capsys, "verify", "--help")
    assert code == 0
    assert "--tlsa" in out
    assert _run(capsys, "verify", "--name", "x")[0] == 2  # argparse: missing --chain
