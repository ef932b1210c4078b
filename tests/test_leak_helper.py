"""The leak finder the PHI tests rely on (tests/helpers/leaks.py) finds real leaks and
ignores chance matches in a message's machine-made parts."""

from __future__ import annotations

from helpers.leaks import leaks

SIGNED = (b"DKIM-Signature: v=1; a=rsa-sha256; d=practice.test; s=s1;\r\n"
          b" bh=xHIVq4417=; b=aBiopsy+4417/HIVz\r\n"
          b"\tmore4417HIV==\r\n")
MESSAGE = (b"From: ehr@practice.test\r\nMessage-ID: <179627638074.1469.1844174417990@h>\r\n"
           b"Content-Type: multipart/mixed; boundary=\"===============644174417==\"\r\n\r\n"
           b"Your results are ready.\r\n")
SECRETS = ("HIV", "4417", "Biopsy", "EHR <", "Testpatient-biopsy-4417.pdf")


def test_chance_matches_in_the_signature_and_random_numbers_are_not_leaks() -> None:
    assert leaks(SIGNED + MESSAGE, SECRETS) == []


def test_a_secret_as_the_sender_wrote_it_is_found_anywhere_outside_the_signature() -> None:
    for written, found in ((b"Subject: HIV-positive\r\n", ["HIV"]),
                           (b"X-File: Testpatient-biopsy-4417.pdf\r\n",
                            ["4417", "Testpatient-biopsy-4417.pdf"]),
                           (b"To: Practice EHR <ehr@practice.test>\r\n", ["EHR <"]),
                           (b"Subject: (4417)\r\n", ["4417"])):
        assert leaks(SIGNED + written + MESSAGE, SECRETS) == found, written
    # A field after the signature is searched; a line folded under it is part of it.
    assert leaks(SIGNED + b"Subject: HIV\r\n" + MESSAGE, SECRETS) == ["HIV"]
    assert leaks(b"DKIM-Signature: b=x\r\n Subject: HIV\r\n" + MESSAGE, SECRETS) == []


def test_the_body_is_searched_too() -> None:
    assert leaks(SIGNED + MESSAGE + b"Biopsy: carcinoma\r\n", SECRETS) == ["Biopsy"]
    # Only the message's own signature is left out, not a line in its body that looks
    # like one (a returned header block, say).
    assert leaks(SIGNED + MESSAGE + b"DKIM-Signature: HIV\r\n", SECRETS) == ["HIV"]
