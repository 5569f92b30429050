"""Signed download URLs (storage/signing.py): a good URL verifies, and whatever a
client puts in `expires` and `signature` is an answer, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actions_server.storage.signing import signature, signed_path, verify

SECRET = b"s3cr3t"
NOW = 1_800_000_000.0


def test_a_signed_path_verifies_until_it_expires() -> None:
    path = signed_path(SECRET, "docs/a b.txt", 60, now=NOW)
    query = dict(part.split("=") for part in path.split("?")[1].split("&"))
    assert verify(SECRET, "docs/a b.txt", query["expires"], query["signature"], now=NOW) is None
    assert verify(SECRET, "docs/other", query["expires"], query["signature"], now=NOW)
    late = verify(SECRET, "docs/a b.txt", query["expires"], query["signature"], now=NOW + 61)
    assert late == "the URL has expired"


@given(expires=st.text(), given_signature=st.text())
def test_any_parameters_are_an_answer(expires: str, given_signature: str) -> None:
    verdict = verify(SECRET, "docs/a.txt", expires, given_signature, now=NOW)
    assert verdict is None or isinstance(verdict, str)


@given(expires=st.text(st.characters(categories=["Nd", "No"]), min_size=1))
def test_digits_that_are_not_ascii_are_no_expiry(expires: str) -> None:
    good = signature(SECRET, "k", 1_900_000_000)
    if not expires.isascii():
        assert verify(SECRET, "k", expires, good, now=NOW) == "the URL's expiry is not a time"


def test_a_huge_expiry_is_refused_before_int_reads_it() -> None:
    assert verify(SECRET, "k", "9" * 5000, "0" * 64) == "the URL's expiry is not a time"
    assert verify(SECRET, "k", "1900000000", "\u00e9" * 64) == "the URL's signature is wrong"
