"""Reading a user's CSV file: the cases a new user met (issue 13 §2), each a small file."""

import re
import warnings

import numpy as np
import pytest

from bgmm import DataWarning, as_data
from bgmm._spelling import command_line_spelling
from bgmm.data import read_csv

IRIS_ROWS = [
    (5.1, 3.5, 1.4, 0.2, "setosa"),
    (4.9, 3.0, 1.4, 0.2, "setosa"),
    (7.0, 3.2, 4.7, 1.4, "versicolor"),
    (6.4, 3.2, 4.5, 1.5, "versicolor"),
    (6.3, 3.3, 6.0, 2.5, "virginica"),
]
IRIS_NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
IRIS = np.array([row[:4] for row in IRIS_ROWS])


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def iris_text(sep=",", decimal=".", header=True):
    lines = [sep.join(IRIS_NAMES)] if header else []
    for row in IRIS_ROWS:
        cells = [f"{v:.1f}".replace(".", decimal) for v in row[:4]] + [row[4]]
        lines.append(sep.join(cells))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("sep", "decimal", "shown"),
    [(";", ",", "';'"), ("\t", ".", "tab"), ("|", ".", "'|'"), (",", ".", "','")],
)
def test_separator_and_decimal_mark_are_detected_and_said(tmp_path, sep, decimal, shown):
    table = read_csv(write(tmp_path, iris_text(sep, decimal)))
    assert (table.sep, table.decimal, table.header) == (sep, decimal, True)
    assert table.detected == ("sep", "decimal", "header")
    np.testing.assert_array_equal(table.frame.to_numpy(), IRIS)
    assert list(table.frame.columns) == IRIS_NAMES[:4]
    assert table.skipped == {"species": "text"}
    lines = table.describe()
    assert lines[0] == (
        f"read 5 rows (lines 2-6) of data.csv; separator {shown} (detected), decimal mark "
        f"'{decimal}' (detected), header on line 1 (detected)"
    )
    assert lines[1] == "columns used (4): sepal_length, sepal_width, petal_length, petal_width"
    assert "left out column 'species': text, not numbers, e.g. 'setosa'" in lines


def test_a_file_without_header_keeps_its_first_row(tmp_path):
    text = "\n".join(",".join(f"{v}" for v in row) for row in IRIS) + "\n"
    table = read_csv(write(tmp_path, text))
    assert not table.header and len(table.frame) == 5
    np.testing.assert_array_equal(table.frame.to_numpy(), IRIS)
    assert list(table.frame.columns) == ["x0", "x1", "x2", "x3"]
    assert table.line_numbers.tolist() == [1, 2, 3, 4, 5]
    assert "no header (columns named x0, x1, ...) (detected)" in table.describe()[0]


def test_given_options_override_detection(tmp_path):
    # line 1 is data, but the user says it is a header: it names the columns
    text = "1;2\n3,5;4\n5;6,5\n"
    table = read_csv(write(tmp_path, text), sep=";", decimal=",", header=True)
    assert table.detected == ()
    assert list(table.frame.columns) == ["1", "2"]
    np.testing.assert_array_equal(table.frame.to_numpy(), [[3.5, 4.0], [5.0, 6.5]])
    assert (
        "separator ';' (given), decimal mark ',' (given), header on line 1 (given)"
        in (table.describe()[0])
    )


@pytest.mark.parametrize(
    ("text", "python", "cli"),
    [
        # two integer columns, or one column with decimal commas?
        (
            "1,5\n2,5\n3,25\n",
            "say which: sep=',' or decimal=','",
            "say which: --sep ',' or --decimal ,",
        ),
        # ';' and '|' split every line equally well
        (
            "1;2|3\n4;5|6\n7;8|9\n",
            "equally well; say which separates the columns: sep=';' or sep='|'",
            "equally well; say which separates the columns: --sep ';' or --sep '|'",
        ),
        # decimal commas and decimal points in one ';' file
        (
            "a;b\n1,5;2.5\n3,5;4.5\n",
            "say which is the decimal mark: decimal=',' or decimal='.'",
            "say which is the decimal mark: --decimal , or --decimal .",
        ),
    ],
)
def test_what_stays_ambiguous_is_refused_with_the_option_to_use(tmp_path, text, python, cli):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=re.escape(python)):
        read_csv(path)
    with command_line_spelling(), pytest.raises(ValueError, match=re.escape(cli)):
        read_csv(path)


def test_identifiers_and_constant_columns_are_left_out_and_said(tmp_path):
    text = "id,row,x,count,site,y\n" + "\n".join(
        f"{i},{i + 100},{x},{c},7,{y}"
        for i, (x, c, y) in enumerate(
            [(0.5, 3, 1.0), (1.5, 1, 2.5), (2.0, 4, 0.5), (0.1, 1, 3.0), (3.3, 5, 2.0)], start=1
        )
    )
    table = read_csv(write(tmp_path, text))
    assert list(table.frame.columns) == ["x", "count", "y"]  # small integers stay
    assert table.skipped == {"id": "identifier", "row": "identifier", "site": "constant"}
    notes = "\n".join(table.notes)
    assert (  # the value as written, not np.int64(1)
        "left out column 'id': looks like an identifier (its name, or 1, 2, 3, ... down the "
        "file), e.g. 1\n" in notes
    )
    assert "left out column 'site': constant (one value: no information on clusters), e.g. 7" in (
        notes
    )
    # named explicitly: kept, with a note
    table = read_csv(tmp_path / "data.csv", columns=["x", "id"])
    assert list(table.frame.columns) == ["x", "id"] and table.skipped == {}
    assert table.notes == ("column 'id' looks like an identifier; kept because it was named",)


def test_columns_and_exclude(tmp_path):
    path = write(tmp_path, iris_text())
    with pytest.raises(TypeError, match=re.escape("non-numeric column(s) ['species']")):
        read_csv(path, columns=["sepal_length", "species"])
    table = read_csv(path, exclude=["sepal_width", "petal_width"])
    assert list(table.frame.columns) == ["sepal_length", "petal_length"]
    assert table.skipped["sepal_width"] == "excluded"
    with pytest.raises(ValueError, match=re.escape("column(s) ['petal'] to exclude are not in")):
        read_csv(path, exclude="petal")
    with command_line_spelling(), pytest.raises(ValueError, match="--columns sepal_length,"):
        read_csv(path, columns=["sepal"])
    with pytest.raises(ValueError, match=re.escape("columns=['sepal_length', 'sepal_width']")):
        read_csv(path, columns=["sepal"])


def test_missing_values_give_file_line_numbers_or_are_dropped(tmp_path):
    # line 1 header, line 3 blank, lines 5 and 7 have an empty cell
    text = "a,b\n1,2\n\n3,4\n5,\n7,8\n,10\n11,12\n"
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        read_csv(path)
    message = str(error.value)
    assert "has missing values on 2 line(s) (5, 7) in column(s) ['a', 'b']" in message
    assert message.endswith("leave those rows out with dropna=True, or fill them in the file.")
    with command_line_spelling(), pytest.raises(ValueError, match="rows out with --dropna,"):
        read_csv(path)
    table = read_csv(path, dropna=True)
    assert table.dropped_lines == (5, 7)
    assert table.line_numbers.tolist() == [2, 4, 6, 8]
    np.testing.assert_array_equal(table.frame["a"], [1, 3, 7, 11])
    assert "left out 2 line(s) (5, 7) with missing values in column(s) ['a', 'b']" in table.notes


def test_infinite_values_are_refused_even_with_dropna(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,inf\n5,6\n")
    with pytest.raises(ValueError, match=re.escape("infinite values on 1 line(s) (3)")):
        read_csv(path, dropna=True)


def test_as_data_reads_through_read_csv_and_warns_about_what_it_left_out(tmp_path):
    path = write(tmp_path, iris_text(";", ","))
    with pytest.warns(DataWarning, match="left out column 'species': text"):
        data = as_data(path)
    assert data.feature_names == tuple(IRIS_NAMES[:4])
    np.testing.assert_array_equal(data.values, IRIS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named columns: nothing left out, no warning
        as_data(path, columns=IRIS_NAMES[:2])
        table = read_csv(path)
        data = as_data(table, standardize=True)
    assert data.source == str(path) and data.standardization is not None
