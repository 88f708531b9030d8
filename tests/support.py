"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from gzsb.demo import basic_info, demo_student

__all__ = ["basic_info", "demo_student", "student_payload"]


def student_payload(applicant: Applicant, **overrides: Any) -> dict[str, Any]:
    info = basic_info(demo_student(applicant.index), "NK01")
    info["category"] = getattr(applicant, "category", "普通")
    info.update(overrides)
    return info
