"""``fedshield verify`` on crafted input: one line and exit 2 ("cannot read this input").

Exit 1 means "read, and found tampered"; exit 2 means the verifier refused to read the input,
within bounded memory, without a traceback. Before, each of these inputs raised a traceback and
a 200 MB line took 836 MB of memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedshield.cli import main
from server.integrity.ledger import LEDGER_FILE, MAX_LINE_BYTES, checkpoint_name
from server.integrity.ledger_verify import verify_run
from tests.integrity._runs import SERVER, write_run


def _verify(capsys: pytest.CaptureFixture[str], run_dir: Path) -> tuple[int, list[str]]:
    code = main(["verify", str(run_dir)])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.splitlines()


def _replace_line(run_dir: Path, index: int, line: bytes) -> None:
    path = run_dir / LEDGER_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = line + b"\n"
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[" * 100_000, "JSON nested deeper than the parser allows"),
        (b'{"round":' + b"9" * 5_000 + b"}", "a number with 5000 digits"),
        (b"x" * (MAX_LINE_BYTES + 1), f"line longer than {MAX_LINE_BYTES} B"),
    ],
    ids=["100000_deep", "5000_digits", "line_over_the_cap"],
)
def test_a_crafted_ledger_line_cannot_be_read(
    line: bytes, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path)
    _replace_line(tmp_path, 1, line)
    assert _verify(capsys, tmp_path) == (2, [f"error: cannot read this input: round 1: {reason}"])


def test_the_line_cap_is_a_parameter_and_reads_no_more(tmp_path: Path) -> None:
    write_run(tmp_path)
    _replace_line(tmp_path, 2, b"y" * 100_000)
    report = verify_run(tmp_path, SERVER.public_key, max_line_bytes=4096)
    assert (report.status, report.reason) == ("unreadable", "round 2: line longer than 4096 B")


def test_a_corrupt_checkpoint_signed_by_the_key_holder_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seed-derived keys: anyone with the seed can sign a ledger whose checkpoints are garbage.
    monkeypatch.setattr(
        "server.integrity.ledger.save_checkpoint",
        lambda path, arrays: path.write_bytes(b"PK\x03\x04 not a zip at all"),
    )
    (tmp_path / "checkpoints").mkdir()
    write_run(tmp_path)
    code, err = _verify(capsys, tmp_path)
    assert code == 2
    assert err == [
        f"error: cannot read this input: round 0: {tmp_path / checkpoint_name(0)}: "
        "not a readable checkpoint (File is not a zip file)"
    ]


def test_a_compressed_checkpoint_member_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # savez never compresses; a compressed member is how a zip bomb would get in.
    monkeypatch.setattr(
        "server.integrity.ledger.save_checkpoint",
        lambda path, arrays: np.savez_compressed(path, *arrays),
    )
    (tmp_path / "checkpoints").mkdir()
    write_run(tmp_path)
    code, err = _verify(capsys, tmp_path)
    assert code == 2
    assert err == [
        f"error: cannot read this input: round 0: {tmp_path / checkpoint_name(0)}: member "
        "'arr_0.npy' is compressed or larger than the file"
    ]


def test_a_crafted_summary_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path)
    (tmp_path / "summary.json").write_text('{"integrity": ' + "[" * 100_000)
    assert _verify(capsys, tmp_path) == (
        2,
        ["error: cannot read this input: JSON nested deeper than the parser allows"],
    )


def test_a_missing_run_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _verify(capsys, tmp_path / "nowhere")
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: cannot read this input: ")


def test_a_missing_or_malformed_server_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path / "run")
    missing = tmp_path / "nope.pub"
    assert main(["verify", str(tmp_path / "run"), "--server-key", str(missing)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {missing}: no such key file"]
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key")
    assert main(["verify", str(tmp_path / "run"), "--server-key", str(garbage)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {garbage}: not a PEM public key"]
