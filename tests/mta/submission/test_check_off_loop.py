"""DATA's checks off the event loop: the result, or None when the bound is exceeded."""

from __future__ import annotations

import asyncio

from phigate.accounts.store import Account
from phigate.mta.submission.data_checks import CheckedData, check_data_off_loop

_ACCOUNT = Account("clinic", ("practice.test",), ("treatment", "operations"))
_MESSAGE = (b"From: Clinic <reminders@practice.test>\r\nTo: p@patients.example\r\n"
            b"Subject: Reminder\r\n\r\nSee you on Monday.\r\n")


def test_the_checked_message_comes_back_from_the_worker_thread() -> None:
    checked = asyncio.run(check_data_off_loop(_MESSAGE, _ACCOUNT))
    assert isinstance(checked, CheckedData)
    assert checked.header.get("subject") == "Reminder"


def test_a_check_past_its_bound_gives_none_not_a_result() -> None:
    assert asyncio.run(check_data_off_loop(_MESSAGE, _ACCOUNT, seconds=0)) is None
