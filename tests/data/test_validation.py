"""check_labels: a mask with labels out of range is refused, naming the file and the values."""

import numpy as np
import pytest

from minifcn.data import DataError
from minifcn.data.validation import check_labels, read_text


def test_check_labels_names_the_file_and_the_values():
    labels = np.zeros((4, 4), np.int32)
    labels[1, 1], labels[2, 2], labels[3, 3] = 9, 255, -1
    with pytest.raises(DataError, match=r"masks/a\.png: label values -1, 9 are out of range: expected 0\.\.5 or 255"):
        check_labels(labels, 6, 255, "masks/a.png")
    labels[1, 1] = labels[3, 3] = 5
    check_labels(labels, 6, 255, "masks/a.png")


def test_read_text_names_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("caf\xe9\nroad\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"classes\.txt: not UTF-8 text \(byte 3"):
        read_text(path)
    path.write_text("café\nroad\n", encoding="utf-8")
    assert read_text(path).splitlines() == ["café", "road"]
