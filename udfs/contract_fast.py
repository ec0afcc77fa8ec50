"""The hot path's decoder of one event: msgspec Structs made from the contract's pydantic models
(``udfs/contract_models.py``), which parse and validate a Kafka value in one C pass and give the canonical dict.

Why: ``EVENT_ADAPTER.validate_json(raw).model_dump()`` costs ~12 us per event of the benchmark's load on this
machine (7.5 us to validate, ~4.5 us to dump the model to dicts), the largest single share of the job's
per-event Python time after the decider (issue 10); ``msgspec.json.decode`` into these Structs and
``msgspec.to_builtins`` do the same in ~4.6 us (``bench/parse_bench.py`` prints both paths side by side).

The pydantic models stay the contract's single definition: the Structs are *generated* from their fields at
import (:func:`struct_for`: names, order, types, constraints, defaults), never written by hand, so a change of
the model is a change of the decoder. This decoder only ever *accepts*: :func:`decode_canonical` returns None for
anything it refuses, and ``udfs.contract.parse_event`` then takes the pydantic path, which accepts or refuses
with the contract's reason exactly as before. What must hold, and what ``tests/unit/test_contract_fast.py``
proves (field by field, on the contract's events, and by hypothesis on mutated events): whatever this accepts,
pydantic accepts too, and the two dicts are equal, key order and value types included.

Where msgspec and pydantic's strict mode differ, this side is the stricter one:

* a pattern's final ``$`` becomes ``\\Z``: msgspec matches with Python's ``re.search``, where ``$`` also
  matches before a final newline (pydantic's Rust regex does not);
* JSON that pydantic's parser reads and msgspec's does not (``NaN``, ``Infinity``, numbers beyond a
  double) and ``true`` for ``Literal[1]`` (pydantic: ``True == 1``) are refused here and handled by the
  pydantic path.

Raises (at import): TypeError for a field type or constraint of the models this translation does not know
(a new kind of field is then added here, with its test).
"""
from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from udfs.contract_models import Event

_SCALARS = (str, int, float, bool, type(None))


def _meta(constraints: list) -> msgspec.Meta | None:
    """msgspec ``Meta`` for pydantic/annotated-types constraints (``Ge``, ``Le``, ``MinLen``, ``MaxLen``,
    ``pattern``), None when there are none."""
    kw = _meta_kwargs(constraints)
    return msgspec.Meta(**kw) if kw else None


def _meta_kwargs(constraints: list) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for c in constraints:
        if isinstance(c, FieldInfo):  # Annotated[..., Field(...)] nested in a union: its own constraints
            kw.update(_meta_kwargs(c.metadata))
        elif isinstance(c, annotated_types.Ge):
            kw["ge"] = c.ge
        elif isinstance(c, annotated_types.Le):
            kw["le"] = c.le
        elif isinstance(c, annotated_types.MinLen):
            kw["min_length"] = c.min_length
        elif isinstance(c, annotated_types.MaxLen):
            kw["max_length"] = c.max_length
        elif getattr(c, "pattern", None) is not None and type(c).__name__ == "_PydanticGeneralMetadata":
            pattern = c.pattern
            kw["pattern"] = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        else:
            raise TypeError(f"contract_fast: no msgspec equivalent of the constraint {c!r}")
    return kw


def _type(tp: Any) -> Any:
    """The msgspec type for one pydantic field type (recursively)."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *constraints = get_args(tp)
        meta = _meta(constraints)
        return Annotated[_type(base), meta] if meta is not None else _type(base)
    if origin in (Union, types.UnionType):
        return Union[tuple(_type(a) for a in get_args(tp))]  # type: ignore[return-value]
    if origin is list:
        (item,) = get_args(tp)
        return list[_type(item)]  # type: ignore[misc]
    if origin is Literal or tp in _SCALARS:
        return tp
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return struct_for(tp)
    raise TypeError(f"contract_fast: no msgspec equivalent of the field type {tp!r}")


def _default(info: FieldInfo) -> Any:
    """The msgspec default of a pydantic field, or ``msgspec.NODEFAULT`` when it is required."""
    if info.default_factory is not None:
        factory = info.default_factory
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            factory = struct_for(factory)
        return msgspec.field(default_factory=factory)
    if info.default is PydanticUndefined:
        return msgspec.NODEFAULT
    return info.default


_STRUCTS: dict[type[BaseModel], type[msgspec.Struct]] = {}


def struct_for(model: type[BaseModel], tag: str | None = None) -> type[msgspec.Struct]:
    """The msgspec Struct of a pydantic model: its fields in order, each of the mapped type with its
    constraints (``Meta``) and default; unknown fields refused (the models' ``extra="forbid"``), keyword-only
    (so required fields may follow defaulted ones, as in the models). With ``tag``: a member of the tagged
    union on ``type`` (that field is the tag, not a Struct field).

    Raises:
        TypeError: a field type or constraint with no translation here.
    """
    if tag is None and model in _STRUCTS:
        return _STRUCTS[model]
    fields = []
    for name, info in model.model_fields.items():
        if tag is not None and name == "type":
            continue
        tp = _type(info.annotation)
        meta = _meta(info.metadata)
        if meta is not None:
            tp = Annotated[tp, meta]
        default = _default(info)
        fields.append((name, tp) if default is msgspec.NODEFAULT else (name, tp, default))
    kw: dict[str, Any] = {"forbid_unknown_fields": True, "kw_only": True}
    if tag is not None:
        kw.update(tag_field="type", tag=tag)
    struct = msgspec.defstruct(model.__name__, fields, module=__name__, **kw)
    if tag is None:
        _STRUCTS[model] = struct
    return struct


def _event_models() -> list[type[BaseModel]]:
    union = get_args(Event)[0]  # Annotated[Union[...], Field(discriminator="type")]
    return list(get_args(union))


#: type -> Struct of each event model of the union :data:`udfs.contract_models.Event`, in its order
EVENT_STRUCTS: dict[str, type[msgspec.Struct]] = {}
for _model in _event_models():
    (_tag,) = get_args(_model.model_fields["type"].annotation)
    EVENT_STRUCTS[_tag] = struct_for(_model, tag=_tag)

_DECODER = msgspec.json.Decoder(typing.Union[tuple(EVENT_STRUCTS.values())])  # type: ignore[misc]


def decode_canonical(raw: bytes | bytearray | memoryview | str) -> dict[str, Any] | None:
    """One Kafka value -> the canonical event dict (as ``EVENT_ADAPTER.validate_json(raw).model_dump()``:
    every field, defaults filled, in the models' order), or None when this decoder refuses it (the caller
    then asks pydantic, which gives the contract's reason).

    Never raises.
    """
    try:
        event = _DECODER.decode(raw)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return None
    out = msgspec.to_builtins(event)
    # to_builtins puts the tag first; pydantic's order has it after the envelope, before props
    out["type"] = out.pop("type")
    out["props"] = out.pop("props")
    return out
