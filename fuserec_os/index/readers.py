"""Read catalog/event tables (CSV, TSV, JSON Lines, JSON arrays, Parquet; csv/json may be .gz).

Every format is turned into the same thing, an iterable of ``(row_number, row_dict)``, so the
validation and bulk-indexing code never cares where rows came from. Reading is chunked so a
100k-row catalog is never fully in memory, and values are handed over raw (CSV cells stay
strings, a JSON ``NaN`` stays NaN) because deciding what a value means is the validator's job,
which can then explain it.

One rule for empty input, whatever the format: a file without a single row (empty, only a CSV
header, only blank lines, ``[]``, a Parquet file with no rows) is an InputFileError ("FILE has no
rows"), raised before anything is written. A JSON line that cannot be parsed (malformed, not an
object, nested too deeply) is a row carrying the reason and its raw text, so one bad line is one
reject, not a failed file.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd
from tqdm import tqdm

from fuserec_os.errors import InputFileError
from fuserec_os.index.validate import PARSE_ERROR_KEY, PRODUCT_FIELDS, RAW_LINE_KEY

__all__ = [
    "FORMATS_BY_EXTENSION",
    "PARSE_ERROR_KEY",
    "RAW_LINE_KEY",
    "TableReader",
    "check_constants",
    "detect_format",
    "fix_the_input",
    "no_rows_error",
    "parse_column_map",
    "parse_constants",
    "read_rows",
]

#: Extension -> format name. ".json" is read as JSON Lines unless the file is one JSON array.
FORMATS_BY_EXTENSION: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_GZIP_FORMATS = frozenset({"csv", "tsv", "jsonl"})
_MAP_EXAMPLE = "expected field=column[,field=column...], e.g. --map title=name,brand=manufacturer"


# --- column map -------------------------------------------------------------------------------
def parse_column_map(spec: str | None, allowed: Iterable[str] = PRODUCT_FIELDS) -> dict[str, str]:
    """Parse ``--map title=name,brand=manufacturer`` into ``{our_field: their_column}``.

    ``allowed`` is the set of our field names, passed in so other ingests (e.g. events) can reuse
    this with their own fields. Errors name the offending item, because a typo in one of several
    items is otherwise hard to spot. A column may be several columns joined with ``+``
    (``description=short_desc+long_desc``); the reader checks them against the file and the
    fields that can take several columns (see :class:`TableReader`).
    """
    if spec is None or not spec.strip():
        return {}
    allowed_names = tuple(allowed)
    mapping: dict[str, str] = {}
    for raw_item in spec.split(","):
        item = raw_item.strip()
        if not item:
            continue
        field, sep, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise InputFileError(f"--map item {item!r} is not field=column ({_MAP_EXAMPLE})")
        if field not in allowed_names:
            raise InputFileError(
                f"--map item {item!r}: {field!r} is not a field we know (expected one of: {', '.join(allowed_names)})"
            )
        if field in mapping:
            raise InputFileError(
                f"--map item {item!r}: field {field!r} is already mapped to column {mapping[field]!r} "
                "(map each field at most once)"
            )
        mapping[field] = column
    return mapping


def parse_constants(
    items: Iterable[str], allowed: Iterable[str], *, not_settable: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Parse repeated ``--set field=value`` into ``{our_field: value}``: one value for a column the file lacks
    (``--set type=click``, ``--set source=web``). The value is validated like a cell by the ingest that uses it.

    ``not_settable`` names fields that cannot be one constant, with why (an id differs on every row).
    """
    allowed_names = tuple(allowed)
    refused = dict(not_settable or {})
    constants: dict[str, str] = {}
    for raw_item in items:
        item = raw_item.strip()
        field, sep, value = item.partition("=")
        field, value = field.strip(), value.strip()
        if not sep or not field or not value:
            raise InputFileError(f"--set {item!r} is not field=value (e.g. --set type=click)")
        if field not in allowed_names:
            settable = [f for f in allowed_names if f not in refused]
            raise InputFileError(
                f"--set {item}: {field!r} is not a field we know (expected one of: {', '.join(settable)})"
            )
        if field in refused:
            raise InputFileError(f"--set {item}: {field} cannot be one value for every row ({refused[field]})")
        if field in constants:
            raise InputFileError(f"--set {item}: {field} is already set to {constants[field]!r} (set it once)")
        constants[field] = value
    return constants


def check_constants(
    constants: Mapping[str, Any], normalize: Callable[[Mapping[str, Any]], tuple[Any, list[str]]]
) -> None:
    """Validate ``--set`` values as cells of a row holding only them (``normalize`` is the ingest's row
    validator): a bad value is an InputFileError naming it and what would be valid, before anything is read."""
    if not constants:
        return
    _, reasons = normalize(dict(constants))
    for reason in reasons:
        field, _, why = reason.partition(":")
        if field in constants:
            raise InputFileError(f"--set {field}={constants[field]}: {why.strip()}")


def _join_values(values: Iterable[Any], sep: str) -> str | None:
    """Several cells as one text value: the non-empty ones (list items flattened), in order, joined by ``sep``;
    None when every one is empty, so the field counts as absent like an empty cell."""
    parts: list[str] = []
    for value in values:
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is None or (isinstance(item, float) and item != item):  # None or NaN: no value
                continue
            text = item.strip() if isinstance(item, str) else str(item)
            if text:
                parts.append(text)
    return sep.join(parts) if parts else None


# --- format detection -------------------------------------------------------------------------
def _split_extension(path: str | Path) -> tuple[str, bool]:
    name = Path(path).name.lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[:-3]
    return Path(name).suffix, compressed


def _valid_extensions() -> str:
    return ", ".join(FORMATS_BY_EXTENSION) + " (csv/tsv/json/jsonl/ndjson may end in .gz)"


def detect_format(path: str | Path) -> str:
    """Format name from the file extension: "csv", "tsv", "jsonl" or "parquet".

    Extensions, not content sniffing, so the choice is predictable and the error can say exactly
    which names would work.
    """
    extension, compressed = _split_extension(path)
    fmt = FORMATS_BY_EXTENSION.get(extension)
    if fmt is None:
        shown = extension + (".gz" if compressed else "") if extension else "(none)"
        raise InputFileError(
            f"cannot tell the format of {path}: unknown extension {shown!r} (expected one of: {_valid_extensions()})"
        )
    if compressed and fmt not in _GZIP_FORMATS:
        raise InputFileError(
            f"cannot read {path}: {fmt} files cannot be gzip-compressed (expected one of: {_valid_extensions()})"
        )
    return fmt


# --- reader -----------------------------------------------------------------------------------
def no_rows_error(path: Path) -> InputFileError:
    """The one error for input without a single row, whatever the format."""
    return InputFileError(f"{path} has no rows (nothing to ingest)")


class TableReader:
    """Rows of one input file, re-iterable; each pass re-reads the file in bounded chunks.

    ``columns`` are the source columns after applying the column map (for JSON Lines: the keys
    seen in the first chunk, since the full set is only known after reading everything).
    ``total_rows`` is known for Parquet, JSON arrays and JSON Lines files that fit in one chunk,
    else None: counting would mean reading a big CSV twice.
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        column_map: Mapping[str, str] | None,
        chunk_size: int,
        joiners: Mapping[str, str] | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.path = path
        self.format = fmt
        self.compressed = path.name.lower().endswith(".gz")
        self.chunk_size = chunk_size
        self.total_rows: int | None = None
        self._json_array: list[Any] | None = None
        self._first_chunk: list[tuple[int, dict[str, Any]]] = []
        self._lines_in_first_chunk = 0
        self._first_chunk_is_all = False
        if fmt in ("csv", "tsv"):
            source_columns = self._csv_columns()
        elif fmt == "parquet":
            source_columns = self._parquet_columns()
        else:
            source_columns = self._json_columns()
        self.source_columns = source_columns
        if self.total_rows == 0:
            raise no_rows_error(path)
        self._configure_map(dict(column_map or {}), dict(joiners or {}), dict(constants or {}))

    # -- column map ---------------------------------------------------------------------------
    def _configure_map(self, column_map: dict[str, str], joiners: dict[str, str], constants: dict[str, Any]) -> None:
        """Work out once how a source row becomes an output row, so per-row work stays tiny.

        Their column is renamed to our field (copied if mapped to several fields). A source column
        that already carries the name of a mapped field is dropped, as the map says the data for
        that field lives elsewhere and keeping both would silently pick one. A field mapped to
        ``a+b`` (only the fields in ``joiners``, each with its separator) gets the non-empty values
        of those columns joined; the columns themselves are then not reported as unknown. A field in
        ``constants`` gets that value on every row; the file must not have a column for it too.
        """
        present = set(self.source_columns)
        listing = ", ".join(self.source_columns) or "(none)"
        singles: dict[str, str] = {}
        combined: dict[str, tuple[str, ...]] = {}
        for field, column in column_map.items():
            if column in present:
                singles[field] = column
                continue
            parts = tuple(part.strip() for part in column.split("+"))
            if len(parts) < 2 or not all(parts):
                raise InputFileError(
                    f"--map {field}={column}: column {column!r} is not in {self.path} (its columns: {listing})"
                )
            missing = [part for part in parts if part not in present]
            if missing:
                raise InputFileError(
                    f"--map {field}={column}: column(s) {', '.join(repr(m) for m in missing)} not in {self.path} "
                    f"(its columns: {listing})"
                )
            if field not in joiners:
                can = ", ".join(joiners) if joiners else "no field of this file"
                raise InputFileError(
                    f"--map {field}={column}: {field} takes one column; several columns joined with + can fill {can}"
                )
            combined[field] = parts
        for field in constants:
            if field in column_map:
                raise InputFileError(
                    f"--set {field}=... and --map {field}={column_map[field]}: give {field} one source, a column or "
                    "a value"
                )
        targets: dict[str, list[str]] = {}
        for field, column in singles.items():
            targets.setdefault(column, []).append(field)
        self._targets = {column: tuple(fields) for column, fields in targets.items()}
        self._shadowed = frozenset(f for f, c in column_map.items() if f != c) - set(targets)
        self._combined = tuple((field, parts, joiners[field]) for field, parts in combined.items())
        self._constants = dict(constants)
        self._identity = not column_map and not constants
        plan: list[tuple[str, int]] = []
        for index, column in enumerate(self.source_columns):
            if column in self._shadowed:
                continue
            for name in self._targets.get(column, (column,)):
                plan.append((name, index))
        self._plan = plan
        position = {column: i for i, column in enumerate(self.source_columns)}
        self._combined_at = tuple(
            (field, tuple(position[p] for p in parts), sep) for field, parts, sep in self._combined
        )
        self.columns = [name for name, _ in plan] + [field for field, _, _ in self._combined]
        clash = [field for field in constants if field in self.columns]
        if clash:
            field = clash[0]
            raise InputFileError(
                f"--set {field}={constants[field]}: {self.path} has a column {field!r} already (drop --set {field}, "
                f"or --map {field} from the column you mean)"
            )
        self.columns += list(constants)
        used = {column for _, parts, _ in self._combined for column in parts}
        #: Source columns read only to be joined into a field (not "unknown", though not fields themselves).
        self.joined_columns = frozenset(used - set(self._targets))

    def unknown_columns(self, fields: Iterable[str]) -> list[str]:
        """Output columns that are none of ``fields`` (reported as ignored), leaving out joined source columns."""
        known = set(fields)
        return sorted(c for c in set(self.columns) - known if c not in self.joined_columns)

    def _remap(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Rename one free-form (JSON) row; always a new dict. Values are kept as parsed (NaN too)."""
        if self._identity:
            return dict(row)
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key in self._shadowed:
                continue
            names = self._targets.get(key)
            if names is None:
                out[key] = value
            else:
                for name in names:
                    out[name] = value
        for field, parts, sep in self._combined:
            out[field] = _join_values((row.get(part) for part in parts), sep)
        out.update(self._constants)
        return out

    def _rows_from_columns(self, data: list[list[Any]]) -> Iterator[dict[str, Any]]:
        """Zip column lists into row dicts following the plan (fast path for tabular formats)."""
        if self._identity:
            names = self.columns
            for values in zip(*data, strict=True):
                yield dict(zip(names, values, strict=True))
        else:
            plan, combined, constants = self._plan, self._combined_at, self._constants
            for values in zip(*data, strict=True):
                row = {name: values[index] for name, index in plan}
                for field, indices, sep in combined:
                    row[field] = _join_values((values[i] for i in indices), sep)
                row.update(constants)
                yield row

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self.format in ("csv", "tsv"):
            return self._iter_csv()
        if self.format == "parquet":
            return self._iter_parquet()
        return self._iter_json()

    # -- CSV / TSV ----------------------------------------------------------------------------
    def _csv_options(self) -> dict[str, Any]:
        # dtype=str and no NA conversion: the validator must see "N/A" or "" exactly as written.
        return {
            "sep": "\t" if self.format == "tsv" else ",",
            "dtype": str,
            "keep_default_na": False,
            "na_filter": False,
            "encoding": "utf-8-sig",
            "compression": "gzip" if self.compressed else None,
        }

    def _csv_error(self, exc: Exception) -> InputFileError:
        if isinstance(exc, UnicodeDecodeError):
            detail = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        elif isinstance(exc, pd.errors.EmptyDataError):
            return no_rows_error(self.path)
        else:
            detail = str(exc).strip()
        return InputFileError(f"cannot read {self.format.upper()} file {self.path}: {detail}")

    def _csv_columns(self) -> list[str]:
        try:  # the header and the first row: a file with no row is refused before anything is written
            head = pd.read_csv(self.path, nrows=1, **self._csv_options())
        except (ValueError, OSError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
            raise self._csv_error(exc) from exc
        if head.empty:
            self.total_rows = 0
        return [str(column).strip() for column in head.columns]

    def _iter_csv(self) -> Iterator[tuple[int, dict[str, Any]]]:
        row_number = 0
        try:
            with pd.read_csv(self.path, chunksize=self.chunk_size, **self._csv_options()) as chunks:
                for chunk in chunks:
                    data = [chunk[column].tolist() for column in chunk.columns]
                    for row in self._rows_from_columns(data):
                        row_number += 1
                        yield row_number, row
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise self._csv_error(exc) from exc

    # -- Parquet ------------------------------------------------------------------------------
    def _open_parquet(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for bad files
            raise InputFileError(f"cannot read Parquet file {self.path}: {exc}") from exc

    def _parquet_columns(self) -> list[str]:
        with self._open_parquet() as parquet:
            self.total_rows = int(parquet.metadata.num_rows)
            return [str(name) for name in parquet.schema_arrow.names]

    def _iter_parquet(self) -> Iterator[tuple[int, dict[str, Any]]]:
        row_number = 0
        with self._open_parquet() as parquet:
            for batch in parquet.iter_batches(batch_size=self.chunk_size):
                # A null is None; a NaN stays NaN, for the validator to reject (pandas writes its NaN as null).
                data = list(batch.to_pydict().values())
                for row in self._rows_from_columns(data):
                    row_number += 1
                    yield row_number, row

    # -- JSON Lines / JSON array --------------------------------------------------------------
    def _open_binary(self) -> gzip.GzipFile | io.BufferedReader:
        try:
            if self.compressed:
                return gzip.open(self.path, "rb")
            return open(self.path, "rb")  # the callers close it with "with"
        except OSError as exc:
            raise InputFileError(f"cannot open {self.path}: {exc.strerror or exc}") from exc

    def _starts_with_array(self) -> bool:
        """A .json file may hold one array of objects instead of one object per line."""
        try:
            with self._open_binary() as stream:
                head = stream.read(4096)
                while head and not head.strip():
                    head = stream.read(4096)
        except (OSError, EOFError) as exc:
            raise InputFileError(f"cannot read {self.path}: {exc}") from exc
        return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")

    def _parse_line(self, raw: bytes, line_number: int) -> dict[str, Any] | None:
        """One JSON line; a broken line becomes a parse-error row (the reason and the raw text) instead of
        aborting the file."""
        try:
            text = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            return _unparseable(
                f"line {line_number}: not UTF-8 text ({exc.reason})", raw.decode("utf-8", "backslashreplace")
            )
        if not text.strip():
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            column = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            return _unparseable(f"line {line_number}: {reason}{column}", text)
        except RecursionError:
            return _unparseable(f"line {line_number}: {_TOO_DEEP}", text)
        if not isinstance(value, dict):
            return _unparseable(f"line {line_number}: expected a JSON object, got {type(value).__name__}", text)
        return value

    def _json_columns(self) -> list[str]:
        if self.path.name.lower().removesuffix(".gz").endswith(".json") and self._starts_with_array():
            return self._load_json_array()
        seen: dict[str, None] = {}
        rows: list[tuple[int, dict[str, Any]]] = []
        lines = 0
        try:
            with self._open_binary() as stream:
                for raw in stream:
                    lines += 1
                    row = self._parse_line(raw, lines)
                    if row is None:
                        continue
                    rows.append((len(rows) + 1, row))
                    if PARSE_ERROR_KEY not in row:
                        seen.update(dict.fromkeys(row))
                    if len(rows) >= self.chunk_size:
                        break
                else:
                    self._first_chunk_is_all = True
        except (OSError, EOFError) as exc:
            raise InputFileError(f"cannot read {self.path}: {exc}") from exc
        self._first_chunk = rows
        self._lines_in_first_chunk = lines
        if self._first_chunk_is_all:
            self.total_rows = len(rows)
        return list(seen)

    def _load_json_array(self) -> list[str]:
        try:
            with self._open_binary() as stream:
                data = json.loads(stream.read().decode("utf-8-sig"))
        except (OSError, EOFError) as exc:
            raise InputFileError(f"cannot read {self.path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise InputFileError(f"cannot read {self.path}: not UTF-8 text ({exc.reason})") from exc
        except json.JSONDecodeError as exc:
            raise InputFileError(
                f"cannot read {self.path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg} "
                "(expected one JSON array of objects, or one JSON object per line)"
            ) from exc
        except RecursionError:
            raise InputFileError(
                f"cannot read {self.path}: {_TOO_DEEP} (one JSON object per line makes such a row one reject)"
            ) from None
        if not isinstance(data, list):
            raise InputFileError(f"cannot read {self.path}: expected a JSON array of objects")
        self._json_array = data
        self.total_rows = len(data)
        seen: dict[str, None] = {}
        for item in data[: self.chunk_size]:
            if isinstance(item, dict):
                seen.update(dict.fromkeys(item))
        return list(seen)

    def _iter_json(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self._json_array is not None:
            for number, item in enumerate(self._json_array, start=1):
                if isinstance(item, dict):
                    yield number, self._remap(item)
                else:
                    reason = f"item {number}: expected a JSON object, got {type(item).__name__}"
                    yield number, _unparseable(reason, _json_text(item))
            return
        # The first chunk was parsed already to learn the columns; reuse it, then stream the rest.
        for number, row in self._first_chunk:
            yield number, (row if PARSE_ERROR_KEY in row else self._remap(row))
        if self._first_chunk_is_all:
            return
        row_number = len(self._first_chunk)
        try:
            with self._open_binary() as stream:
                for line_number, raw in enumerate(stream, start=1):
                    if line_number <= self._lines_in_first_chunk:
                        continue
                    parsed = self._parse_line(raw, line_number)
                    if parsed is None:
                        continue
                    row_number += 1
                    yield row_number, (parsed if PARSE_ERROR_KEY in parsed else self._remap(parsed))
        except (OSError, EOFError) as exc:
            raise InputFileError(f"cannot read {self.path}: {exc}") from exc


_TOO_DEEP = "nested too deeply: JSON nested about 1,000 levels or more cannot be read"


def _unparseable(reason: str, raw: str) -> dict[str, Any]:
    """The row a reader yields for input it could not parse: why, and the text as it was (for the rejects file)."""
    return {PARSE_ERROR_KEY: reason, RAW_LINE_KEY: raw.rstrip("\r\n")}


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return repr(value)[:1000]


def read_rows(
    path: str | Path,
    column_map: Mapping[str, str] | None = None,
    *,
    chunk_size: int = 5000,
    joiners: Mapping[str, str] | None = None,
    constants: Mapping[str, Any] | None = None,
) -> TableReader:
    """Open an input table and return its rows as ``(row_number, row_dict)`` pairs.

    Row numbers count data rows from 1 as a person would (the CSV header is not a row), so reject
    reports can be matched against the file. The file is checked (exists, format, header, at least
    one row, mapped columns present) here, before any row is handed out, so a wrong command fails
    fast and an empty file is the same InputFileError in every format.

    ``joiners`` (field -> separator) names the fields a ``column_map`` entry ``a+b`` may fill with
    several columns; ``constants`` (field -> value) sets a field the file has no column for on every row.
    """
    file_path = Path(path)
    if not file_path.exists():
        raise InputFileError(f"input file not found: {file_path}")
    if not file_path.is_file():
        raise InputFileError(f"input path is not a file: {file_path}")
    fmt = detect_format(file_path)
    if file_path.stat().st_size == 0:
        raise no_rows_error(file_path)
    return TableReader(file_path, fmt, column_map, chunk_size, joiners, constants)


def fix_the_input(exc: BaseException) -> str:
    """The start of the advice after a file failed part way: "Fix line N" when the error names the line."""
    match = re.search(r"\bline (\d+)", str(exc))
    return f"Fix line {match.group(1)}" if match else "Fix the file"


def estimate_rows(path: Path, fmt: str) -> int | None:
    """Line count of an uncompressed text file, for the progress bar only (fast: ~1 GB/s; CSV header off)."""
    if path.name.lower().endswith(".gz") or fmt not in ("csv", "tsv", "jsonl"):
        return None
    lines = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(lines - (1 if fmt in ("csv", "tsv") else 0), 0)


def progress_bar(reader: TableReader, source: Path, enabled: bool, file: IO[str] | None = None) -> tqdm[Any]:
    """The progress bar every file ingest shows (rows read; the total estimated when the reader cannot tell)."""
    return tqdm(
        total=reader.total_rows or estimate_rows(source, reader.format),
        unit="rows",
        desc=f"ingest {source.name}",
        disable=not enabled,
        file=file or sys.stderr,
        mininterval=0.2,
    )
