"""Text readers for lamp spectra and line lists: the layouts real exports use."""

from __future__ import annotations

import numpy as np
import pytest

from plscope.errors import RunFolderError
from plscope.spectra.lamp import read_lamp, read_lines, read_spectrum_table


def test_plain_csv(tmp_path):
    p = tmp_path / "lamp.csv"
    p.write_text("pixel,counts\n" + "".join(f"{i},{100 + i * i}\n" for i in range(10)))
    lamp = read_lamp(p)
    assert (lamp.x_name, lamp.y_name) == ("pixel", "counts")
    np.testing.assert_array_equal(lamp.x, np.arange(10))
    np.testing.assert_array_equal(lamp.y, 100 + np.arange(10) ** 2)
    assert lamp.separator == "," and not lamp.decimal_comma


def test_vendor_export_with_metadata_decimal_commas_and_blank_cells(tmp_path):
    p = tmp_path / "vendor.txt"
    head = (
        "File Version;BWSpec4.11_1\r\ncoefs_a0;530,774489651404\r\ncoefs_a2;-3,31985403863623E-06\r\n"
        "operator;\r\nPixel;Wavelength;Dark;Raw data #1;Dark Subtracted #1;\r\n"
    )
    rows = "".join(
        f"{i};{530 + 0.1 * i:.2f};900,0000;{1000 + i},5000;{100 + i},5000;\r\n".replace(".", ",")
        for i in range(8)
    )
    rows += "8;   ;900,0000;1008,5000;108,5000;\r\n"  # no wavelength beyond the calibrated range
    p.write_bytes((head + rows).encode("latin-1"))
    lamp = read_lamp(p)
    assert (lamp.x_name, lamp.y_name) == ("Pixel", "Raw data #1")
    assert lamp.n == 9  # the blank wavelength cell does not drop the row
    assert lamp.y[3] == 1003.5
    assert lamp.decimal_comma and lamp.separator == ";"
    assert lamp.metadata["coefs_a0"] == pytest.approx(530.774489651404)
    assert lamp.metadata["coefs_a2"] == pytest.approx(-3.31985403863623e-06)
    other = read_lamp(p, counts_column="dark sub")  # unique prefix, any case
    assert other.y_name == "Dark Subtracted #1" and other.y[0] == 100.5
    by_index = read_spectrum_table(p, x_column=1, y_column=4)
    assert by_index.x_name == "Wavelength" and by_index.n == 8  # the blank wavelength row is dropped here


def test_tab_separated_without_header(tmp_path):
    p = tmp_path / "si.txt"
    p.write_text("".join(f"{100 + 1.1 * i:.3f}\t{400 + i}\n" for i in range(20)))
    tab = read_spectrum_table(p)
    assert tab.n == 20 and tab.x[1] == pytest.approx(101.1)
    assert tab.separator == "\t"


def test_reader_errors_name_the_file_and_the_columns(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        read_lamp(tmp_path / "nope.csv")
    words = tmp_path / "words.txt"
    words.write_text("no numbers here\nat all\n")
    with pytest.raises(RunFolderError, match="no table of numbers"):
        read_lamp(words)
    many = tmp_path / "many.csv"
    many.write_text("a,b,c\n" + "".join(f"{i},{i},{i}\n" for i in range(5)))
    with pytest.raises(RunFolderError, match="a, b, c"):
        read_lamp(many)  # which column holds the counts?
    with pytest.raises(RunFolderError, match="no counts column named 'zz'"):
        read_lamp(many, pixel_column="a", counts_column="zz")
    assert read_lamp(many, pixel_column="a", counts_column=2).y_name == "c"
    dup = tmp_path / "dup.csv"
    dup.write_text("pixel,counts\n1,5\n1,6\n2,7\n")
    with pytest.raises(RunFolderError, match="appears twice"):
        read_lamp(dup)


def test_line_lists(tmp_path):
    p = tmp_path / "lines.csv"
    p.write_text("# Ne I, NIST\nwavelength_nm,rel_intensity\n540.0562,200\n533.0778,60\n585.2488,200\n")
    lines = read_lines(p)
    np.testing.assert_array_equal(lines.wavelength_nm, [533.0778, 540.0562, 585.2488])
    np.testing.assert_array_equal(lines.intensity, [60, 200, 200])
    assert read_lines(p, min_intensity=100).wavelength_nm.tolist() == [540.0562, 585.2488]
    plain = tmp_path / "plain.txt"
    plain.write_text("546.075\n435.833\n")
    assert read_lines(plain).wavelength_nm.tolist() == [435.833, 546.075]
    with pytest.raises(RunFolderError, match="intensity"):
        read_lines(plain, min_intensity=10)
