import csv
import os
import time

import numpy as np
import pytest
from conftest import copy_split

from ferlite.data import AugmentConfig, DataError, make_dataset, prepare_ferplus, read_ferplus_folder


def test_reader_reads_real_pngs(valid_subset):
    import cv2

    faces = read_ferplus_folder(valid_subset)
    assert faces.images.shape == (200, 48, 48) and faces.images.dtype == np.uint8
    assert faces.votes.shape == (200, 10)
    first = cv2.imread(str(valid_subset / faces.names[0]), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(faces.images[0], first)
    row = next(csv.reader(open(valid_subset / "label.csv")))
    np.testing.assert_array_equal(faces.votes[0], [float(x) for x in row[2:]])


def test_cache_hit_and_invalidation(valid_subset, ferlite_home):
    a = read_ferplus_folder(valid_subset)
    assert list((ferlite_home / "datasets").glob("*.npz"))
    t = time.perf_counter()
    b = read_ferplus_folder(valid_subset)
    assert time.perf_counter() - t < 2.0
    np.testing.assert_array_equal(a.images, b.images)
    # change one image: the key changes and the new pixels are read
    import cv2

    name = a.names[0]
    cv2.imwrite(str(valid_subset / name), np.full((48, 48), 7, np.uint8))
    os.utime(valid_subset / name, ns=(1, 1))
    c = read_ferplus_folder(valid_subset)
    assert (c.images[0] == 7).all()
    # change a vote in label.csv: new votes are read
    lines = (valid_subset / "label.csv").read_text().splitlines()
    parts = lines[0].split(",")
    parts[-10] = "9"
    lines[0] = ",".join(parts)
    (valid_subset / "label.csv").write_text("\n".join(lines) + "\n")
    assert read_ferplus_folder(valid_subset).votes[0, 0] == 9


def test_bad_data_errors_name_file_and_line(valid_subset, tmp_path):
    with pytest.raises(FileNotFoundError, match="no label.csv"):
        read_ferplus_folder(tmp_path)
    lines = (valid_subset / "label.csv").read_text().splitlines()
    (valid_subset / lines[2].split(",")[0]).write_bytes(b"not a png")  # corrupt image on line 3
    lines[4] = lines[4].rsplit(",", 1)[0]  # malformed row on line 5
    (valid_subset / "label.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"label.csv, line 3: image .*not a readable image"):
        read_ferplus_folder(valid_subset)
    with pytest.warns(UserWarning, match="2 bad row"):
        faces = read_ferplus_folder(valid_subset, skip_bad=True)
    assert len(faces) == 198 and [s[1] for s in faces.skipped] == [3, 5]
    assert "12 columns" in faces.skipped[1][2]


def test_pipeline_shapes_determinism_channels(valid_subset):
    faces = read_ferplus_folder(valid_subset)
    x, t = faces.targets("seed9")

    def first(seed, **kw):
        xb, yb = next(iter(make_dataset(x, t.targets, batch_size=32, training=True, augment="strong", seed=seed, **kw)))
        return xb.numpy(), yb.numpy()

    xa, ya = first(3)
    xb, yb = first(3)
    assert xa.dtype == np.uint8 and xa.shape == (32, 48, 48, 1)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first(4)[0], xa)
    x3, _ = first(3, channels=3, input_size=64)
    assert x3.shape == (32, 64, 64, 3) and (x3[..., 0] == x3[..., 2]).all()
    # evaluation order is kept, no augmentation
    xe, ye = next(iter(make_dataset(x, t.targets, batch_size=16)))
    np.testing.assert_array_equal(xe.numpy()[..., 0], x[:16])


def test_augmentation_changes_pixels_keeps_range(valid_subset):
    faces = read_ferplus_folder(valid_subset)
    ds = make_dataset(faces.images, np.zeros((len(faces), 1)), batch_size=64, training=True,
                      augment=AugmentConfig(erase=1.0), seed=0)
    xb, _ = next(iter(ds))
    xb = xb.numpy()
    assert xb.min() >= 0 and xb.max() <= 255
    with pytest.raises(ValueError, match="valid:"):
        AugmentConfig.preset("extreme")


def _write_raw_pair(src, folder, tmp_path, n=30):
    """A small fer2013.csv + fer2013new.csv pair built from real shared PNGs."""
    import cv2

    lines = (src / "label.csv").read_text().splitlines()[:n]
    fer = ["emotion,pixels,Usage"]
    new = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    usages = ["Training", "PublicTest", "PrivateTest"]
    for i, line in enumerate(lines):
        row = next(csv.reader([line]))
        img = cv2.imread(str(src / row[0]), cv2.IMREAD_GRAYSCALE)
        usage = usages[i % 3]
        fer.append(f"0,{' '.join(map(str, img.ravel()))},{usage}")
        new.append(",".join([usage, "" if i == 5 else row[0], *row[2:]]))
    (tmp_path / "fer2013.csv").write_text("\n".join(fer) + "\n")
    (tmp_path / "fer2013new.csv").write_text("\n".join(new) + "\n")
    return lines


def test_prepare_round_trip(ferplus_valid, tmp_path):
    lines = _write_raw_pair(ferplus_valid, ferplus_valid, tmp_path)
    written = prepare_ferplus(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out")
    assert written == {"FER2013Train": 10, "FER2013Valid": 10, "FER2013Test": 9}  # row 5 (a test row) has no name
    faces = read_ferplus_folder(tmp_path / "out" / "FER2013Valid", use_cache=False)
    orig = read_ferplus_folder(copy_split(ferplus_valid, tmp_path / "orig", 30), use_cache=False)
    idx = [orig.names.index(n) for n in faces.names]
    np.testing.assert_array_equal(faces.images, orig.images[idx])
    np.testing.assert_array_equal(faces.votes, orig.votes[idx])
    assert len(lines) == 30


def test_prepare_bad_input_leaves_nothing(ferplus_valid, tmp_path):
    _write_raw_pair(ferplus_valid, ferplus_valid, tmp_path)
    new = (tmp_path / "fer2013new.csv").read_text().splitlines()
    (tmp_path / "fer2013new.csv").write_text("\n".join(new[:-1]) + "\n")
    with pytest.raises(DataError, match="same faces"):
        prepare_ferplus(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    fer = (tmp_path / "fer2013.csv").read_text().splitlines()
    fer[3] = fer[3].replace(",", ",1 2 3,", 1).split(",1 2 3,")[0] + ",1 2 3," + fer[3].rsplit(",", 1)[1]
    (tmp_path / "fer2013.csv").write_text("\n".join(fer) + "\n")
    (tmp_path / "fer2013new.csv").write_text("\n".join(new) + "\n")
    with pytest.raises(DataError, match="line 4: pixels must be 2304"):
        prepare_ferplus(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
