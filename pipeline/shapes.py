"""Row shapes of released instruction datasets, each turned into a record (one conversation).

    gpt4all   {prompt, response, source?}                 nomic-ai/gpt4all(-j)-prompt-generations
    alpaca    {instruction, input?, output}               tatsu-lab/alpaca
    dolly     {instruction, context?, response}           databricks/databricks-dolly-15k
    sharegpt  {conversations: [{from, value}]}            ShareGPT / Vicuna (human, gpt, system)
    openai    {messages: [{role, content}], id?, meta?}   OpenAI chat; this project's own records

`format: auto` takes the first shape whose required columns the first row has, then holds the rest of
the file to that shape, so a row missing a column is reported by name. Column names can be remapped
(`fields: {prompt: question}`), dotted paths included. A record without an id gets the one collect
derives (source + normalized messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pipeline.records import Record


class ShapeError(ValueError):
    """A row that does not fit its shape; `field` names the column."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def field(row: Any, dotted: str) -> Any:
    """`instances.0.input` -> row["instances"][0]["input"]; None when any step is missing."""
    value = row
    for part in dotted.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def join_input(instruction: str, extra: Any) -> str:
    """Alpaca/Dolly: the optional input or context follows the instruction after a blank line."""
    if isinstance(extra, str) and extra.strip():
        return f"{instruction}\n\n{extra}"
    return instruction


class Shape:
    """One dataset layout: its logical fields (with default column names) and how a row becomes turns."""

    name: ClassVar[str]
    fields: ClassVar[dict[str, str]]
    required: ClassVar[tuple[str, ...]]

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        unknown = sorted(set(overrides or {}) - set(self.fields))
        if unknown:
            raise ValueError(f"fields: {', '.join(unknown)} not in shape {self.name!r} "
                             f"(its fields: {', '.join(self.fields)})")
        self.columns = {**self.fields, **(overrides or {})}

    def matches(self, row: Any) -> bool:
        return isinstance(row, Mapping) and all(field(row, self.columns[k]) is not None for k in self.required)

    def value(self, row: Any, key: str, kind: type = str, optional: bool = False) -> Any:
        column = self.columns[key]
        value = field(row, column)
        if value is None and optional:
            return None
        if not isinstance(value, kind):
            problem = "missing" if value is None else f"expected {kind.__name__}, got {type(value).__name__}"
            raise ShapeError(column, problem)
        return value

    def messages(self, row: Any) -> list[dict[str, str]]:
        raise NotImplementedError


SHAPES: dict[str, type[Shape]] = {}


def register(cls: type[Shape]) -> type[Shape]:
    SHAPES[cls.name] = cls
    return cls


class TurnListShape(Shape):
    """A list of turns, each naming its speaker: OpenAI's `messages` and ShareGPT's `conversations`."""

    turns_key: ClassVar[str]
    speaker_key: ClassVar[str]
    text_key: ClassVar[str]
    speaker_word: ClassVar[str]
    speakers: ClassVar[dict[str, str]]  # the dataset's speaker names -> system / user / assistant

    def text(self, value: Any) -> Any:
        return value

    def messages(self, row: Any) -> list[dict[str, str]]:
        turns = []
        for index, turn in enumerate(self.value(row, self.turns_key, list)):
            where = f"{self.columns[self.turns_key]}.{index}"
            speaker = field(turn, self.columns[self.speaker_key])
            role = self.speakers.get(str(speaker).lower())
            if role is None:
                raise ShapeError(f"{where}.{self.columns[self.speaker_key]}",
                                 f"{self.speaker_word} {speaker!r} is not one of {', '.join(self.speakers)}")
            text = self.text(field(turn, self.columns[self.text_key]))
            if not isinstance(text, str):
                raise ShapeError(f"{where}.{self.columns[self.text_key]}", "missing or not text")
            turns.append({"role": role, "content": text})
        return turns


@register
class OpenAIShape(TurnListShape):
    name = "openai"
    fields = {"messages": "messages", "role": "role", "content": "content"}
    required = ("messages",)
    turns_key, speaker_key, text_key, speaker_word = "messages", "role", "content", "role"
    # OpenAI's newer role names fold into the three roles a chat template knows.
    speakers = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

    def text(self, value: Any) -> Any:
        if isinstance(value, list):  # content parts: keep the text ones
            return "".join(part.get("text", "") for part in value if isinstance(part, Mapping))
        return value


@register
class ShareGPTShape(TurnListShape):
    name = "sharegpt"
    fields = {"conversations": "conversations", "from": "from", "value": "value"}
    required = ("conversations",)
    turns_key, speaker_key, text_key, speaker_word = "conversations", "from", "value", "speaker"
    speakers = {"system": "system", "human": "user", "user": "user",
                "gpt": "assistant", "chatgpt": "assistant", "assistant": "assistant", "bard": "assistant"}


@register
class GPT4AllShape(Shape):
    name = "gpt4all"
    fields = {"prompt": "prompt", "response": "response"}
    required = ("prompt", "response")

    def messages(self, row: Any) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.value(row, "prompt")},
                {"role": "assistant", "content": self.value(row, "response")}]


class InstructionShape(Shape):
    """An instruction, optional extra text (after a blank line) and the answer: Alpaca's and Dolly's layout."""

    extra_key: ClassVar[str]
    answer_key: ClassVar[str]

    def messages(self, row: Any) -> list[dict[str, str]]:
        prompt = join_input(self.value(row, "instruction"), self.value(row, self.extra_key, optional=True))
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": self.value(row, self.answer_key)}]


@register
class DollyShape(InstructionShape):
    name = "dolly"
    fields = {"instruction": "instruction", "context": "context", "response": "response"}
    required = ("instruction", "response")
    extra_key, answer_key = "context", "response"


@register
class AlpacaShape(InstructionShape):
    name = "alpaca"
    fields = {"instruction": "instruction", "input": "input", "output": "output"}
    required = ("instruction", "output")
    extra_key, answer_key = "input", "output"


def shape_names() -> list[str]:
    return ["auto", *SHAPES]


class PairReader:
    """Rows of one file or dataset -> records, in the named shape or the one the first row shows.

    The record's source is the row's `source_field` column when it has one (GPT4All's released sets
    name each pair's origin), else `default_source`.
    """

    def __init__(self, default_source: str, fmt: str = "auto", fields: Mapping[str, str] | None = None,
                 source_field: str | None = "source") -> None:
        if fmt != "auto" and fmt not in SHAPES:
            raise ValueError(f"format {fmt!r}: known formats are {', '.join(shape_names())}")
        self.default_source, self.overrides, self.source_field = default_source, fields, source_field
        self.shape: Shape | None = SHAPES[fmt](fields) if fmt != "auto" else None

    def detect(self, row: Mapping[str, Any]) -> Shape:
        for cls in SHAPES.values():
            if self.overrides and set(self.overrides) - set(cls.fields):
                continue  # remapped fields name another shape's columns
            if (shape := cls(self.overrides)).matches(row):
                return shape
        raise ShapeError("(row)", f"no known shape fits columns {', '.join(sorted(map(str, row))) or '(none)'} "
                                  f"(expected one of: {', '.join(describe(c) for c in SHAPES.values())})")

    def record(self, row: Any) -> Record:
        """One row -> Record; ShapeError names the column that does not fit."""
        if not isinstance(row, Mapping):
            raise ShapeError("(row)", f"expected an object, got {type(row).__name__}")
        if self.shape is None:
            self.shape = self.detect(row)
        turns = self.shape.messages(row)
        if not turns:
            raise ShapeError(next(iter(self.shape.columns.values())), "no turns")
        source = field(row, self.source_field) if self.source_field else None
        source = source if isinstance(source, str) and source.strip() else self.default_source
        meta = row.get("meta") if isinstance(row.get("meta"), Mapping) else {}
        record = Record.create(source, turns, dict(meta))
        if isinstance(row.get("id"), str) and row["id"] and self.shape.name == "openai":
            record.id = row["id"]  # this project's own records keep theirs
        return record


def describe(cls: type[Shape]) -> str:
    return f"{cls.name} ({'+'.join(cls.fields[k] for k in cls.required)})"
