"""File names from a ticket made into names SIR takes: 1-255 characters of [a-zA-Z0-9._-]."""

from __future__ import annotations

import re

import pytest

from connectors.engine.attachments import sir_file_name

SIR_NAME = re.compile(r"[a-zA-Z0-9._-]{1,255}")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("access.log", "access.log"),
        ("rapport d'incident été.pdf", "rapport_d_incident_ete.pdf"),
        ("Ünïcödé → résumé.tar.gz", "Unicode___resume.tar.gz"),
        ("no extension", "no_extension"),
        ("日本語.txt", "___.txt"),
        ("", "attachment"),
        (".env", "attachment.env"),
        ("a/b\\c:d.txt", "a_b_c_d.txt"),
    ],
)
def test_a_name_is_made_to_fit_keeping_its_extension(name: str, expected: str) -> None:
    assert sir_file_name(name) == expected
    assert SIR_NAME.fullmatch(sir_file_name(name))


def test_a_long_name_is_cut_before_its_extension() -> None:
    made = sir_file_name("x" * 300 + ".pcap")
    assert len(made) == 255 and made.endswith("x.pcap")
