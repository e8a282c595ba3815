"""Readers, the decoded-face cache and `prepare_ferplus`, on real shared FER+ faces."""

import csv
import os

import cv2
import numpy as np
import pytest
from conftest import copy_split, write_raw_pair

from ferlite.datasets import DataError, prepare_ferplus, read_ferplus_folder


def _label_rows(folder):
    with open(folder / "label.csv", newline="") as f:
        return list(csv.reader(f))


def test_reader_reads_real_pngs(valid_subset):
    faces = read_ferplus_folder(valid_subset)
    rows = _label_rows(valid_subset)
    assert len(faces) == 200 and faces.images.shape == (200, 48, 48) and faces.images.dtype == np.uint8
    assert faces.names == [r[0] for r in rows] and faces.skipped == [] and faces.root == valid_subset
    for i in (0, 199):
        np.testing.assert_array_equal(faces.images[i], cv2.imread(str(valid_subset / rows[i][0]), cv2.IMREAD_GRAYSCALE))
        np.testing.assert_array_equal(faces.votes[i], [float(x) for x in rows[i][2:]])
    small = read_ferplus_folder(valid_subset, size=32, use_cache=False)
    assert small.images.shape == (200, 32, 32)


def test_cache_hit_and_invalidation(valid_subset, ferlite_home):
    a = read_ferplus_folder(valid_subset)
    (npz,) = (ferlite_home / "datasets").glob("*.npz")
    stamp = npz.stat().st_mtime_ns
    # garble one PNG keeping its size and modification time (the key's inputs): a hit never decodes it again
    png = valid_subset / a.names[1]
    st = png.stat()
    original = png.read_bytes()
    png.write_bytes(b"\0" * st.st_size)
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    b = read_ferplus_folder(valid_subset)
    png.write_bytes(original)
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert npz.stat().st_mtime_ns == stamp and len(list(npz.parent.glob("*.npz"))) == 1  # a hit: nothing rewritten
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.votes, b.votes)
    assert a.names == b.names

    # change one image: the key changes and the new pixels are read
    cv2.imwrite(str(valid_subset / a.names[0]), np.full((48, 48), 7, np.uint8))
    os.utime(valid_subset / a.names[0], ns=(1, 1))
    c = read_ferplus_folder(valid_subset)
    assert (c.images[0] == 7).all() and len(list(npz.parent.glob("*.npz"))) == 2
    # change one vote in label.csv: the new votes are read
    lines = (valid_subset / "label.csv").read_text().splitlines()
    parts = lines[0].split(",")
    parts[-10] = "9"  # the neutral count
    lines[0] = ",".join(parts)
    (valid_subset / "label.csv").write_text("\n".join(lines) + "\n")
    assert read_ferplus_folder(valid_subset).votes[0, 0] == 9 and len(list(npz.parent.glob("*.npz"))) == 3


def test_bad_data_errors_name_file_and_line(valid_subset, tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        read_ferplus_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=f"no label.csv in {tmp_path}"):
        read_ferplus_folder(tmp_path)
    lines = (valid_subset / "label.csv").read_text().splitlines()
    (valid_subset / lines[2].split(",")[0]).write_bytes(b"not a png")  # line 3: unreadable image
    lines[4] = lines[4].rsplit(",", 1)[0]  # line 5: a vote column missing
    (valid_subset / lines[6].split(",")[0]).unlink()  # line 7: image missing
    lines[8] = lines[8].rsplit(",", 1)[0] + ",x"  # line 9: a vote that is not a number
    (valid_subset / "label.csv").write_text("\n".join(lines) + "\n")
    label = valid_subset / "label.csv"
    with pytest.raises(DataError, match=rf"{label}, line 3: image .*: not a readable image: .*--skip-bad"):
        read_ferplus_folder(valid_subset)
    with pytest.warns(UserWarning, match="4 bad row"):
        faces = read_ferplus_folder(valid_subset, skip_bad=True)
    assert len(faces) == 196 and [s[1] for s in faces.skipped] == [3, 5, 7, 9]
    assert {s[0] for s in faces.skipped} == {str(label)}
    reasons = [s[2] for s in faces.skipped]
    assert "not a readable image" in reasons[0] and "expected 12 columns" in reasons[1] and "got 11" in reasons[1]
    assert "file not found" in reasons[2] and "must be numbers" in reasons[3]
    cached = read_ferplus_folder(valid_subset, skip_bad=True)  # from the cache: the same faces and skip records
    assert cached.skipped == faces.skipped and cached.names == faces.names


def test_prepare_round_trip(ferplus_valid, tmp_path):
    rows = write_raw_pair(ferplus_valid, tmp_path, n=30)  # row 5 (PrivateTest) has no image name
    written = prepare_ferplus(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out")
    assert written == {"FER2013Train": 10, "FER2013Valid": 10, "FER2013Test": 9}
    orig = read_ferplus_folder(copy_split(ferplus_valid, tmp_path / "orig", 30), use_cache=False)
    for split, first_row in (("FER2013Train", 0), ("FER2013Valid", 1), ("FER2013Test", 2)):
        folder = tmp_path / "out" / split
        faces = read_ferplus_folder(folder, use_cache=False)
        expected = [r[0] for i, r in enumerate(rows) if i % 3 == first_row and i != 5]
        assert faces.names == expected
        idx = [orig.names.index(n) for n in faces.names]
        np.testing.assert_array_equal(faces.images, orig.images[idx])
        np.testing.assert_array_equal(faces.votes, orig.votes[idx])
        assert {r[1] for r in _label_rows(folder)} == {"(0, 0, 48, 48)"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["FER2013Test", "FER2013Train", "FER2013Valid"]


def _edit(path, line, new_text):
    lines = path.read_text().splitlines()
    lines[line - 1] = new_text(lines[line - 1])
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("file", "line", "change", "message"), [
    ("fer2013new.csv", 31, None, "has 30 rows but .*fer2013new.csv has 29"),
    ("fer2013.csv", 1, lambda s: "label,pixels,Usage", "fer2013.csv, line 1: expected the header 'emotion,pixels"),
    ("fer2013new.csv", 1, lambda s: s.replace("Image name", "Image"), "line 1: expected a header starting 'Usage"),
    ("fer2013.csv", 4, lambda s: s.rsplit(",", 2)[0] + ",1 2 3,PrivateTest", "line 4: pixels must be 2304 .*got 3"),
    ("fer2013new.csv", 3, lambda s: s.replace("PublicTest", "Training", 1), "line 3: Usage differs"),
])
def test_prepare_bad_input_leaves_nothing(ferplus_valid, tmp_path, file, line, change, message):
    write_raw_pair(ferplus_valid, tmp_path, n=30)
    if change is None:  # drop the last row
        lines = (tmp_path / file).read_text().splitlines()
        (tmp_path / file).write_text("\n".join(lines[:-1]) + "\n")
    else:
        _edit(tmp_path / file, line, change)
    with pytest.raises(DataError, match=message):
        prepare_ferplus(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_skip_bad_writes_the_rest(ferplus_valid, tmp_path):
    write_raw_pair(ferplus_valid, tmp_path, n=30)
    _edit(tmp_path / "fer2013.csv", 2, lambda s: "0,1 2 3,Training")  # row 0, a Training face
    with pytest.warns(UserWarning, match="line 2: pixels must be 2304"):
        written = prepare_ferplus(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", tmp_path / "out",
                                  skip_bad=True)
    assert written == {"FER2013Train": 9, "FER2013Valid": 10, "FER2013Test": 9}
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no temporary folders


# --------------------------------------------------------------------------- bad input: clear errors or counted skips


@pytest.fixture(scope="module")
def ferplus_tflite():
    """The bundled int8 FER+ model (9 classes, LiteRT: no TensorFlow) to score datasets with."""
    from ferlite import weights

    path = weights.registry_entry("ferplus-mfn-1.0-int8").bundled_path
    assert path.is_file(), f"the bundled int8 model {path} is missing: the package ships it"
    return path


def _break_row(folder, line, how):
    """Damage row ``line`` (1-based) of folder/label.csv; return what the error must say about it."""
    rows = _label_rows(folder)
    row = rows[line - 1]
    if how == "missing column":
        rows[line - 1] = row[:-1]
        said = "expected 12 columns (name, face box, 10 votes), got 11"
    elif how == "non-numeric vote":
        rows[line - 1] = row[:3] + ["three"] + row[4:]
        said = f"vote counts must be numbers, got {row[2:3] + ['three'] + row[4:]}"
    elif how == "negative vote":
        rows[line - 1] = row[:2] + ["-1"] + row[3:]
        said = f"vote counts must be finite and non-negative, got {[-1.0] + [float(v) for v in row[3:]]}"
    else:  # "missing PNG"
        (folder / row[0]).unlink()
        said = f"image {folder / row[0]}: file not found"
    with open(folder / "label.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return said


@pytest.mark.parametrize("how", ["missing column", "non-numeric vote", "negative vote", "missing PNG"])
def test_bad_label_row_stops_with_file_line_and_values(small_valid_folder, ferlite_home, how):
    folder = small_valid_folder(8)
    said = _break_row(folder, 6, how)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(DataError) as err:
        read_ferplus_folder(folder)
    assert str(err.value) == (f"{folder / 'label.csv'}, line 6: {said} "
                              "(use --skip-bad / skip_bad=True to skip such rows)")
    assert not (ferlite_home / "datasets").exists()  # no cache entry for a failed read
    assert sorted(p.name for p in folder.iterdir()) == before


def test_missing_png_skipped_and_counted_by_evaluate(small_valid_folder, ferplus_tflite):
    from ferlite.evaluate import evaluate

    folder = small_valid_folder(8)
    said = _break_row(folder, 3, "missing PNG")
    with pytest.raises(DataError, match=r"label\.csv, line 3: image .*: file not found \(use --skip-bad"):
        evaluate(ferplus_tflite, folder)
    with pytest.warns(UserWarning, match=f"1 bad row\\(s\\) skipped in {folder / 'label.csv'}"):
        report = evaluate(ferplus_tflite, folder, skip_bad=True)
    assert report.skipped == [(str(folder / "label.csv"), 3, said)]
    assert (report.rows, report.faces) == (8, 7)
    assert report.to_json()["skipped_rows"] == [{"file": str(folder / "label.csv"), "line": 3, "reason": said}]


def test_empty_split_folder(small_valid_folder, ferplus_tflite, tmp_path):
    from ferlite.evaluate import evaluate

    pngs = small_valid_folder(3)
    (pngs / "label.csv").unlink()  # PNGs without their label.csv
    with pytest.raises(FileNotFoundError) as err:
        evaluate(ferplus_tflite, pngs)
    said = str(err.value)  # what it holds (PNGs, no label.csv, no class sub-folder) and the layouts expected
    assert said.startswith(f"no label.csv in {pngs}, and no sub-folder of it holds an image: it holds "), said
    for expected in ("label.csv", "DIR/<class>/", "image,<class 1>,<class 2>,..."):
        assert expected in said, (expected, said)
    for name, text in (("empty", ""), ("blank", "\n \n\n")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "label.csv").write_text(text)
        with pytest.raises(DataError) as err:
            evaluate(ferplus_tflite, folder)
        assert str(err.value) == (f"{folder / 'label.csv'}: no readable face to score (it has no data rows); "
                                  "expected at least one row naming a readable image")
        assert sorted(p.name for p in folder.iterdir()) == ["label.csv"]


_FER9 = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown"]


@pytest.mark.parametrize(("columns", "problem"), [
    (_FER9[:8] + ["cat"], "unknown column(s) cat; no column for unknown"),
    (_FER9[:8], "no column for unknown"),
    (_FER9[1::-1] + _FER9[2:], "the same classes in another order"),
])
def test_csv_dataset_with_other_classes_refused_before_reading_images(tmp_path, ferplus_tflite, columns, problem):
    from ferlite.evaluate import evaluate

    dataset = tmp_path / "faces.csv"
    rows = [["image", *columns]] + [[f"missing{i}.png", *(["1"] * len(columns))] for i in range(3)]
    with open(dataset, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    with pytest.raises(DataError) as err:  # a read image would have given "missing0.png: file not found"
        evaluate(ferplus_tflite, dataset)
    assert str(err.value) == (f"{dataset}, line 1: the dataset's classes {columns} are not the model's {_FER9} "
                              f"({problem}): a CSV dataset scored by {ferplus_tflite} must have the columns "
                              f"image,{','.join(_FER9)}")


@pytest.mark.parametrize(("kind", "byte"), [("random", "0x82"), ("png", "0x89"), ("utf16", "0xff")])
def test_binary_csv_is_refused(tmp_path, ferplus_valid, ferplus_tflite, ferlite_home, kind, byte):
    from ferlite.evaluate import evaluate

    content = {"random": lambda: np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes(),
               "png": lambda: (ferplus_valid / _label_rows(ferplus_valid)[0][0]).read_bytes(),
               "utf16": lambda: "image,neutral,happiness\nface.png,1,0\n".encode("utf-16")}[kind]()
    dataset = tmp_path / "faces.csv"
    dataset.write_bytes(content)
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "label.csv").write_bytes(content)
    for source, label in ((dataset, dataset), (folder, folder / "label.csv")):
        with pytest.raises(DataError) as err:
            evaluate(ferplus_tflite, source)
        msg = str(err.value)
        assert msg.startswith(f"{label}: expected a text CSV file, got unreadable content ('utf-8' codec can't "
                              f"decode byte {byte} in position "), msg
    assert not (ferlite_home / "datasets").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.csv", "split"]
