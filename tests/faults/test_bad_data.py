"""Faults: data that is not what it claims. Folders of non-images, empty folders, archives with hostile
names, zip bombs, corrupt, encrypted and oversized members, files that are not zips, decompression bombs
and every image mode PIL reads."""

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


def _zip_of_faces(z, extra: str, size: int = 12) -> None:
    """Three good faces and one more (named extra, size × size pixels), deflated."""
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, img in enumerate(_faces(3)):
            zf.writestr(f"f{i}.png", _png(img))
        zf.writestr(extra, _png(_faces(1)[0].resize((size, size))))


def _patch_field(z, name: str, offset: int, value: int) -> None:
    """Overwrite a 2-byte field of member name's local header (at offset) and of its central-directory entry
    (the same field sits 2 bytes further on there): zipfile cannot write encrypted members or unknown methods."""
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        local = zf.getinfo(name).header_offset
    central = data.rindex(name.encode()) - 46  # the central directory, after all the data, names it last
    for at in (local + offset, central + offset + 2):
        data[at : at + 2] = value.to_bytes(2, "little")
    z.write_bytes(data)


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


def test_a_corrupt_member_is_skipped_and_counted_and_the_good_ones_load(tmp_path):
    z = tmp_path / "corrupt.zip"
    _zip_of_faces(z, "broken.png")
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("broken.png")
    data = bytearray(z.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # after the member's local header
    data[start : start + info.compress_size] = b"\xff" * info.compress_size  # not a deflate stream
    z.write_bytes(data)
    data = load_dataset(f"folder:{z}", 8)
    assert len(data.train) + len(data.test) == 3 and data.skipped == 1


def test_an_encrypted_member_is_skipped_and_counted(tmp_path):
    z = tmp_path / "secret.zip"
    _zip_of_faces(z, "secret.png")
    _patch_field(z, "secret.png", 6, 0x1)  # general-purpose flag bit 0: encrypted
    data = load_dataset(f"folder:{z}", 8)
    assert len(data.train) + len(data.test) == 3 and data.skipped == 1


def test_a_member_in_an_unsupported_compression_method_is_skipped_and_counted(tmp_path):
    z = tmp_path / "aes.zip"
    _zip_of_faces(z, "aes.png")
    _patch_field(z, "aes.png", 8, 99)  # compression method 99 (AES), which zipfile cannot read
    data = load_dataset(f"folder:{z}", 8)
    assert len(data.train) + len(data.test) == 3 and data.skipped == 1


def test_a_member_over_the_member_limit_is_skipped_and_counted_unread(tmp_path, monkeypatch):
    z = tmp_path / "big.zip"
    _zip_of_faces(z, "big.png", size=64)  # a good image of ~12 KiB; the faces are under 1 KiB
    monkeypatch.setenv("GENLAB_MAX_MEMBER_BYTES", "4096")
    opened, real_open = [], zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda zf, m, *a, **k: opened.append(m) or real_open(zf, m, *a, **k))
    data = load_dataset(f"folder:{z}", 8)
    assert len(data.train) + len(data.test) == 3 and data.skipped == 1
    assert "big.png" not in [getattr(m, "filename", m) for m in opened]


def test_a_file_that_is_not_a_zip_is_one_sentence_naming_it(tmp_path):
    z = tmp_path / "x.zip"
    z.write_text("not a zip")
    info = dataset_info(f"folder:{z}")
    assert not info.available and info.reason == f"Dataset 'folder:{z}': the file is not a readable .zip archive"
    with pytest.raises(DatasetUnavailable, match="the file is not a readable .zip archive"):
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
