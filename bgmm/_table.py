"""Reading a user's CSV file: separator, decimal mark, header, and which columns to use.

:func:`read_csv` decides what a spreadsheet export means before any number is fitted, and
says what it decided (:meth:`CSVTable.describe`): a ``;``-separated file with decimal
commas is not one text column, a file without a header does not lose its first row, an
``id`` column is not a feature. What stays ambiguous is refused with the option that
decides it. Line numbers in messages are the file's (1-based, the header is line 1), as an
editor shows them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bgmm._spelling import option
from bgmm.exceptions import InputTypeError, InputValueError

__all__ = ["CSVTable", "SEPARATORS", "read_csv"]

#: The separators :func:`read_csv` considers, in order of preference on a tie.
SEPARATORS = (",", ";", "\t", "|")

_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_CLI_SEP = {",": "','", ";": "';'", "\t": "'\\t'", "|": "'|'"}

#: Lines read to detect the separator, decimal mark and header.
SAMPLE_LINES = 200

#: Column names that say "identifier" (case-insensitive): id, ID, row_id, patient_id,
#: index, idx, Unnamed: 0 (pandas' name for an unnamed index column).
_ID_NAME = re.compile(r"^(id|ids|idx|index|row|rownames|row_?id|.+[_ .-]id|unnamed: ?\d+)$", re.I)

_DOT_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_COMMA_NUMBER = re.compile(r"^[+-]?(\d+,?\d*|,\d+)([eE][+-]?\d+)?$")
_SPECIAL = {"nan", "na", "n/a", "null", "inf", "-inf", "+inf", "infinity", "-infinity", ""}


def _is_number(cell: str, decimal: str | None = None) -> bool:
    cell = cell.strip()
    if cell.lower() in _SPECIAL:
        return True
    if decimal == ",":
        return bool(_COMMA_NUMBER.match(cell))
    if decimal == ".":
        return bool(_DOT_NUMBER.match(cell))
    return bool(_DOT_NUMBER.match(cell) or _COMMA_NUMBER.match(cell))


def _fields(lines: list[str], sep: str) -> list[list[str]]:
    return list(csv.reader(lines, delimiter=sep))


# Results and containers are documented by their attributes, not by __init__.
@dataclass(frozen=True, eq=False)
class CSVTable:  # numpydoc ignore=PR01
    """A CSV file as :func:`read_csv` read it, with everything it decided.

    Attributes
    ----------
    frame : pandas.DataFrame
        The columns used, float64, one row per data row kept (default index).
    path : str
        The file.
    sep : str
        The separator used.
    decimal : str
        The decimal mark used (``"."`` or ``","``).
    header : bool
        Whether line 1 held the column names (without one, the columns are named
        ``x0, x1, ...`` as for an array).
    detected : tuple of str
        Which of ``"sep"``, ``"decimal"`` and ``"header"`` were detected (the others were
        given).
    line_numbers : ndarray of int
        The file line (1-based) of each row of ``frame``.
    skipped : dict
        Column name -> why it was left out: ``"text"``, ``"identifier"``, ``"constant"``
        or ``"excluded"``.
    dropped_lines : tuple of int
        File lines left out because a value was missing (``dropna=True``).
    notes : tuple of str
        What the user should know: each column left out and why, dropped rows, columns
        kept although they look like identifiers or are constant.
    """

    frame: pd.DataFrame
    path: str
    sep: str
    decimal: str
    header: bool
    detected: tuple[str, ...]
    line_numbers: np.ndarray
    skipped: dict = field(default_factory=dict)
    dropped_lines: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        """What was read, in lines for the user: format, rows, columns used, notes.

        Returns
        -------
        list of str
            E.g. ``read 150 rows (lines 2-151) of iris.csv; separator ';' (detected),
            decimal mark ',' (detected), header on line 1 (detected)``, then the columns
            used, then the notes.
        """

        def how(what: str) -> str:
            return "detected" if what in self.detected else "given"

        lines = self.line_numbers
        span = f"lines {lines[0]}-{lines[-1]}" if len(lines) else "no lines"
        header = "header on line 1" if self.header else "no header (columns named x0, x1, ...)"
        used = list(self.frame.columns)
        return [
            f"read {len(self.frame)} rows ({span}) of {Path(self.path).name}; separator "
            f"{_NAMES.get(self.sep, repr(self.sep))} ({how('sep')}), decimal mark "
            f"'{self.decimal}' ({how('decimal')}), {header} ({how('header')})",
            f"columns used ({len(used)}): {', '.join(used)}",
            *self.notes,
        ]


def _sample(path: Path) -> list[str]:
    lines: list[str] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for line in fh:
            if line.strip():
                lines.append(line.rstrip("\r\n"))
            if len(lines) >= SAMPLE_LINES:
                break
    return lines


def _detect_sep(lines: list[str], path: Path) -> str:
    """The separator that splits every sampled line into the same number (> 1) of fields.

    Among several, the one whose cells (after line 1) are most often numbers; refused if
    two candidates tie.
    """
    consistent = []
    for sep in SEPARATORS:
        counts = {len(row) for row in _fields(lines, sep)}
        if len(counts) == 1 and counts.pop() > 1:
            body = [c for row in _fields(lines[1:], sep) for c in row]
            share = np.mean([_is_number(c) for c in body]) if body else 0.0
            consistent.append((share, sep))
    if not consistent:
        return ","  # one field per line: a single column, whatever the separator
    consistent.sort(key=lambda item: -item[0])
    if len(consistent) > 1 and consistent[0][0] == consistent[1][0]:
        a, b = consistent[0][1], consistent[1][1]
        raise InputValueError(
            f"data file '{path}' splits into columns at {_NAMES[a]} and at {_NAMES[b]} "
            f"equally well; say which separates the columns: "
            f"{option('sep', repr(a), _CLI_SEP[a])} or {option('sep', repr(b), _CLI_SEP[b])}."
        )
    return consistent[0][1]


def _detect_decimal(cells: list[str], sep: str, path: Path) -> str:
    if sep == ",":
        return "."
    values = [c.strip() for c in cells if c.strip().lower() not in _SPECIAL]
    comma = sum(bool(re.match(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$", c)) for c in values)
    dot = sum(bool(re.match(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$", c)) for c in values)
    if comma and dot:
        raise InputValueError(
            f"data file '{path}' has numbers with a decimal comma (e.g. "
            f"{next(c for c in values if ',' in c)!r}) and with a decimal point (e.g. "
            f"{next(c for c in values if '.' in c)!r}); say which is the decimal mark: "
            f"{option('decimal', repr(','), ',')} or {option('decimal', repr('.'), '.')}."
        )
    return "," if comma else "."


def _detect_header(rows: list[list[str]], decimal: str) -> bool:
    """Line 1 is a header when a cell of it is not a number above a column of numbers.

    A first line of numbers only is data; a first line of text only (or a file of one
    line) is a header.
    """
    first, body = rows[0], rows[1:]
    first_numeric = [_is_number(c, decimal) for c in first]
    if all(first_numeric):
        return False
    if not body or not any(first_numeric):
        return True
    for j, numeric in enumerate(first_numeric):
        column = [row[j] for row in body if j < len(row)]
        if not numeric and column and np.mean([_is_number(c, decimal) for c in column]) > 0.5:
            return True
    return False


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputValueError(f"data file '{path}' does not exist; check the path.")
    if path.is_dir():
        raise InputValueError(f"data file '{path}' is a directory; pass the path of a CSV file.")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise InputValueError(f"data file '{path}' cannot be read ({exc.strerror}).") from None
    if not head.strip():
        raise InputValueError(f"data file '{path}' is empty; it needs a header row and data rows.")
    if b"\x00" in head:
        raise InputValueError(
            f"data file '{path}' is binary, not a text CSV file; export the data as CSV."
        )


def _shown(lines) -> str:
    lines = list(lines)
    return ", ".join(str(n) for n in lines[:10]) + (", ..." if len(lines) > 10 else "")


def check_columns(wanted, names, source: str) -> None:
    """Refuse column names that ``names`` lacks, listing those it has.

    The one check of a ``columns`` choice, for CSV files, DataFrames and lazy sources;
    the message spells the option as the caller does (``columns=[...]`` or ``--columns``).
    """
    missing = [c for c in wanted if c not in names]
    if missing:
        shown = [str(c) for c in names]
        example = option("columns", repr(shown[:2]), ",".join(shown[:2]))
        raise InputValueError(
            f"column(s) {missing} not found in {source}; available columns: {shown}. "
            f"Pass existing names with {example}."
        )


def _is_identifier(name: str, values: pd.Series) -> bool:
    """A name like ``id`` (see ``_ID_NAME``), or integers running up by one down the file.

    A run 1, 2, 3, ... (or 0, 1, 2, ...; any start) of at least 3 rows in file order is a
    row number, not a measurement; unique integers in another order (counts, years) are
    kept.
    """
    if _ID_NAME.match(name.strip()):
        return True
    v = values.dropna().to_numpy(dtype=np.float64)
    return len(v) >= 3 and bool(np.all(v == np.round(v)) and np.all(np.diff(v) == 1))


def _choose(
    df: pd.DataFrame, columns, exclude, path: Path
) -> tuple[list[str], dict[str, str], list[str]]:
    """The columns to use, those left out (and why), and notes on kept oddities."""
    names = [str(c) for c in df.columns]
    skipped: dict[str, str] = {}
    notes: list[str] = []
    excluded = [] if exclude is None else [exclude] if isinstance(exclude, str) else list(exclude)
    unknown = [c for c in excluded if c not in names]
    if unknown:
        raise InputValueError(
            f"column(s) {unknown} to exclude are not in '{path}'; its columns are {names}. "
            f"Name existing columns: {option('exclude', repr(names[:1]), names[0])}."
        )
    for c in excluded:
        skipped[c] = "excluded"

    def numeric(c: str) -> bool:
        dtype = df[c].dtype
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)

    example = option("columns", repr(names[:2]), ",".join(names[:2]))
    if columns is not None:
        columns = [columns] if isinstance(columns, str) else [str(c) for c in columns]
        check_columns(columns, names, f"'{path}'")
        text = [c for c in columns if not numeric(c)]
        if text:
            examples = {c: df[c].dropna().iloc[0] if df[c].notna().any() else None for c in text}
            raise InputTypeError(
                f"non-numeric column(s) {text} in '{path}' (first values: {examples}); choose "
                f"numeric columns with {option('columns', '[...]', 'a,b')}, or convert them "
                f"to numbers."
            )
        used = [c for c in columns if c not in excluded]
        for c in used:
            if _is_identifier(c, df[c]):
                notes.append(f"column '{c}' looks like an identifier; kept because it was named")
            elif df[c].nunique(dropna=True) <= 1:
                notes.append(f"column '{c}' is constant; kept because it was named")
        return used, skipped, notes
    used = []
    for c in names:
        if c in skipped:
            continue
        if not numeric(c):
            skipped[c] = "text"
        elif _is_identifier(c, df[c]):
            skipped[c] = "identifier"
        elif df[c].nunique(dropna=True) <= 1:
            skipped[c] = "constant"
        else:
            used.append(c)
    why = {
        "text": "text, not numbers",
        "identifier": "looks like an identifier (its name, or 1, 2, 3, ... down the file)",
        "constant": "constant (one value: no information on clusters)",
        "excluded": "excluded",
    }
    for c, reason in skipped.items():
        if reason != "excluded":
            value = df[c].dropna().iloc[0] if df[c].notna().any() else None
            value = value.item() if isinstance(value, np.generic) else value  # 1, not np.int64(1)
            notes.append(f"left out column '{c}': {why[reason]}, e.g. {value!r}")
    if not used:
        raise InputValueError(
            f"no column of '{path}' is left to fit: {skipped or 'none'}; name the columns "
            f"to use with {example}."
        )
    if any(r != "excluded" for r in skipped.values()):
        notes.append(f"(name columns with {option('columns', '[...]', 'a,b')} to choose them)")
    return used, skipped, notes


def read_csv(
    path,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    header: bool | None = None,
    columns=None,
    exclude=None,
    dropna: bool = False,
    keep_missing: bool = False,
) -> CSVTable:
    """Read a CSV file for fitting: detect its format, choose its columns, say what was done.

    Parameters
    ----------
    path : str or PathLike
        The file (UTF-8, a byte-order mark allowed).
    sep : str, optional
        The separator; detected among ``,`` ``;`` tab ``|`` when omitted: the one that
        splits every line into the same number of fields whose cells are most often
        numbers. A tie is refused with the options to choose.
    decimal : {".", ","}, optional
        The decimal mark; detected when omitted (``.`` with ``,`` as separator; otherwise
        ``,`` when numbers are written like ``5,1``). Both marks in one file are refused.
    header : bool, optional
        Whether line 1 holds the column names; detected when omitted: yes when a cell of
        line 1 is not a number above a column of numbers (or line 1 is all text), no when
        line 1 is all numbers. Without a header the columns are ``x0, x1, ...``.
    columns : str or list of str, optional
        The columns to use, in that order (all of them must be numeric). By default every
        numeric column that is not an identifier (a name such as ``id``, ``*_id``,
        ``index``, or integers running up by one down the file) or constant; text columns
        are left out too. What is left out is in ``skipped`` and ``notes``.
    exclude : str or list of str, optional
        Columns to leave out.
    dropna : bool, default False
        Leave out rows with a missing value in a used column (their lines are in
        ``dropped_lines``); otherwise they are refused with their line numbers.
    keep_missing : bool, default False
        Keep empty cells as missing values (NaN in ``frame``), for EM's ``missing="em"``;
        a line with no used value is refused with its line number.

    Returns
    -------
    CSVTable
        The numbers to fit and what was decided.

    Raises
    ------
    InputValueError
        A missing, empty, binary or unparsable file; an ambiguous format; unknown
        columns; missing values (without ``dropna`` or ``keep_missing``); infinite values.
    InputTypeError
        A text column named in ``columns``.
    """
    path = Path(path)
    _check_file(path)
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        raise InputValueError(
            f"sep must be one character, got {sep!r}; e.g. {option('sep', repr(';'), "';'")}."
        )
    if decimal not in (None, ".", ","):
        raise InputValueError(f"decimal must be '.' or ',', got {decimal!r}.")
    detected = []
    lines = _sample(path)
    if sep is None:
        sep = _detect_sep(lines, path)
        detected.append("sep")
    rows = _fields(lines, sep)
    if sep == decimal:
        raise InputValueError(
            f"the separator and the decimal mark are both {sep!r}; give "
            f"{option('decimal', repr('.'), '.')} or another separator."
        )
    if decimal is None:
        cells = [c for row in rows[1:] for c in row] or [c for row in rows for c in row]
        decimal = _detect_decimal(cells, sep, path)
        detected.append("decimal")
    if header is None:
        header = _detect_header(rows, decimal)
        detected.append("header")
        if (
            sep == ","
            and not header
            and "sep" in detected
            and all(len(r) == 2 for r in rows)
            and all(re.fullmatch(r"[+-]?\d+", r[0].strip()) for r in rows)
            and all(re.fullmatch(r"\d+", r[1].strip()) for r in rows)
        ):
            raise InputValueError(
                f"data file '{path}' holds lines like {lines[0]!r}: two integer columns "
                f"separated by ',', or one column of numbers with a decimal comma; say which: "
                f"{option('sep', repr(','), "','")} or {option('decimal', repr(','), ',')}."
            )
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            decimal=decimal,
            header=0 if header else None,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputValueError(
            f"data file '{path}' could not be parsed as CSV ({exc}); "
            f"check the separator ({option('sep', repr(';'), "';'")}) and that every row "
            f"has the same number of fields."
        ) from None
    if not header:
        df.columns = [f"x{j}" for j in range(df.shape[1])]
    line_numbers = np.arange(len(df)) + (2 if header else 1)
    blank = df.isna().all(axis=1).to_numpy() & _blank_lines(path, line_numbers)
    df, line_numbers = df.loc[~blank].reset_index(drop=True), line_numbers[~blank]
    if df.empty:
        raise InputValueError(
            f"data file '{path}' is empty: 0 sample(s) (shape=(0, {df.shape[1]})) under its "
            f"header line; it needs data rows."
        )
    used, skipped, notes = _choose(df, columns, exclude, path)
    frame = df[used].astype(np.float64)
    missing = frame.isna().any(axis=1).to_numpy()
    infinite = np.isinf(frame.to_numpy()).any(axis=1)
    if infinite.any():
        cols = [c for c in used if np.isinf(frame[c]).any()]
        raise InputValueError(
            f"data file '{path}' has infinite values on {infinite.sum()} line(s) "
            f"({_shown(line_numbers[infinite])}) in column(s) {cols}; correct or remove them."
        )
    dropped: tuple[int, ...] = ()
    if missing.any() and keep_missing and not dropna:
        empty = frame.isna().all(axis=1).to_numpy()
        if empty.any():
            raise InputValueError(
                f"data file '{path}' has no value in the columns used on {empty.sum()} "
                f"line(s) ({_shown(line_numbers[empty])}): such a row says nothing about "
                f"any feature; leave those lines out, or fill them in the file."
            )
        cells = int(frame.isna().to_numpy().sum())
        notes.append(
            f"{cells} missing value(s) on {missing.sum()} line(s) "
            f"({_shown(line_numbers[missing])}), kept as missing"
        )
    elif missing.any():
        cols = [c for c in used if frame[c].isna().any()]
        where = f"{missing.sum()} line(s) ({_shown(line_numbers[missing])})"
        if not dropna:
            raise InputValueError(
                f"data file '{path}' has missing values on {where} in column(s) {cols}; "
                f"fit them with {option('missing', repr('em'), 'em')} (EM under missing "
                f"at random), leave those rows out with {option('dropna')}, or fill them "
                f"in the file."
            )
        dropped = tuple(int(n) for n in line_numbers[missing])
        notes.append(f"left out {where} with missing values in column(s) {cols}")
        frame, line_numbers = frame.loc[~missing].reset_index(drop=True), line_numbers[~missing]
    return CSVTable(
        frame=frame,
        path=str(path),
        sep=sep,
        decimal=decimal,
        header=bool(header),
        detected=tuple(detected),
        line_numbers=line_numbers,
        skipped=skipped,
        dropped_lines=dropped,
        notes=tuple(notes),
    )


def _blank_lines(path: Path, line_numbers: np.ndarray) -> np.ndarray:
    """Which of ``line_numbers`` are empty lines of the file (whitespace only)."""
    blank = set()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                blank.add(n)
    return np.isin(line_numbers, list(blank))
