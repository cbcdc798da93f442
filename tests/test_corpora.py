"""The benchmark files are the ones the README's numbers were measured on."""

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_shared_corpora_match_recorded_hashes(corpora_dir):
    for line in (ROOT / "corpora" / "corpora.sha256").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((corpora_dir / name).read_bytes()).hexdigest() == digest, name
