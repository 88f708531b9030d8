"""Staff see each submitted material by the name of its document, beside the 证件照."""

from __future__ import annotations

import re

from gzsb.extensions import db
from gzsb.models import Application
from tests.review_support import make_staff, material_files, to_materials_pending
from tests.staff.test_views import staff_client

CAPTION = re.compile(r'<span class="caption"><strong>([^<]+)</strong>')


def test_staff_see_the_documents_by_name_beside_the_id_photo(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵", in_registry=False)
    to_materials_pending(eng, who)
    files = material_files(who.application_id)
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": files})
    uid = db.session.get(Application, who.application_id).uid

    page = staff_client(app, make_staff()).get(f"/staff/applications/{uid}").get_data(as_text=True)
    # The flow's order: the category's document, then what a missing 学籍 record needs.
    assert CAPTION.findall(page) == ["证件照", "退役证", "学历认证报告", "毕业证书"]
    assert "材料1" not in page
    assert "《教育部学历证书电子注册备案表》" in page  # the hint tells staff what to look for
    for upload in files:
        assert f"/uploads/{upload}" in page
