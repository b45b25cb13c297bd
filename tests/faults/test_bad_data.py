"""Faults: data that is not what it claims. Folders of non-images, empty folders, archives with hostile
names, zip bombs, decompression bombs and every image mode PIL reads."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from genlab.cli import main
from genlab.data import DatasetUnavailable, dataset_info, load_dataset

pytestmark = pytest.mark.fault


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _faces(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)) for _ in range(n)]


def test_a_folder_of_non_images_and_an_empty_folder_are_one_sentence(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_text("not a png")
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="has 0 readable images \\(1 unreadable skipped\\)"):
        load_dataset(f"folder:{tmp_path / 'junk'}", 8)
    assert not dataset_info(f"folder:{tmp_path / 'empty'}").available
    assert main(["train", "vae", "--dataset", f"folder:{tmp_path / 'empty'}", "--out", str(tmp_path / "r")]) != 0
    assert "no image files found" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["fid", str(tmp_path / "empty"), str(tmp_path / "junk")]) == 2
    assert "holds no readable images" in capsys.readouterr().err


def test_a_zip_with_traversal_names_is_read_and_writes_nothing(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i, img in enumerate(_faces(4)):
            zf.writestr(["../escape.png", "/abs/root.png", "../../deep/x.png", f"ok{i}.png"][i], _png(img))
    before = set(tmp_path.parent.rglob("*"))
    data = load_dataset(f"folder:{z}", 8)
    assert len(data.train) + len(data.test) == 4
    assert set(tmp_path.parent.rglob("*")) == before  # members are read in memory, never extracted


def test_a_zip_bomb_is_refused_by_its_declared_size_and_count(tmp_path, monkeypatch):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.png", b"\0" * (20 * 2**20))  # 20 MiB of zeros: ~20 KiB compressed
        for i, img in enumerate(_faces(3)):
            zf.writestr(f"f{i}.png", _png(img))
    assert z.stat().st_size < 2**20
    monkeypatch.setenv("GENLAB_MAX_ARCHIVE_BYTES", str(8 * 2**20))
    info = dataset_info(f"folder:{z}")
    assert not info.available and "over the limits" in info.reason and "GENLAB_MAX_ARCHIVE_BYTES" in info.reason
    monkeypatch.setenv("GENLAB_MAX_ARCHIVE_BYTES", str(2**30))
    monkeypatch.setenv("GENLAB_MAX_ARCHIVE_FILES", "2")
    with pytest.raises(DatasetUnavailable, match="holds 4 files"):
        load_dataset(f"folder:{z}", 8)


def test_a_decompression_bomb_is_skipped_from_its_header_without_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(_faces(3)):
        img.save(folder / f"ok{i}.png")
    Image.new("1", (3000, 3000)).save(folder / "bomb.png")  # 9 Mpixel, a few KiB on disk
    monkeypatch.setenv("GENLAB_MAX_IMAGE_PIXELS", "1000000")
    data = load_dataset(f"folder:{folder}", 8)
    assert len(data.train) + len(data.test) == 3 and data.skipped == 1


def test_every_image_mode_reads_as_rgb_with_its_values(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # 0..240 across
    Image.fromarray(grey).save(folder / "a-L.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "b-I16.png")  # 16-bit grey, same picture
    Image.fromarray(grey).convert("P").save(folder / "c-P.png")
    Image.fromarray(grey).convert("RGBA").save(folder / "d-RGBA.png")
    Image.fromarray(grey).convert("LA").save(folder / "e-LA.png")
    Image.fromarray(grey).convert("1").save(folder / "f-1.png")
    Image.fromarray(grey).convert("CMYK").save(folder / "g-CMYK.jpg")
    data = load_dataset(f"folder:{folder}", 16)
    images = np.concatenate([data.train.numpy(), data.test.numpy()])
    assert images.shape == (7, 3, 16, 16) and data.skipped == 0
    # every mode but the 1-bit one keeps the gradient (the JPEG within its compression error)
    close = [np.abs(im[0, 0].astype(int) - grey[0]).max() <= 12 for im in images]
    assert sum(close) == 6, close
