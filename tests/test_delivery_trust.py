"""The send path under hostile but ordinary input: each test is one way a send used to break the
promise "each subscriber gets exactly one copy, and secrets are never printed"."""

from __future__ import annotations

from pathlib import Path

import pytest
from deliverykit import addresses, newsletter, smtp_toml
from smtpserver import RecordingHandler, SMTPServer

from digest.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``digest ARGS`` in this process; (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 1), out, err


# --- 1: a test send can never become a real send --------------------------------------------------


@pytest.mark.parametrize("to", ["", "  ", "not an address"])
def test_empty_or_invalid_to_is_a_usage_error_and_sends_nothing(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str], to: str
) -> None:
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=addresses(5), now=fixed_now
        )
        code, _out, err = run_cli(capsys, "--config", str(cfg), "send", "--to", to, "--as-of", "2025-08-11T09:00")
    assert code == 2
    assert err.startswith("digest: error: --to") and err.count("\n") == 1
    assert handler.received == []
    assert store.issues.get(slot.key) is None  # the ledger was not touched
