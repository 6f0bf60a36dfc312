"""Per-call validation cost: JSON bytes in, validated dict out, three ways side by side.

For two schemas (the seed's weather tool and a 15-field schema using most field types) it times
``Schema.decode_json`` against the same rules written by hand as a msgspec ``Struct`` (the floor:
decoding plus turning the Struct into a dict) and as a pydantic v2 ``BaseModel``
(``model_validate_json`` then ``model_dump``), on a valid and an invalid body each. Every contender
runs in this process on the same bytes; each figure is the best of several timeit repeats, and the
results are ratios, because these machines are noisy.

    python -m bench.validation            # the full run (about 20 seconds)
    python -m bench.validation --smoke    # a second, no targets checked

Targets on valid input: ours within 1.5x of hand-written msgspec, pydantic at least 3x slower.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import timeit
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pydantic
from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic import Field as PydanticField

from ai_spine_tools import (
    ToolError,
    array_field,
    boolean_field,
    date_field,
    datetime_field,
    email_field,
    enum_field,
    integer_field,
    json_field,
    number_field,
    object_field,
    string_field,
    time_field,
    url_field,
    uuid_field,
)
from ai_spine_tools.fields._schema import Schema

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "validation.json"
sys.path.insert(0, str(ROOT / "examples"))

import weather  # noqa: E402 - the example tool lives outside the package

TARGET_VS_MSGSPEC = 1.5
TARGET_VS_PYDANTIC = 3.0

# -- the weather schema, three ways -------------------------------------------------------------

OURS_WEATHER = weather.tool.input_schema


class WeatherStruct(msgspec.Struct, forbid_unknown_fields=True):
    city: Annotated[str, msgspec.Meta(max_length=100)]
    units: Literal["celsius", "fahrenheit"] = "celsius"


class WeatherModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: Annotated[str, PydanticField(max_length=100)]
    units: Literal["celsius", "fahrenheit"] = "celsius"


WEATHER_VALID = b'{"city": "Madrid", "units": "fahrenheit"}'
WEATHER_INVALID = b'{"city": "' + b"x" * 101 + b'", "units": "kelvin"}'

# -- a 15-field schema, three ways --------------------------------------------------------------

EMAIL = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$"
URL = r"^https?://[^\s/?#]+[^\s]*$"
ZIP = r"^\d{5}$"
CODE = r"^[A-Z]{3}-\d{4}$"

OURS_RICH = Schema(
    {
        "name": string_field(required=True, min_length=1, max_length=100),
        "email": email_field(required=True),
        "website": url_field(),
        "age": integer_field(min=0, max=150),
        "score": number_field(min=0, max=100),
        "active": boolean_field(default=True),
        "plan": enum_field(["free", "pro", "enterprise"], default="free"),
        "tags": array_field(string_field(max_length=20), max_items=10),
        "address": object_field(
            {
                "street": string_field(required=True, max_length=200),
                "city": string_field(required=True, max_length=100),
                "zip": string_field(pattern=ZIP),
            }
        ),
        "birthday": date_field(),
        "created_at": datetime_field(),
        "wake_up": time_field(),
        "request_id": uuid_field(),
        "metadata": json_field(),
        "code": string_field(pattern=CODE),
    },
    subject="input",
    forbid_unknown=True,
)

Short = Annotated[str, msgspec.Meta(max_length=20)]


class AddressStruct(msgspec.Struct, forbid_unknown_fields=True):
    street: Annotated[str, msgspec.Meta(max_length=200)]
    city: Annotated[str, msgspec.Meta(max_length=100)]
    zip: Annotated[str, msgspec.Meta(pattern=ZIP)] | None = None


class RichStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=EMAIL)]
    website: Annotated[str, msgspec.Meta(max_length=2048, pattern=URL)] | None = None
    age: Annotated[int, msgspec.Meta(ge=0, le=150)] | None = None
    score: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    active: bool = True
    plan: Literal["free", "pro", "enterprise"] = "free"
    tags: Annotated[list[Short], msgspec.Meta(max_length=10)] | None = None
    address: AddressStruct | None = None
    birthday: dt.date | None = None
    created_at: dt.datetime | None = None
    wake_up: dt.time | None = None
    request_id: uuid.UUID | None = None
    metadata: Any = None
    code: Annotated[str, msgspec.Meta(pattern=CODE)] | None = None


PydShort = Annotated[str, StringConstraints(max_length=20)]


class AddressModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    street: Annotated[str, StringConstraints(max_length=200)]
    city: Annotated[str, StringConstraints(max_length=100)]
    zip: Annotated[str, StringConstraints(pattern=ZIP)] | None = None


class RichModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    email: Annotated[str, StringConstraints(max_length=254, pattern=EMAIL)]
    website: Annotated[str, StringConstraints(max_length=2048, pattern=URL)] | None = None
    age: Annotated[int, PydanticField(ge=0, le=150)] | None = None
    score: Annotated[float, PydanticField(ge=0, le=100)] | None = None
    active: bool = True
    plan: Literal["free", "pro", "enterprise"] = "free"
    tags: Annotated[list[PydShort], PydanticField(max_length=10)] | None = None
    address: AddressModel | None = None
    birthday: dt.date | None = None
    created_at: dt.datetime | None = None
    wake_up: dt.time | None = None
    request_id: uuid.UUID | None = None
    metadata: Any = None
    code: Annotated[str, StringConstraints(pattern=CODE)] | None = None


RICH_VALID = msgspec.json.encode(
    {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "website": "https://example.com/ada",
        "age": 36,
        "score": 99.5,
        "active": True,
        "plan": "pro",
        "tags": ["math", "engines", "poetry"],
        "address": {"street": "12 St James's Square", "city": "London", "zip": "12345"},
        "birthday": "1815-12-10",
        "created_at": "2024-01-31T12:00:00Z",
        "wake_up": "07:30:00",
        "request_id": "0b6c1c2e-8a8b-4b5e-9f3a-2d7c4f1e6a90",
        "metadata": {"source": "bench", "attempt": 1},
        "code": "ADA-1815",
    }
)
RICH_INVALID = msgspec.json.encode(
    {
        "name": "",
        "email": "not-an-email",
        "age": 200,
        "plan": "gold",
        "tags": ["x" * 21],
        "address": {"street": "12 St James's Square"},
        "birthday": "1815-13-10",
        "code": "ada",
    }
)

# -- the contenders -----------------------------------------------------------------------------

Call = Callable[[bytes], Any]
BUILTIN_TYPES = (dt.datetime, dt.date, dt.time, uuid.UUID)


def _msgspec_flat(struct: type[msgspec.Struct]) -> Call:
    decode = msgspec.json.Decoder(struct).decode
    asdict_ = msgspec.structs.asdict
    return lambda data: asdict_(decode(data))


def _msgspec_nested(struct: type[msgspec.Struct]) -> Call:
    decode = msgspec.json.Decoder(struct).decode
    to_builtins = msgspec.to_builtins
    return lambda data: to_builtins(decode(data), builtin_types=BUILTIN_TYPES)


def _pydantic(model: type[BaseModel]) -> Call:
    validate = model.model_validate_json
    return lambda data: validate(data).model_dump()


@dataclass(frozen=True)
class Case:
    """One schema and one body, with the three ways of validating it."""

    name: str
    valid: bool
    body: bytes
    ours: Call
    msgspec: Call
    pydantic: Call


CASES = [
    Case(
        "weather, valid",
        True,
        WEATHER_VALID,
        OURS_WEATHER.decode_json,
        _msgspec_flat(WeatherStruct),
        _pydantic(WeatherModel),
    ),
    Case(
        "weather, invalid",
        False,
        WEATHER_INVALID,
        OURS_WEATHER.decode_json,
        _msgspec_flat(WeatherStruct),
        _pydantic(WeatherModel),
    ),
    Case(
        "15 fields, valid",
        True,
        RICH_VALID,
        OURS_RICH.decode_json,
        _msgspec_nested(RichStruct),
        _pydantic(RichModel),
    ),
    Case(
        "15 fields, invalid",
        False,
        RICH_INVALID,
        OURS_RICH.decode_json,
        _msgspec_nested(RichStruct),
        _pydantic(RichModel),
    ),
]

REJECTIONS = (ToolError, msgspec.ValidationError, pydantic.ValidationError)


def _check(case: Case) -> None:
    """Make sure the three agree on the outcome before any of them is timed."""
    outcomes = []
    for call in (case.ours, case.msgspec, case.pydantic):
        try:
            outcomes.append(call(case.body))
        except REJECTIONS:
            outcomes.append(None)
    if case.valid:
        if not (outcomes[0] == outcomes[1] == outcomes[2]):
            raise SystemExit(f"{case.name}: the contenders disagree: {outcomes}")
    elif any(outcome is not None for outcome in outcomes):
        raise SystemExit(f"{case.name}: a contender accepted the invalid body: {outcomes}")


def _timer(call: Call, body: bytes, *, min_time: float) -> tuple[timeit.Timer, int]:
    """A timer of one call on ``body`` and the loop count that makes a repeat last ``min_time``."""

    def once() -> None:
        try:  # noqa: SIM105 - cheaper than a context manager inside the timed call
            call(body)
        except REJECTIONS:
            pass

    timer = timeit.Timer(once)
    number = 1
    while timer.timeit(number) < min_time:  # as timeit's autorange does
        number *= 2
    return timer, number


@dataclass
class Row:
    """The best per-call time of each contender on one case, and the ratios."""

    case: str
    valid: bool
    msgspec_ns: float
    ours_ns: float
    pydantic_ns: float
    ours_vs_msgspec: float
    pydantic_vs_ours: float


def measure(*, repeat: int, min_time: float) -> list[Row]:
    """Time every case; contenders alternate per repeat block so drift falls on all alike."""
    rows = []
    for case in CASES:
        _check(case)
        timers = {
            name: _timer(getattr(case, name), case.body, min_time=min_time)
            for name in ("msgspec", "ours", "pydantic")
        }
        best = dict.fromkeys(timers, float("inf"))
        for _ in range(repeat):
            for name, (timer, number) in timers.items():
                best[name] = min(best[name], timer.timeit(number) / number * 1e9)
        rows.append(
            Row(
                case=case.name,
                valid=case.valid,
                msgspec_ns=best["msgspec"],
                ours_ns=best["ours"],
                pydantic_ns=best["pydantic"],
                ours_vs_msgspec=best["ours"] / best["msgspec"],
                pydantic_vs_ours=best["pydantic"] / best["ours"],
            )
        )
    return rows


def report(rows: list[Row], *, smoke: bool) -> tuple[str, bool]:
    """Return the table as text and whether the targets are met on valid input."""
    lines = [
        f"{'case':<20} {'msgspec':>10} {'ours':>10} {'pydantic':>10} "
        f"{'ours/msgspec':>13} {'pydantic/ours':>14}  target",
    ]
    met = True
    for row in rows:
        status = ""
        if row.valid:
            ok = (
                row.ours_vs_msgspec <= TARGET_VS_MSGSPEC
                and row.pydantic_vs_ours >= TARGET_VS_PYDANTIC
            )
            met = met and ok
            status = "met" if ok else "missed"
        lines.append(
            f"{row.case:<20} {row.msgspec_ns:>8.0f}ns {row.ours_ns:>8.0f}ns "
            f"{row.pydantic_ns:>8.0f}ns {row.ours_vs_msgspec:>12.2f}x "
            f"{row.pydantic_vs_ours:>13.2f}x  {status}"
        )
    if smoke:
        lines.append("smoke run: targets not checked")
    else:
        lines.append(
            f"targets on valid input (ours/msgspec <= {TARGET_VS_MSGSPEC}x, "
            f"pydantic/ours >= {TARGET_VS_PYDANTIC}x): {'met' if met else 'MISSED'}"
        )
    return "\n".join(lines), met


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny iteration counts, no targets")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    repeat, min_time = (1, 0.001) if args.smoke else (7, 0.1)
    rows = measure(repeat=repeat, min_time=min_time)
    table, met = report(rows, smoke=args.smoke)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "validation",
                "smoke": args.smoke,
                "python": platform.python_version(),
                "msgspec": msgspec.__version__,
                "pydantic": pydantic.VERSION,
                "targets": {
                    "ours_vs_msgspec_at_most": TARGET_VS_MSGSPEC,
                    "pydantic_vs_ours_at_least": TARGET_VS_PYDANTIC,
                    "met": None if args.smoke else met,
                },
                "rows": [asdict(row) for row in rows],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
