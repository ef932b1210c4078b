"""The MAIL/RCPT fast path gives exactly what aiosmtpd's parser gives, or steps aside."""

from __future__ import annotations

import random
from email._header_value_parser import get_angle_addr

import pytest

from phigate.mta.submission.fast_address import simple_angle_addr

_PARTS = ["a", "B9", "x+y", "o'k", "#", "..", ".", "", "\u00e9", '"q"', "(c)", " ", "-", "_",
          "{}", "|~", "[1.2.3.4]", "\\"]
_TAILS = ["", " SIZE=1", " ", " (c) X", "  BODY=8BITMIME SMTPUTF8", "\tX", " \x0bX", "x",
          " X\r\n", " X ", " =1", "  ", ' "a b"', ">"]


def _reference(arg: str) -> tuple[str, str] | str:
    try:
        address, rest = get_angle_addr(arg)
    except Exception as error:
        return type(error).__name__
    return address.addr_spec, rest


@pytest.mark.parametrize("arg", [
    "<a@b.c>", "<reminders@practice.test> SIZE=2048 BODY=8BITMIME",
    "<p.x+1@patients.example>  REQUIRETLS", "<A@B.C>", "<o'neil@x-y.example>",
])
def test_plain_addresses_take_the_fast_path_with_the_parsers_result(arg: str) -> None:
    assert simple_angle_addr(arg) is not None
    assert simple_angle_addr(arg) == _reference(arg)


@pytest.mark.parametrize("arg", [
    "<>", "<a..b@c>", "<.a@b>", "<a@b.>", '<"a b"@c>', "<a@[1.2.3.4]>", "<a(c)@b>",
    "<a@b> (comment) X", "<a@b>\tX", "<\u00e9@b>", "a@b", " <a@b>", "<a@b>x", "<a@b> X\r\n",
    "<@relay:a@b>",
])
def test_anything_else_is_left_to_aiosmtpd(arg: str) -> None:
    assert simple_angle_addr(arg) is None


def test_generated_addresses_agree_with_the_parser_whenever_the_fast_path_answers() -> None:
    chance = random.Random(16)
    answered = 0
    for _ in range(20000):
        local = "".join(chance.choice(_PARTS) for _ in range(chance.randint(1, 3)))
        domain = "".join(chance.choice(_PARTS) for _ in range(chance.randint(1, 3)))
        arg = f"<{local}@{domain}>{chance.choice(_TAILS)}"
        simple = simple_angle_addr(arg)
        if simple is not None:
            answered += 1
            assert simple == _reference(arg), arg
    assert answered > 500  # the comparison really exercised the fast path
