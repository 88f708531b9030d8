"""Masking of ID numbers and mobiles: helpers, free text and log lines."""

from __future__ import annotations

import logging

from gzsb.common.security import install_log_masking, mask_id_number, mask_mobile, mask_name, mask_text


def test_id_number_keeps_region_and_last_four() -> None:
    assert mask_id_number("120104200302020010") == "120104********0010"
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_id_number("123") == "***"


def test_mobile_keeps_three_and_four() -> None:
    assert mask_mobile("13700000001") == "137****0001"
    assert mask_mobile("+8613700000001") == "+86137****0001"
    assert mask_mobile("12345") == "*****"


def test_name_keeps_the_surname() -> None:
    assert mask_name("李浩然") == "李**"
    assert mask_name("李") == "李*"
    assert mask_name("") == ""


def test_mask_text_finds_numbers_in_free_text() -> None:
    text = "考生 120104200302020010 手机13700000001，另一个 11010519491231002x，国际 +8613912345678。"
    masked = mask_text(text)
    assert masked == "考生 120104********0010 手机137****0001，另一个 110105********002x，国际 +86139****5678。"
    for whole in ("120104200302020010", "13700000001", "11010519491231002", "13912345678"):
        assert whole not in masked


def test_mask_text_leaves_hashes_uids_and_short_numbers_alone() -> None:
    text = "uid ab120104200302020010cd seq 12 hash 9f13700000001e amount 16000 order 2026120100000001234"
    assert mask_text(text) == text


def test_log_lines_are_masked(caplog) -> None:
    install_log_masking()
    install_log_masking()  # idempotent: installing twice must not double-wrap
    logger = logging.getLogger("gzsb.test_security")
    with caplog.at_level(logging.INFO, logger="gzsb.test_security"):
        logger.info("login failed for %s from mobile %s", "120104200302020010", "13700000001")
    (record,) = caplog.records
    assert record.getMessage() == "login failed for 120104********0010 from mobile 137****0001"
    assert "120104200302020010" not in caplog.text and "13700000001" not in caplog.text
