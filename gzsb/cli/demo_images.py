"""Demo images: drawn placeholder photos and the demo applicants' stored uploads."""

from __future__ import annotations

import io
import logging
import random
from datetime import datetime

from flask import current_app
from PIL import Image, ImageDraw

from gzsb.appeals import files as appeal_files
from gzsb.appeals import service as appeals
from gzsb.bootstrap import storage, vault
from gzsb.common.uploads import accept_image, store_image
from gzsb.config import ROOT
from gzsb.extensions import db
from gzsb.models import Application

log = logging.getLogger(__name__)

DEMO_FACES = ROOT / "data" / "demo_faces"


def document_png(seed: int, size: tuple[int, int] = (480, 320)) -> bytes:
    """A drawn placeholder certificate photo (上传审核 demo material): a card on a desk."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, (rng.randint(150, 190),) * 3)
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 30, width - 30, height - 30), fill=(178, 34, 34))
    draw.rectangle((60, 70, 170, 220), fill=(240, 230, 200))
    for row in range(6):
        y = 80 + row * 26
        draw.rectangle((200, y, width - 70 - rng.randint(0, 80), y + 10), fill=(250, 215, 120))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def demo_material(app: Application, seed: int, slot: str = "") -> str:
    """Store a drawn material photo as the application's upload into a document ``slot``;
    its uid (上传审核 demo)."""
    image = accept_image(document_png(app.id * 100 + seed), max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
    upload = store_image(
        db.session, storage(), application_id=app.id, application_uid=app.uid, kind="material", image=image
    )
    upload.slot = slot
    return upload.uid


def demo_identity_images(app: Application) -> dict[str, str]:
    """Store the demo 证件照 and ID-card photo (one real person, data/demo_faces/) as the
    application's uploads, so a running worker really matches them and staff see them."""
    uids = {}
    for kind in ("photo", "id_card"):
        image = accept_image((DEMO_FACES / f"{kind}.jpg").read_bytes(), max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
        upload = store_image(
            db.session, storage(), application_id=app.id, application_uid=app.uid, kind=kind, image=image
        )
        uids[kind] = upload.uid
    return uids


def portrait_png(seed: int, size: tuple[int, int] = (240, 320)) -> bytes:
    """A drawn placeholder ID photo (no real face): plain background, shoulders, head, hair."""
    rng = random.Random(seed)
    width, height = size
    background = rng.choice([(219, 233, 248), (236, 240, 244), (200, 222, 245), (245, 245, 245)])
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    skin = rng.choice([(241, 205, 178), (232, 190, 160), (224, 180, 150), (247, 214, 190)])
    hair = rng.choice([(30, 25, 25), (45, 35, 30), (60, 45, 35)])
    cloth = rng.choice([(30, 50, 90), (40, 40, 45), (90, 30, 40), (240, 240, 240)])
    cx = width // 2
    draw.ellipse((cx - 110, height - 110, cx + 110, height + 120), fill=cloth)  # shoulders
    draw.rectangle((cx - 22, height - 150, cx + 22, height - 95), fill=skin)  # neck
    head = (cx - 62, 70, cx + 62, 230)
    draw.ellipse((head[0] - 6, head[1] - 14, head[2] + 6, head[1] + 110), fill=hair)  # hair
    draw.ellipse(head, fill=skin)
    fringe = rng.randint(95, 115)
    draw.chord((head[0] - 4, head[1] - 12, head[2] + 4, fringe + 40), 180, 360, fill=hair)
    for dx in (-26, 26):  # eyes, brows
        draw.ellipse((cx + dx - 7, 145, cx + dx + 7, 155), fill=(40, 30, 30))
        draw.line((cx + dx - 12, 133, cx + dx + 12, 131), fill=hair, width=4)
    draw.line((cx, 160, cx - 5, 185), fill=(200, 150, 130), width=2)  # nose
    draw.arc((cx - 20, 188, cx + 20, 208), 20, 160, fill=(170, 80, 80), width=3)  # mouth
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def demo_appeal(name: str, id_number: str, mobile: str, at: datetime) -> str:
    """A pending 账号申诉 by the real owner of ``id_number`` (drawn card images); its number."""
    settings = appeals.Settings.from_config(current_app.config)
    case = appeals.open_draft(db.session, vault(), name=name, id_number=id_number, mobile=mobile, now=at)
    for seed, kind in enumerate(appeals.KINDS):
        image = accept_image(document_png(seed), max_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
        appeal_files.attach(db.session, storage(), vault(), case, kind, image, at, settings)
    appeals.submit(db.session, case, set(appeal_files.live_files(db.session, case)), at, settings)
    db.session.commit()
    return case.number
