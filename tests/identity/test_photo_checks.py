"""Photo checks before any comparison, on generated images that fail each one and on the
shipped photos (tests/fixtures/faces) that pass. The real HOG detector and dlib's 5-point
landmarks run here (no deepface, no face model)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gzsb.adapters.faces import DeepFaceMatcher, FaceSettings, Located, QualityRules
from gzsb.adapters.faces_quality import BAD_ASPECT, BLURRED, BUSY_BACKGROUND, TILTED, TURNED, laplacian_variance, pose
from gzsb.common.uploads import ImageProblem
from gzsb.config import ROOT, TestConfig
from gzsb.identity.service import ID_CARD, PHOTO, UploadLimits, check_image

FACES = ROOT / "tests" / "fixtures" / "faces"
LIMITS = UploadLimits.from_config({k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()})


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> DeepFaceMatcher:
    return DeepFaceMatcher(FaceSettings(home=str(tmp_path_factory.mktemp("home"))))


def obama() -> Image.Image:
    return Image.open(FACES / "obama.jpg").convert("RGB")  # 910×1137 (0.80), a plain wall behind


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def refused(detector: DeepFaceMatcher, data: bytes, kind: str) -> str:
    with pytest.raises(ImageProblem) as caught:
        check_image(data, kind, LIMITS, detector)
    return caught.value.chinese


def turned(image: Image.Image, squeeze: float = 0.5) -> Image.Image:
    """Foreshorten one half of the face (what a head turned sideways looks like in 2D): the
    columns between the face's left edge and its middle are squeezed, the rest stretched."""
    pixels = np.asarray(image)
    width = pixels.shape[1]
    left, middle = 366, 495  # the face box of obama.jpg
    squeezed = left + squeeze * (middle - left)
    x = np.arange(width, dtype=float)
    source = np.where(
        x < left,
        x,
        np.where(
            x < squeezed, left + (x - left) / squeeze, middle + (x - squeezed) * (width - middle) / (width - squeezed)
        ),
    )
    return Image.fromarray(pixels[:, np.clip(source.astype(int), 0, width - 1)])


def busy(image: Image.Image) -> Image.Image:
    """The face on a room-like background: high-contrast stripes and blocks around the head."""
    rng = np.random.default_rng(13)
    pixels = np.asarray(image).copy()
    noise = (rng.integers(0, 2, (pixels.shape[0] // 12 + 1, pixels.shape[1] // 12 + 1, 1)) * 220).astype(np.uint8)
    blocks = np.kron(noise, np.ones((12, 12, 3), dtype=np.uint8))[: pixels.shape[0], : pixels.shape[1]]
    keep = np.zeros(pixels.shape[:2], dtype=bool)
    keep[100:1137, 330:660] = True  # head and body stay
    pixels[~keep] = blocks[~keep]
    return Image.fromarray(pixels)


def test_each_check_fails_on_its_own_generated_image(detector: DeepFaceMatcher) -> None:
    assert refused(detector, jpeg(obama().filter(ImageFilter.GaussianBlur(3))), PHOTO) == BLURRED[1]
    assert refused(detector, jpeg(obama().resize((140, 175))), PHOTO) == "人脸过小，请靠近拍摄或裁剪后重新上传"
    assert refused(detector, jpeg(turned(obama())), PHOTO) == TURNED[1]
    assert refused(detector, jpeg(obama().rotate(25, expand=False, fillcolor=(230, 230, 230))), ID_CARD) == TILTED[1]
    assert refused(detector, jpeg(obama().crop((0, 0, 910, 1000))), PHOTO) == BAD_ASPECT[1]  # 0.91: nearly square
    assert refused(detector, jpeg(obama().crop((200, 0, 760, 1137))), PHOTO) == BAD_ASPECT[1]  # 0.49: too narrow
    assert refused(detector, jpeg(busy(obama())), PHOTO) == BUSY_BACKGROUND[1]
    # The same busy image is fine as an ID card (its background is the card) ...
    assert check_image(jpeg(busy(obama())), ID_CARD, LIMITS, detector).width == 910
    # ... and every generated image that failed had a clean original.
    assert check_image(jpeg(obama()), PHOTO, LIMITS, detector).width == 910


@pytest.mark.parametrize(
    "name", ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_small.jpg", "biden2.jpg"]
)
def test_the_shipped_photos_pass_as_id_card(detector: DeepFaceMatcher, name: str) -> None:
    assert check_image((FACES / name).read_bytes(), ID_CARD, LIMITS, detector).width > 0


def test_the_shipped_portrait_photo_passes_as_id_photo_and_the_others_say_why(detector: DeepFaceMatcher) -> None:
    assert check_image((FACES / "obama.jpg").read_bytes(), PHOTO, LIMITS, detector).height == 1137
    # obama3 (0.61) is a full-length shot cropped to a 3:4-ish frame: it passes too.
    assert check_image((FACES / "obama3.jpg").read_bytes(), PHOTO, LIMITS, detector).height == 2333
    # Not ID photos: obama2 (0.52) and biden (0.44) are far narrower than 3:4.
    for name in ("obama2.jpg", "biden.jpg"):
        assert refused(detector, (FACES / name).read_bytes(), PHOTO) == BAD_ASPECT[1], name


def test_the_measures_themselves() -> None:
    flat = np.full((50, 50), 128.0)
    assert laplacian_variance(flat) == 0.0
    checker = np.indices((50, 50)).sum(axis=0) % 2 * 255.0
    assert laplacian_variance(checker) > 1000
    # Eyes level, nose in the middle: frontal; nose a third of the eye distance aside: turned.
    eyes = [(10, 50), (30, 50), (90, 50), (70, 50)]
    assert pose([*eyes, (50, 80)]) == (0.0, 0.0)
    yaw, roll = pose([*eyes, (70, 80)])
    assert yaw == pytest.approx(1 / 3) and roll == 0.0
    _, roll = pose([(10, 50), (30, 55), (90, 70), (70, 65), (50, 80)])
    assert roll == pytest.approx(14.04, abs=0.01)


def test_config_rules_are_used(detector: DeepFaceMatcher, tmp_path: Path) -> None:
    strict = UploadLimits(LIMITS.max_bytes, LIMITS.max_pixels, LIMITS.min_face, QualityRules(min_sharpness=1e6))
    with pytest.raises(ImageProblem) as caught:
        check_image(jpeg(obama()), PHOTO, strict, detector)
    assert caught.value.chinese == BLURRED[1]


def test_a_passing_photo_carries_its_face_for_the_match(detector: DeepFaceMatcher) -> None:
    """What the check found is kept with the image (and so on the upload's row): the match
    cuts its chip from it, with the same distance as detecting again."""
    photo = check_image((FACES / "obama.jpg").read_bytes(), PHOTO, LIMITS, detector)
    card = check_image(jpeg(obama()), ID_CARD, LIMITS, detector)
    assert photo.face is not None and card.face is not None
    located = {PHOTO: Located.from_dict(photo.face), ID_CARD: Located.from_dict(card.face)}
    left, top, right, bottom = located[PHOTO].box
    assert right > left and bottom > top and len(located[PHOTO].points) == 5
    again = detector.verify(photo.data, card.data)
    reused = detector.verify(photo.data, card.data, located=located)
    assert reused.distance == pytest.approx(again.distance, abs=1e-9)
