"""Normalise and validate one catalog row into a product document (pure: no I/O, no engine).

The product index mapping is ``dynamic: strict``, so anything we send must already have the
right keys and types; a bad row would otherwise fail a whole bulk request far from its source.
Doing the checks here, per row, lets the CLI reject exactly the bad rows and tell the user, for
each one, every field that is wrong and what would have been accepted.

Input comes from CSV (all strings), JSON Lines (mixed JSON types), Parquet (native types incl.
numpy/Decimal/datetime) and pandas, so every parser accepts all of those spellings of a value.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = [
    "MAX_ID_BYTES",
    "MAX_POPULARITY",
    "MAX_PRICE",
    "PARSE_ERROR_KEY",
    "PRODUCT_FIELDS",
    "RAW_LINE_KEY",
    "REQUIRED_FIELDS",
    "InvalidValue",
    "check_at_most",
    "format_bound",
    "is_missing",
    "normalize_product",
    "parse_datetime",
    "parse_identifier",
    "parse_non_negative",
    "parse_number",
    "parse_whole_number",
    "show_value",
]

#: Input columns we understand; anything else in a row is ignored (and reported once by the caller).
#: ``category_path`` is not here on purpose: it is always derived from ``category``.
PRODUCT_FIELDS: tuple[str, ...] = (
    "product_id",
    "title",
    "description",
    "brand",
    "category",
    "price",
    "currency",
    "rating",
    "review_count",
    "in_stock",
    "tags",
    "attributes",
    "image_url",
    "created_at",
    "popularity",
)

#: Fields that several source columns can fill (``--map description=short_desc+long_desc``), with what goes
#: between the non-empty values: text is joined by a space, a category path by " > ", tags by "|".
PRODUCT_JOINERS: dict[str, str] = {"title": " ", "description": " ", "category": " > ", "tags": "|"}

#: Fields without which a document is useless for search (no id to upsert by, nothing to match).
REQUIRED_FIELDS: tuple[str, ...] = ("product_id", "title")

#: Key a reader puts in a row it could not parse (e.g. a malformed JSON line); its value says why.
PARSE_ERROR_KEY = "__parse_error__"
#: Key beside :data:`PARSE_ERROR_KEY` holding the unparseable line's text, so the rejects file keeps it.
RAW_LINE_KEY = "__raw_line__"

#: The engine's limit on a document id (OpenSearch: 512 bytes), counted in UTF-8 bytes, not characters: 300
#: accented letters are 600 bytes. Every id (product, event, request, user) is held to it.
MAX_ID_BYTES = 512
#: Default upper bound of a price (catalog and events). Above it a value is a unit or export mistake (cents
#: read as units, a 1e308 placeholder) that would sort first and skew every price facet; ``max_price=`` (the
#: CLI's ``--max-price``) raises it.
MAX_PRICE = 10_000_000.0
#: Default upper bound of ``popularity`` (a score or a count): ``max_popularity=`` raises it.
MAX_POPULARITY = 1e12
_MAX_SHOWN = 60
_INT_MAX = 2**31 - 1  # the mapping's ``integer`` type

# --- precompiled patterns (compiled once: this runs for every row of big catalogs) -------------
_BLOCK_TAGS = (
    "br|p|div|li|ul|ol|tr|td|th|h[1-6]|table|thead|tbody|tfoot|section|article|header|footer|hr"
    "|dd|dt|dl|blockquote|pre|nav|aside|figure|figcaption|caption|main|address"
)
# Markup that separates words (comments, script/style with their content, block tags): one pass.
_SPACE_MARKUP_RE = re.compile(
    rf"<!--.*?(?:-->|\Z)|<(script|style)\b[^>]*>.*?</\1\s*>|</?(?:{_BLOCK_TAGS})\b[^>]*>",
    re.IGNORECASE | re.DOTALL,
)
# A tag must start with a letter (or be a declaration), so "a < b" or "5<6" survive as text.
_ANY_TAG_RE = re.compile(r"</?[A-Za-z][^>]*>|<![^>]*>|<\?[^>]*>")
_GROUPED_NUMBER_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_ATTR_SEPARATOR_RE = re.compile(r"[:=]")
_NUMERIC_STRING_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CURRENCY_CODE_RE = re.compile(r"[A-Za-z]{3}")
_URL_RE = re.compile(r"https?://[^\s/?#]\S*", re.IGNORECASE)
_TZ_NAME_SUFFIX_RE = re.compile(r"\s*(?:UTC|GMT)$")
_TAG_SPLIT_RE = re.compile(r"[|,]")
_ATTR_SPLIT_RE = re.compile(r"[|;]")

_CURRENCY_SYMBOLS = "$€£"
_TRUE_WORDS = frozenset({"yes", "true", "y", "1"})
_FALSE_WORDS = frozenset({"no", "false", "n", "0"})
# Spreadsheet/pandas spellings of "no value"; only treated as absent in typed (non-text) fields,
# where they can never be a real value, so a brand literally called "None" is still kept.
_NULL_WORDS = frozenset({"nan", "null", "none", "n/a", "na", "nat"})
# In number fields "NaN" is a value someone wrote (a JSON NaN, a NaN in Parquet, "NaN" in a cell), not an empty
# cell: it is rejected, never dropped silently.
_NUMBER_NULL_WORDS = _NULL_WORDS - {"nan"}
_NA_TYPE_NAMES = frozenset({"NAType", "NaTType"})

_EXPECT_NUMBER = "expected e.g. 19.99"
_NAN_REASON = "is not a finite number (leave it empty when there is no value; expected e.g. 19.99)"
_EXPECT_BOOL = "expected yes/no/true/false/1/0"
_EXPECT_DATE = "expected ISO 8601 e.g. 2024-05-01T12:00:00Z, or epoch seconds/milliseconds"
_EXPECT_ATTR = "expected key:value or key=value, e.g. color:red"


class InvalidValue(ValueError):
    """A field value that cannot be used; the message is the reason without the field name."""


_Invalid = InvalidValue  # the short internal name used throughout this module


def _show(value: Any) -> str:
    """Quote a bad value for a reason, short enough that one broken cell cannot flood the report."""
    if isinstance(value, str):
        return repr(value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 3] + "...")
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _is_absent(value: Any) -> bool:
    """None, NaN, pd.NA/NaT and blank strings all mean "no value" whatever the source format."""
    kind = type(value)
    if kind is str:
        return not value or value.isspace()
    if kind is float:
        return value != value
    if value is None:
        return True
    if kind is int or kind is bool:
        return False
    if isinstance(value, (float, np.floating)):
        return bool(value != value)
    if isinstance(value, (list, tuple, dict, set, np.ndarray)):
        return len(value) == 0
    return kind.__name__ in _NA_TYPE_NAMES


def _format_number(value: Any) -> str:
    """Numbers used as text: 123.0 (what pandas makes of an int column with gaps) becomes "123"."""
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if f.is_integer() and abs(f) < 1e16:
            return str(int(f))
        return repr(f)
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    return str(int(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating, Decimal)) and not isinstance(value, (bool, np.bool_))


# --- text -------------------------------------------------------------------------------------
def clean_text(text: str) -> str:
    """Strip HTML and collapse whitespace: catalogs are often exported from CMS fields with markup.

    Block tags become a space so "a<br>b" does not glue words together; inline tags vanish so
    "<b>Blue</b>berry" stays one word. Entities are unescaped after the tags are gone, so an
    escaped "&lt;b&gt;" is kept as literal text rather than being stripped as markup.
    """
    if "<" in text:
        text = _ANY_TAG_RE.sub("", _SPACE_MARKUP_RE.sub(" ", text))
    if "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())


def _parse_text(value: Any) -> str | None:
    if isinstance(value, str):
        return clean_text(value) or None
    if _is_number(value):
        return _format_number(value)
    raise _Invalid(f"{_show(value)} is not text (expected a string)")


def parse_identifier(value: Any, example: str = "SKU-123") -> str | None:
    """An id from text or a number (123.0 becomes "123"); None when blank. ``example`` goes into the reason.

    At most :data:`MAX_ID_BYTES` UTF-8 bytes: the engine refuses a longer ``_id`` (and with it, a whole bulk
    request), so the row is rejected here with the count instead.
    """
    if isinstance(value, str):
        pid = value.strip()
    elif _is_number(value):
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            raise _Invalid(f"{_show(value)} is not a valid id (expected e.g. {example} or 123)")
        pid = _format_number(value)
    else:
        raise _Invalid(f"{_show(value)} is not a valid id (expected a string or integer, e.g. {example})")
    if not pid:
        return None
    # At most 4 bytes per character: only long ids need encoding to be measured.
    if len(pid) > MAX_ID_BYTES // 4 and (size := len(pid.encode("utf-8", "surrogatepass"))) > MAX_ID_BYTES:
        raise _Invalid(
            f"{size} bytes, at most {MAX_ID_BYTES} (the engine's limit on ids, counted in UTF-8: "
            f"{len(pid)} characters, {_show(pid)})"
        )
    return pid


def _parse_product_id(value: Any) -> str | None:
    return parse_identifier(value)


# --- category ---------------------------------------------------------------------------------
def _parse_category(value: Any) -> str | None:
    """Normalise to "a > b > c"; splitting on ">" only, because "/" appears in real names (TV/Audio)."""
    if isinstance(value, str):
        if "&" in value:  # before splitting, so an escaped "&gt;" separates levels too
            value = html.unescape(value)
        parts: Iterable[Any] = value.split(">")
    elif isinstance(value, (list, tuple, np.ndarray)):
        parts = value
    else:
        raise _Invalid(f"{_show(value)} is not a category path (expected e.g. 'Home > Kitchen > Knives')")
    cleaned = []
    for part in parts:
        if type(part) is not str:
            if _is_absent(part):
                continue
            if not isinstance(part, str):
                raise _Invalid(f"{_show(value)} is not a category path (expected e.g. 'Home > Kitchen')")
        name = " ".join(part.split())
        if name:
            cleaned.append(name)
    return " > ".join(cleaned) or None


def category_ancestors(category: str) -> list[str]:
    """Every ancestor path of a normalised category, so a filter on "a > b" matches "a > b > c"."""
    parts = category.split(" > ")
    return [" > ".join(parts[: i + 1]) for i in range(len(parts))]


# --- numbers ----------------------------------------------------------------------------------
def _to_float(value: Any) -> float:
    """Parse a number from a JSON/Parquet number or a CSV string such as "$1,299.00"."""
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
    elif kind is str:
        try:  # the common case, "19.99"; the checks below reject "nan"/"inf"/"1_000"
            number = float(value)
        except ValueError:
            pass
        else:
            if "_" not in value and math.isfinite(number):
                return number
            if number != number:
                raise _Invalid(f"{_show(value)} {_NAN_REASON}")
        text = value.strip()
        sign = ""
        if text[:1] in "+-" and text[1:2] and text[1:2] in _CURRENCY_SYMBOLS:
            sign, text = text[0], text[1:]
        if text[:1] and text[:1] in _CURRENCY_SYMBOLS:
            text = text[1:].lstrip()
        text = sign + text
        if "," in text:
            if not _GROUPED_NUMBER_RE.fullmatch(text):
                raise _Invalid(f"{_show(value)} is not a number ({_EXPECT_NUMBER})")
            text = text.replace(",", "")
        if not _NUMERIC_STRING_RE.fullmatch(text):
            raise _Invalid(f"{_show(value)} is not a number ({_EXPECT_NUMBER})")
        number = float(text)
    elif _is_number(value):
        number = float(value)
    else:
        raise _Invalid(f"{_show(value)} is not a number ({_EXPECT_NUMBER})")
    if not math.isfinite(number):
        if number != number:
            raise _Invalid(f"{_show(value)} {_NAN_REASON}")
        raise _Invalid(f"{_show(value)} is not a finite number ({_EXPECT_NUMBER})")
    return number


def format_bound(bound: float) -> str:
    """A bound as people write it in a reason: 10,000,000 (not 1e7), 0.5."""
    if float(bound).is_integer() and abs(bound) < 1e16:
        return f"{int(bound):,}"
    return f"{bound:g}"


def check_at_most(value: float, raw: Any, bound: float, hint: str) -> float:
    """``value`` when it is at most ``bound``; else InvalidValue naming the bound and ``hint`` (how to raise it)."""
    if value > bound:
        raise _Invalid(f"{_show(raw)} is above the maximum {format_bound(bound)} ({hint})")
    return value


def _parse_non_negative(value: Any) -> float:
    number = _to_float(value)
    if number < 0:
        raise _Invalid(f"{_show(value)} is negative (expected a number >= 0, e.g. 19.99)")
    return number


_PRICE_HINT = "usually a unit or export mistake, and it would sort first; --max-price raises the limit"
_POPULARITY_HINT = "usually an export mistake; max_popularity= raises the limit"


def _parse_rating(value: Any) -> float:
    number = _to_float(value)
    if not 0 <= number <= 5:
        raise _Invalid(f"{_show(value)} is out of range (expected a number from 0 to 5, e.g. 4.5)")
    return number


def parse_whole_number(value: Any, minimum: int = 0) -> int:
    """A whole number >= ``minimum`` that fits the mapping's ``integer`` type ("12", 12.0 and 12 all work)."""
    if type(value) is int or isinstance(value, np.integer):
        count = int(value)
    else:
        number = _to_float(value)
        if not number.is_integer():
            raise _Invalid(f"{_show(value)} is not a whole number (expected an integer >= {minimum}, e.g. 42)")
        count = int(number)
    if count < minimum:
        what = "negative" if minimum == 0 else f"less than {minimum}"
        raise _Invalid(f"{_show(value)} is {what} (expected an integer >= {minimum}, e.g. 42)")
    if count > _INT_MAX:
        raise _Invalid(f"{_show(value)} is too large (expected an integer <= {_INT_MAX})")
    return count


def _parse_count(value: Any) -> int:
    return parse_whole_number(value)


def _parse_currency(value: Any) -> str:
    if isinstance(value, str):
        code = value.strip()
        if _CURRENCY_CODE_RE.fullmatch(code):
            return code.upper()
    raise _Invalid(f"{_show(value)} is not a 3-letter currency code (expected e.g. USD, EUR)")


# --- booleans ---------------------------------------------------------------------------------
def _parse_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    elif _is_number(value) and value in (0, 1):
        return bool(value)
    raise _Invalid(f"{_show(value)} is not a boolean ({_EXPECT_BOOL})")


# --- dates ------------------------------------------------------------------------------------
def _format_utc(moment: datetime) -> str:
    """Naive datetimes are taken as UTC: catalogs rarely say, and guessing local time is worse."""
    offset = moment.utcoffset()
    if offset:
        moment = moment.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031 - measurably faster than an f-string
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )


def _from_epoch(number: float, original: Any) -> datetime:
    """Epoch seconds or milliseconds; > 1e11 can only be ms (1e11 s is the year 5138)."""
    if abs(number) > 1e11:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise _Invalid(f"{_show(original)} is out of range as an epoch timestamp ({_EXPECT_DATE})") from None


def _to_datetime(value: Any) -> datetime:
    """The moment a value names, possibly naive (naive means UTC) or with any offset."""
    if type(value) is str:
        text = value.strip()
        # 8 bare digits are a compact ISO date (20240501), not an epoch before 1973.
        if _NUMERIC_STRING_RE.fullmatch(text) and not (len(text) == 8 and text.isdigit()):
            return _from_epoch(float(text), value)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
        text = _TZ_NAME_SUFFIX_RE.sub("+00:00", text.upper())
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
        raise _Invalid(f"{_show(value)} is not a date ({_EXPECT_DATE})")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise _Invalid(f"{_show(value)} is not a date ({_EXPECT_DATE})")
        whole = value.astype("datetime64[s]")
        seconds = int(whole.astype(np.int64))
        fraction = float((value - whole) / np.timedelta64(1, "us")) / 1e6  # sub-second part, kept for events
        return _from_epoch(float(seconds) + fraction, value)
    if _is_number(value):
        return _from_epoch(float(value), value)
    raise _Invalid(f"{_show(value)} is not a date ({_EXPECT_DATE})")


def parse_datetime(value: Any) -> datetime:
    """A timezone-aware UTC datetime (sub-seconds kept) from every spelling :func:`normalize_product` accepts.

    ISO 8601 with any offset (naive is taken as UTC), epoch seconds or milliseconds (number or text),
    ``datetime``/``date``/``numpy.datetime64``. Raises :class:`InvalidValue` with the reason.
    """
    try:
        moment = _to_datetime(value)
        if moment.utcoffset() is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise _Invalid(f"{_show(value)} is out of range ({_EXPECT_DATE})") from None


def _parse_date(value: Any) -> str:
    return _format_utc(parse_datetime(value))


# --- lists ------------------------------------------------------------------------------------
def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _as_sequence(value: Any) -> list[Any] | None:
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    return None


def _parse_tags(value: Any) -> list[str] | None:
    items = _as_sequence(value)
    if items is None and isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                loaded = json.loads(text)
            except ValueError:
                loaded = None
            except RecursionError:
                raise _Invalid(f"{_show(value)} is JSON nested too deeply (expected a list of strings)") from None
            items = loaded if isinstance(loaded, list) else None
        if items is None:
            tags = [" ".join(part.split()) for part in _TAG_SPLIT_RE.split(text)]
            return _dedupe(tag for tag in tags if tag) or None
    if items is None:
        raise _Invalid(f"{_show(value)} is not a list of tags (expected a list or 'a|b|c' / 'a,b,c')")
    tags = []
    for item in items:
        if _is_absent(item):
            continue
        if isinstance(item, str):
            tag = " ".join(item.split())
        elif _is_number(item):
            tag = _format_number(item)
        else:
            raise _Invalid(f"item {_show(item)} is not text (expected a list of strings)")
        if tag:
            tags.append(tag)
    return _dedupe(tags) or None


def _attr_value_text(value: Any) -> str | None:
    if isinstance(value, str):
        return " ".join(value.split()) or None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if _is_number(value):
        return _format_number(value)
    raise _Invalid(f"value {_show(value)} is not text or a number")


def _attr_pairs(key: Any, value: Any, out: list[str]) -> None:
    if not isinstance(key, str) or not key.strip():
        raise _Invalid(f"key {_show(key)} is not a non-empty name")
    name = " ".join(key.split()).lower()
    values = _as_sequence(value)
    for item in values if values is not None else (value,):
        if _is_absent(item):
            continue
        text = _attr_value_text(item)
        if text is not None:
            out.append(f"{name}:{text}")


def _attr_item(item: Any, out: list[str], problems: list[str]) -> None:
    """One "key:value" entry; a malformed one is recorded but does not hide the others."""
    if isinstance(item, str):
        parts = _ATTR_SEPARATOR_RE.split(item, maxsplit=1)  # the first ":" or "=" separates
        key = " ".join(parts[0].split()).lower()
        val = " ".join(parts[1].split()) if len(parts) == 2 else ""
        if not key or not val:
            problems.append(f"item {_show(item)} is malformed")
            return
        out.append(f"{key}:{val}")
    elif isinstance(item, (list, tuple)) and len(item) == 2:  # pyarrow map columns give (k, v) pairs
        try:
            _attr_pairs(item[0], item[1], out)
        except _Invalid as exc:
            problems.append(str(exc))
    elif isinstance(item, Mapping):
        try:
            for key, val in item.items():
                _attr_pairs(key, val, out)
        except _Invalid as exc:
            problems.append(str(exc))
    elif not _is_absent(item):
        problems.append(f"item {_show(item)} is malformed")


def _parse_attributes(value: Any) -> list[str] | None:
    out: list[str] = []
    problems: list[str] = []
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise _Invalid(f"{_show(value)} is not valid JSON ({exc}; {_EXPECT_ATTR})") from None
            except RecursionError:
                raise _Invalid(f"{_show(value)} is JSON nested too deeply ({_EXPECT_ATTR})") from None
        else:
            for part in _ATTR_SPLIT_RE.split(text):
                if part.strip():
                    _attr_item(part, out, problems)
            value = None
    if value is None:
        pass
    elif isinstance(value, Mapping):
        for key, val in value.items():
            try:
                _attr_pairs(key, val, out)
            except _Invalid as exc:
                problems.append(str(exc))
    elif (items := _as_sequence(value)) is not None:
        for item in items:
            _attr_item(item, out, problems)
    else:
        raise _Invalid(f"{_show(value)} is not a set of attributes ({_EXPECT_ATTR})")
    if problems:
        raise _Invalid(f"{'; '.join(problems)} ({_EXPECT_ATTR})")
    return _dedupe(out) or None


def _parse_image_url(value: Any) -> str:
    if isinstance(value, str):
        url = value.strip()
        if _URL_RE.fullmatch(url):
            return url
    raise _Invalid(f"{_show(value)} is not an http(s) URL (expected e.g. https://example.com/img.jpg)")


# --- shared helpers (public: the event validator reuses them, so both ingests read values alike) ----------
def is_missing(value: Any, typed: bool = False, number: bool = False) -> bool:
    """Whether a cell means "no value": None/NaN/NA/blank, and for ``typed`` fields words like "null"/"N/A".

    For a ``number`` field (implies ``typed``) NaN is not missing: a NaN float or a "NaN" cell is a value the
    parser rejects, so it is reported instead of dropped.
    """
    if type(value) is str:
        if not value or value.isspace():
            return True
        if (typed or number) and len(value) < 12:
            return value.strip().lower() in (_NUMBER_NULL_WORDS if number else _NULL_WORDS)
        return False
    if number:
        return _is_absent_number(value)
    return value is None or _is_absent(value)


def _is_absent_number(value: Any) -> bool:
    """Absent in a number field: None, pd.NA/NaT, an empty list; never NaN (see :func:`is_missing`)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return False
    return _is_absent(value)


parse_number = _to_float
parse_non_negative = _parse_non_negative
show_value = _show


_TEXT, _TYPED, _NUMBER = 0, 1, 2
# field -> (parser, kind). _TYPED fields also treat words like "null"/"N/A"/"NaN" as absent; _NUMBER fields
# do too, except NaN (in any spelling), which their parsers reject.
_PARSER_TABLE: tuple[tuple[str, Callable[[Any], Any], int], ...] = (
    ("product_id", _parse_product_id, _TEXT),
    ("title", _parse_text, _TEXT),
    ("description", _parse_text, _TEXT),
    ("brand", _parse_text, _TEXT),
    ("category", _parse_category, _TEXT),
    ("price", _parse_non_negative, _NUMBER),
    ("currency", _parse_currency, _TYPED),
    ("rating", _parse_rating, _NUMBER),
    ("review_count", _parse_count, _NUMBER),
    ("in_stock", _parse_bool, _TYPED),
    ("tags", _parse_tags, _TEXT),
    ("attributes", _parse_attributes, _TEXT),
    ("image_url", _parse_image_url, _TYPED),
    ("created_at", _parse_date, _TYPED),
    ("popularity", _parse_non_negative, _NUMBER),
)
assert tuple(field for field, _, _ in _PARSER_TABLE) == PRODUCT_FIELDS
# With the "required" flag and the null words precomputed, the per-row loop does no extra lookups.
_PARSERS = tuple(
    (f, parse, kind == _NUMBER, (None, _NULL_WORDS, _NUMBER_NULL_WORDS)[kind], f in REQUIRED_FIELDS)
    for f, parse, kind in _PARSER_TABLE
)


def normalize_product(
    row: Mapping[str, Any], *, max_price: float = MAX_PRICE, max_popularity: float = MAX_POPULARITY
) -> tuple[dict[str, Any] | None, list[str]]:
    """Turn one input row into an index document, or explain every reason it cannot be one.

    Returns ``(doc, [])`` or ``(None, reasons)``. All problems of a row are collected so a user
    fixes a file in one pass instead of one error per run. Keys not in :data:`PRODUCT_FIELDS`
    are ignored (the caller reports unknown columns once per file, not once per row). A row a
    reader could not parse (it carries :data:`PARSE_ERROR_KEY`) is rejected with that reason.

    Numbers must be finite (NaN is rejected, not dropped) and ``price``/``popularity`` at most
    ``max_price`` (default :data:`MAX_PRICE`) / ``max_popularity`` (default :data:`MAX_POPULARITY`);
    ``rating`` is 0-5 and ``review_count`` fits the mapping's integer.
    """
    parse_error = row.get(PARSE_ERROR_KEY)
    if parse_error is not None:
        return None, [f"row: could not be parsed ({parse_error})"]
    doc: dict[str, Any] = {}
    reasons: list[str] = []
    for field, parse, number, nulls, required in _PARSERS:
        raw = row.get(field)
        if type(raw) is str:
            absent = not raw or raw.isspace() or (nulls is not None and len(raw) < 12 and raw.strip().lower() in nulls)
        elif number:
            absent = _is_absent_number(raw)
        else:
            absent = raw is None or _is_absent(raw)
        if absent:
            if required:
                reasons.append(f"{field}: required, missing or empty")
            continue
        try:
            value = parse(raw)
            if number and field in ("price", "popularity"):
                if field == "price":
                    check_at_most(value, raw, max_price, _PRICE_HINT)
                else:
                    check_at_most(value, raw, max_popularity, _POPULARITY_HINT)
        except _Invalid as exc:
            reasons.append(f"{field}: {exc}")
            continue
        if value is None:
            if required:
                reasons.append(f"{field}: {_show(raw)} is empty after cleaning (required, expected text)")
            continue
        doc[field] = value
    if reasons:
        return None, reasons
    category = doc.get("category")
    if category is not None:
        doc["category_path"] = category_ancestors(category)
    return doc, []
