"""Datasets: shapes, dtypes, ranges, split determinism, offline errors, folders with bad files."""

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data import DatasetUnavailable, _split, dataset_info, list_datasets, load_dataset
from genlab.paths import safe_name


def _check(d, channels, size, n_train=None, n_test=None):
    for split in (d.train, d.test):
        assert split.dtype == torch.uint8 and split.dim() == 4
        assert split.shape[1:] == (channels, size, size)
    assert d.train.max() == 255 and d.train.min() == 0
    if n_train is not None:
        assert (len(d.train), len(d.test)) == (n_train, n_test)


def test_emoji_is_offline_colour_and_split_deterministically(tmp_path, monkeypatch):
    d = load_dataset("emoji", 32)
    _check(d, 3, 32, 3608, 401)
    assert "CC-BY 4.0" in d.credit
    # the same split again from scratch (no cache): identical tensors
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    d2 = load_dataset("emoji", 32)
    assert torch.equal(d.train, d2.train) and torch.equal(d.test, d2.test)
    # composited onto white: the corners of most emoji are white
    assert (d.train[:, :, 0, 0] == 255).all(1).float().mean() > 0.5


def test_emoji_faces_are_the_round_smileys_only():
    import unicodedata

    from genlab.data import _emoji_files, _is_smiley

    faces = [f for f in _emoji_files() if _is_smiley(f)]
    names = {unicodedata.name(chr(int(f.stem, 16))) for f in faces}
    assert len(faces) == 109
    assert {
        "GRINNING FACE",
        "WHITE SMILING FACE",
        "FACE WITH TEARS OF JOY",
        "SMILING CAT FACE WITH OPEN MOUTH",
    } <= names
    # not animals, clocks, moons, robots or people, and no skin-tone or ZWJ sequences
    assert not names & {"DOG FACE", "CLOCK FACE ONE OCLOCK", "NEW MOON WITH FACE", "ROBOT FACE", "FACE PALM"}
    assert all("-" not in f.stem for f in faces)
    d = load_dataset("emoji-faces", 32)
    _check(d, 3, 32, 98, 11)
    # yellow: in the middle of a smiley, red and green are high and blue is low
    centre = d.train[:, :, 12:20, 12:20].float().mean((0, 2, 3))
    assert centre[0] > 180 and centre[1] > 140 and centre[2] < 120, centre


def test_split_is_a_seeded_partition():
    tr, te = _split(1000)
    assert len(te) == 100 and len(np.intersect1d(tr, te)) == 0 and len(np.union1d(tr, te)) == 1000
    tr2, te2 = _split(1000)
    assert (te == te2).all()
    assert not (te == _split(1000, seed=1)[1]).all()


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets(name):
    if not dataset_info(name).source.startswith("local"):
        pytest.skip(f"{name}'s offline files are not installed here (CI installs them)")
    d = load_dataset(name, 32)
    _check(d, 1, 32, 60000, 10000)
    assert (d.train[:, :, :2, :] == 0).all()  # the 28×28 digits are zero-padded to 32×32
    d64 = load_dataset(name, 64)
    _check(d64, 1, 64, 60000, 10000)


@pytest.mark.parametrize("name", ["cifar10", "celeba"])
def test_download_only_datasets_fail_offline_with_one_clear_sentence(name):
    info = dataset_info(name)
    assert not info.available and "offline" in info.reason
    with pytest.raises(DatasetUnavailable) as e:
        load_dataset(name, 32)
    msg = str(e.value)
    assert f"'{name}'" in msg and "internet" in msg and "\n" not in msg


def test_unknown_dataset():
    with pytest.raises(DatasetUnavailable, match="unknown dataset 'imagenet'.*emoji"):
        load_dataset("imagenet", 32)


def test_list_datasets_names_every_dataset():
    assert [i.name for i in list_datasets()] == ["emoji", "emoji-faces", "mnist", "fashion-mnist", "cifar10", "celeba"]


def _write_images(folder: Path, n: int):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)  # non-square: centre-cropped
        Image.fromarray(arr).save(folder / f"img{i}.png")
    (folder / "sub").mkdir(exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / "sub" / "gray.jpg")


def test_folder_with_corrupt_images_skips_and_counts_them(tmp_path):
    _write_images(tmp_path / "imgs", 9)
    (tmp_path / "imgs" / "not_an_image.png").write_text("hello")
    good = (tmp_path / "imgs" / "img0.png").read_bytes()
    (tmp_path / "imgs" / "sub" / "truncated.png").write_bytes(good[:60])
    (tmp_path / "imgs" / "notes.txt").write_text("ignored: not an image extension")
    d = load_dataset(f"folder:{tmp_path / 'imgs'}", 16)
    assert d.skipped == 2
    assert len(d.train) + len(d.test) == 10 and len(d.test) == 1
    assert d.train.shape[1:] == (3, 16, 16) and d.train.dtype == torch.uint8
    assert dataset_info(f"folder:{tmp_path / 'imgs'}").count == 12


def test_zip_of_images(tmp_path):
    _write_images(tmp_path / "imgs", 4)
    zpath = tmp_path / "imgs.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in (tmp_path / "imgs").rglob("*.*"):
            z.write(p, p.relative_to(tmp_path))
        z.writestr("imgs/broken.jpg", b"\xff\xd8 not really")
    d = load_dataset(f"folder:{zpath}", 8)
    assert len(d.train) + len(d.test) == 5 and d.skipped == 1


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DatasetUnavailable, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'nope'}", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="0 readable images"):
        load_dataset(f"folder:{tmp_path / 'empty'}", 32)


def test_cache_survives_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path))
    d = load_dataset("emoji", 16)
    cache = tmp_path / "datasets" / "emoji-16.npz"
    assert cache.is_file()
    cache.write_bytes(b"garbage")
    assert torch.equal(load_dataset("emoji", 16).train, d.train)


def test_safe_name_removes_traversal():
    for bad in ["../../etc/passwd", "folder:/tmp/../x", "a/b\\c", "..", "x" * 500]:
        s = safe_name(bad) if bad != ".." else None
        if s is None:
            with pytest.raises(ValueError):
                safe_name(bad)
            continue
        assert "/" not in s and "\\" not in s and ".." not in s and len(s) <= 120
        assert os.path.basename(s) == s
