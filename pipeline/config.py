"""Typed pipeline configuration: YAML recipes plus dotted `key.sub=value` overrides.

Every problem in a config (unknown key, wrong type, bad value) is reported at once, each with its
dotted path, before any model or data is loaded.
"""

from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message lists every problem."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    """Where a run writes its outputs."""

    name: str = Field("tiny", description="Run name; outputs go to `runs_dir/name/`.", min_length=1)
    runs_dir: Path = Field(Path("runs"), description="Folder that holds every run directory.")
    seed: int = Field(42, description="Seed for every random choice in every stage.")


class TeacherConfig(Section):
    """An OpenAI-compatible endpoint that answers prompts."""

    base_url: str | None = Field(
        None, description="Endpoint, e.g. https://api.openai.com/v1; null starts the bundled runtime server."
    )
    model: str = Field("SmolLM2-135M-Instruct", description="Model name sent with each request.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key itself)."
    )
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once.")
    requests_per_minute: float = Field(600, gt=0, description="Request rate limit.")
    tokens_per_minute: float | None = Field(None, gt=0, description="Token rate limit; null = none.")
    max_retries: int = Field(6, ge=0, description="Retries on 429, 5xx, timeouts, dropped connections.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(512, ge=1, description="Answer length limit per request.")
    system_prompt: str | None = Field(None, description="System message sent before each prompt.")


class FileSource(Section):
    """Prompts from a local JSONL file or JSON array, plain or .gz (e.g. Alpaca: instruction + input)."""

    type: Literal["jsonl", "json"]
    name: str = Field(description="The records' `source` label.")
    path: str = Field(description="File path; `{data_dir}` expands to the config's data_dir.")
    prompt_field: str = Field("prompt", description="Dotted path to the prompt, e.g. `instruction`.")
    input_field: str | None = Field(None, description="Dotted path to extra input appended to the prompt.")
    prompt_pattern: str | None = Field(None, description="Regex whose first group is the prompt (e.g. OIG text).")
    limit: int | None = Field(None, ge=1, description="Use at most this many prompts from the source.")


class HFSource(Section):
    """Prompts from `datasets.load_dataset` (a hub id online, or a builder like `json` + data_files)."""

    type: Literal["hf"]
    name: str = Field(description="The records' `source` label.")
    dataset: str = Field(description="Hub id (e.g. databricks/databricks-dolly-15k) or builder name.")
    subset: str | None = None
    split: str = "train"
    data_files: list[str] | None = Field(None, description="Local files for offline use ({data_dir} expands).")
    prompt_field: str = "prompt"
    input_field: str | None = None
    prompt_pattern: str | None = Field(None, description="Regex whose first group is the prompt (e.g. OIG text).")
    limit: int | None = Field(None, ge=1)


class CreativeSource(Section):
    """GPT4All-J's creative prompts: "Write a [TYPE] about [NOUN] in the style of [PERSON]"."""

    type: Literal["creative"]
    name: str = "creative"
    n: int = Field(ge=1, description="How many prompts to draw (seeded by run.seed).")
    template: str = "Write a {type} about {noun} in the style of {person}."
    types: list[str] = Field(default_factory=lambda: ["poem", "short story", "song", "haiku", "letter", "limerick"])
    nouns: list[str] = Field(default_factory=lambda: ["the ocean", "a lighthouse", "autumn", "a robot", "coffee",
                                                      "the moon", "a city at night", "an old friend"])
    persons: list[str] = Field(default_factory=lambda: ["Shakespeare", "Emily Dickinson", "Dr. Seuss",
                                                        "Edgar Allan Poe", "Mark Twain", "Jane Austen"])


class ImportSource(Section):
    """Existing prompt/response pairs, imported as records with no teacher call.

    From a local file (`path`: JSONL, JSON or Parquet, .gz too) or a dataset (`dataset`: a hub id with
    `revision`, a local hub-layout folder, or a folder written by `save_to_disk`).
    """

    type: Literal["import"]
    name: str = Field(description="The records' `source` label when a row has no source column.", min_length=1)
    path: str | None = Field(None, description="Local file of pairs; `{data_dir}` expands.")
    dataset: str | None = Field(None, description="Hub id, local dataset folder, or builder name (e.g. json).")
    revision: str | None = Field(None, description="Dataset revision (branch, tag or commit), e.g. v1.3-groovy.")
    subset: str | None = None
    split: str = "train"
    data_files: list[str] | None = Field(None, description="Local files for the builder ({data_dir} expands).")
    streaming: bool = Field(False, description="Stream rows instead of downloading the whole set first.")
    format: Literal["auto", "openai", "sharegpt", "gpt4all", "dolly", "alpaca"] = Field(
        "auto", description="Row shape; auto = detected from the first row.")
    fields: dict[str, str] = Field(default_factory=dict,
                                   description="Shape field -> column (dotted paths ok), e.g. {prompt: question}.")
    source_field: str | None = Field("source", description="Column holding each row's own source label.")
    skip_bad: bool = Field(False, description="Skip rows that do not fit (counted, listed in bad_rows.jsonl).")
    limit: int | None = Field(None, ge=1, description="Import at most this many rows.")
    rows: int | None = Field(None, ge=1, description="Rows the dataset card states: --dry-run's count when offline.")

    @model_validator(mode="after")
    def one_origin(self) -> ImportSource:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of path (a local file) or dataset (a hub id or folder)")
        return self


# User-message templates: the bundled 135M teacher follows an instruction placed after the text far better
# than one in a system prompt (measured while writing this source).
QUESTION_PROMPT = ("{chunk}\n\nWrite {n} different questions that the text above answers, each about a different "
                   "fact in it and using its words. Write one question per line.")
ANSWER_PROMPT = "{chunk}\n\nAnswer this question from the text above in one or two sentences: {question}"


class DocumentsSource(Section):
    """Question-answer pairs from a folder of documents: per chunk, the teacher writes questions the chunk
    answers, then answers each with the chunk in its context. The saved record is closed-book (question and
    answer only); its meta names the document, its sha256 and the chunk."""

    type: Literal["documents"]
    name: str = Field(description="The records' `source` label.", min_length=1)
    path: str = Field(description="Folder of documents; `{data_dir}` expands.")
    include: list[str] | None = Field(
        None, description="Globs on paths relative to `path` (a bare `*.md` matches at any depth); null = every "
                          "supported format (.md .markdown .txt .rst .html .htm .pdf).")
    exclude: list[str] = Field(default_factory=list, description="Globs of files to leave out.")
    chunk_tokens: int = Field(256, ge=16, description="Chunk size in tokens (split at headings, then paragraphs).")
    overlap_tokens: int = Field(32, ge=0, description="Tokens a chunk repeats from the one before it.")
    questions_per_chunk: int = Field(3, ge=1, description="Questions the teacher writes per chunk.")
    question_prompt: str = Field(QUESTION_PROMPT, description="The message asking for questions: {chunk} = the "
                                                              "chunk's text, {n} = how many.")
    answer_prompt: str = Field(ANSWER_PROMPT, description="The message asking for an answer: {chunk}, {question}. "
                                                          "The saved record's prompt is the question alone.")
    question_max_tokens: int = Field(160, ge=8, description="Length limit of the question-writing reply.")
    max_chunks: int | None = Field(None, ge=1, description="Use at most this many chunks (in file order).")

    @model_validator(mode="after")
    def usable(self) -> DocumentsSource:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be below chunk_tokens ({self.chunk_tokens})")
        for name, needed, allowed in (("question_prompt", {"chunk"}, {"chunk", "n"}),
                                      ("answer_prompt", {"chunk", "question"}, {"chunk", "question"})):
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(getattr(self, name)) if f is not None}
            except ValueError as exc:
                raise ValueError(f"{name}: {exc} (write a literal brace as {{{{ or }}}})") from None
            if needed - fields or fields - allowed:
                raise ValueError(f"{name} must use {sorted(needed)} and may use {sorted(allowed)}; it uses {sorted(fields)}")
        return self


CollectSource = Annotated[FileSource | HFSource | CreativeSource | ImportSource | DocumentsSource,
                          Field(discriminator="type")]


class Price(Section):
    """US dollars per 1,000 tokens."""

    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)


class CollectConfig(Section):
    """collect: teacher prompt/response pairs."""

    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    sources: list[CollectSource] = Field(default_factory=list, description="Prompt sources (sent to the teacher) and imports.")
    max_prompts: int | None = Field(None, ge=1, description="Cap on prompts sent; null = all.")
    followup_turns: int = Field(0, ge=0, description="Extra user turns the teacher writes and answers.")
    followup_instruction: str = Field(
        "Read the conversation and write the next message the user would send: one short follow-up question. "
        "Reply with the question only.",
        description="System prompt that asks the teacher for the next user turn.",
    )
    prices: dict[str, Price] = Field(
        # gpt-3.5-turbo at its March 2023 launch, when the GPT4All data was collected: $0.002 / 1K tokens.
        default_factory=lambda: {"gpt-3.5-turbo": Price(input_per_1k=0.002, output_per_1k=0.002)},
        description="Model name -> price, for cost accounting; models not listed cost 0.",
    )


class Switch(Section):
    enabled: bool = True


class MalformedFilter(Switch):
    """Missing roles, empty turns, a conversation that does not end with the assistant."""


class LengthFilter(Switch):
    """Bounds in characters and in tokens (words and punctuation marks); null = no bound."""

    min_prompt_chars: int | None = Field(None, ge=0)
    max_prompt_chars: int | None = Field(None, ge=1)
    min_response_chars: int | None = Field(1, ge=0)
    max_response_chars: int | None = Field(None, ge=1)
    min_response_tokens: int | None = Field(None, ge=0)
    max_response_tokens: int | None = Field(None, ge=1)
    max_prompt_tokens: int | None = Field(None, ge=1)


class RefusalFilter(Switch):
    """Responses containing a refusal or AI-boilerplate phrase (case-insensitive)."""

    phrase_file: str = Field("configs/curate/refusals.yaml", description="YAML: named phrase sets.")
    phrase_sets: list[str] = Field(default_factory=lambda: ["breezy", "jazzy"],
                                   description="Sets from phrase_file; breezy = v1.1, jazzy adds v1.2's.")
    phrases: list[str] = Field(default_factory=list, description="Extra phrases.")


class TruncatedFilter(Switch):
    """Answers the teacher cut off (meta.finish_reason == "length")."""


class DecontaminateFilter(Switch):
    """Records sharing an n-gram with the evaluation sets (GPT-3's 13-gram rule)."""

    ngram: int = Field(13, ge=4)
    files: list[str] = Field(default_factory=lambda: [
        "{data_dir}/eval/*.jsonl", "{data_dir}/eval/*.jsonl.gz",
        "{data_dir}/instruct/self_instruct_user_oriented_instructions.jsonl"])


class GroundingFilter(Switch):
    """Answers from the documents source that their chunk does not support: the share of the answer's
    content words (four or more letters, or digits) that appear in its chunk (meta.chunk.text). Records
    without a chunk are kept."""

    enabled: bool = False
    min_overlap: float = Field(0.5, ge=0, le=1, description="Least share of the answer's content words in its chunk.")


class ChunkQuestionsFilter(Switch):
    """Near-duplicate questions about the same chunk (documents source): the later of two questions whose
    content-word sets reach this Jaccard similarity goes."""

    threshold: float = Field(0.6, gt=0, le=1, description="Jaccard similarity of the content-word sets.")


class FiltersConfig(Section):
    malformed: MalformedFilter = Field(default_factory=MalformedFilter)
    length: LengthFilter = Field(default_factory=LengthFilter)
    refusal: RefusalFilter = Field(default_factory=RefusalFilter)
    truncated: TruncatedFilter = Field(default_factory=TruncatedFilter)
    decontaminate: DecontaminateFilter = Field(default_factory=DecontaminateFilter)
    grounding: GroundingFilter = Field(default_factory=GroundingFilter)
    chunk_questions: ChunkQuestionsFilter = Field(default_factory=ChunkQuestionsFilter)


class MinHashConfig(Switch):
    """Near-duplicates: MinHash signatures of word n-gram shingles, LSH candidates, verified."""

    ngram: int = Field(3, ge=1, description="Words per shingle.")
    num_perm: int = Field(128, ge=16)
    threshold: float = Field(0.7, gt=0, lt=1, description="Estimated Jaccard similarity that makes a duplicate.")
    workers: int = Field(2, ge=1, description="Processes that compute signatures.")


class SemanticConfig(Switch):
    """Semantic duplicates (v1.3-groovy's step): the same prompt and the same answer, possibly in other words.
    Prompt and answer are embedded apart and centred (the mean vector subtracted: unrelated texts sit near
    cosine 0); faiss finds each record's nearest neighbours and a pair is a duplicate when both the prompts'
    and the answers' cosines reach `threshold`."""

    embedder: Literal["static", "minilm"] = Field(
        "static", description="static = model2vec distilled from all-MiniLM-L6-v2 (~1M texts in minutes); "
                              "minilm = the transformer itself (~9 texts/s per core).")
    threshold: float = Field(0.8, gt=0, le=1, description=(
        "Lowest centred cosine of both prompts and both answers. Calibrated (benchmarks/curate_calibrate.py) on "
        "labelled pairs: positives are Alpaca answers paraphrased by the bundled SmolLM2 (data/curate/"
        "paraphrases.jsonl, median 0.68-0.79); negatives are each record's nearest neighbour, random pairs and "
        "one prompt answered twice, in four corpus shapes (2,000 nearest pairs per shape: 99th percentile 0.25-0.54, max 0.63 "
        "in the long-text shapes); "
        "one-word topic swaps in a templated prompt reach 0.74."))
    batch_size: int = Field(64, ge=1, description="Texts per MiniLM batch (embedder: minilm).")
    workers: int = Field(2, ge=1, description="Processes that embed (embedder: static).")


class PromptDuplicateConfig(Switch):
    """The same prompt answered more than once (normalized like exact duplicates), whatever the answers say.
    Off by default: two different answers to one prompt are not duplicates; switch it on to keep one answer
    per prompt."""

    enabled: bool = False
    keep: Literal["first", "longest"] = Field("first", description="Which answer stays: the earliest record, or "
                                                                   "the longest response (ties: the earliest).")


class MapConfig(Switch):
    """A 2-D map of the records (kept and removed): all in Nomic Atlas with NOMIC_API_KEY, else a local
    page of a seeded sample stratified by source and kept/removed."""

    max_points: int = Field(4000, ge=10, description="Records in the local map's sample (UMAP's exact neighbours "
                                                     "under 4096 points; above, pynndescent's JIT costs ~1 min).")
    max_html_mb: float = Field(5.0, gt=0, description="Size cap of map.html (a smaller sample when over).")
    clusters: int = Field(8, ge=1)


class CurateConfig(Section):
    """curate: filters, dedupe, report, map."""

    input: Path | None = Field(None, description="Pairs to curate; null = this run's collect/pairs.jsonl.")
    skip_bad: bool = Field(False, description="Send corrupt lines to removed.jsonl instead of stopping.")
    compare: Literal["prompt", "response", "both"] = Field("both", description="Text the dedupe steps compare.")
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    exact: Switch = Field(default_factory=Switch)
    minhash: MinHashConfig = Field(default_factory=MinHashConfig)
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    prompt_duplicate: PromptDuplicateConfig = Field(default_factory=PromptDuplicateConfig)
    map: MapConfig = Field(default_factory=MapConfig)


class LoraConfig(Section):
    """LoRA adapter settings (GPT4All-LoRA: r=8, alpha=32, dropout=0.1)."""

    r: int = Field(8, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt; null = the attention projections of the base model's architecture "
                          "(q/k/v/o, or the fused qkv of MPT and Falcon).")


class TrainConfig(Section):
    """train: LoRA or full fine-tuning (transformers + peft + accelerate)."""

    input: Path | None = Field(None, description="Pairs to train on; null = this run's curate/pairs.jsonl.")
    base_model: str = Field("bundled:SmolLM2-135M-Instruct", description="HF id, local dir, .gguf or bundled:NAME.")
    method: Literal["lora", "full"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    template: Literal["chat", "gpt4all"] = Field(
        "chat", description="chat = the tokenizer's chat template; gpt4all = prompt + '\\n' + response + eos.")
    chat_template: str | None = Field(
        None, description="A chat template to teach instead of the model's own (a base model has none): chatml, "
                          "gemma, or Jinja text; saved with the merged model and written into its GGUF.")
    too_long: Literal["truncate", "drop"] = Field("truncate", description="What happens to records over max_length.")
    packing: bool = Field(True, description="Pack sequences into rows (position ids reset); false = padded batches.")
    learning_rate: float = Field(5e-5, gt=0)
    warmup_steps: int = Field(100, ge=0)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(4, ge=1, description="Rows per device per micro-step (packed rows hold several sequences).")
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    max_length: int = Field(1024, ge=8, description="Tokens per sequence (and per packed row).")
    validation_fraction: float = Field(0.05, ge=0, lt=1)
    checkpoint_every: int = Field(50, ge=1, description="Optimizer steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int = Field(0, ge=0, description="Steps between validation losses; 0 = only at the end.")


class EvalConfig(Section):
    """eval: the seven GPT4All tasks (lm-eval) and self-instruct perplexity."""

    tasks: list[str] = Field(
        default_factory=lambda: ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa"]
    )
    limit: int | None = Field(None, ge=1, description="Documents per task; null = the full sets.")
    source: Literal["offline", "online"] = Field("offline", description="offline = data_dir; online = lm-eval's hub tasks.")
    backends: list[Literal["hf", "gguf"]] = Field(default_factory=lambda: ["hf", "gguf"])
    hf_model: str | None = Field(None, description="HF model to score; null = train/merged (else train.base_model).")
    gguf: str | None = Field(None, description="GGUF to score; null = the run's first quantized type.")
    self_instruct: bool = Field(True, description="Ground-truth perplexity on the 252 self-instruct instructions.")
    self_instruct_limit: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1, description="HF backend batch size (documents per forward pass).")
    compare_base: bool = Field(True, description="Also score train.base_model (HF) on the same documents and report "
                                                 "paired differences with 95% intervals.")
    cache: bool = Field(True, description="Keep every document's scores in {runs_dir}/eval-cache.sqlite, keyed by "
                                          "the model files' hash: reruns and larger limits score only what is new.")


class QualityConfig(Switch):
    """Perplexity of each file on held-out text, and top-1 agreement with the HF model."""

    text_file: str = Field("{data_dir}/instruct/alpaca_5000_subset.json.gz",
                           description="JSON/JSONL (.gz ok) whose `field` holds held-out text ({data_dir} expands).")
    field: str = "output"
    tokens: int = Field(4096, ge=64, description="Held-out tokens scored per file.")
    window: int = Field(512, ge=16, description="Tokens per scoring window.")


class QuantizeConfig(Section):
    """quantize: HF -> GGUF and llama.cpp quantization types."""

    source: str | None = Field(None, description="HF folder, hub id, .gguf or bundled:NAME; null = train/merged.")
    outtype: Literal["f32", "f16", "bf16"] = "f16"
    types: list[Literal["q4_0", "q4_1", "q4_k_m", "q5_k_m", "q6_k", "q8_0"]] = Field(default_factory=lambda: ["q4_0"])
    quality: QualityConfig = Field(default_factory=QualityConfig)


class PipelineConfig(Section):
    """A whole recipe: one section per stage."""

    run: RunSection = Field(default_factory=RunSection)
    data_dir: Path = Field(
        Path("data"), description="Evaluation and instruction data (the repository's data/, read only)."
    )
    collect: CollectConfig = Field(default_factory=CollectConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)

    def run_dir(self) -> Path:
        """The folder this run writes to."""
        return self.run.runs_dir / self.run.name

    def section_hash(self, section: str) -> str:
        """A stable hash of one stage's section plus the run-wide settings it depends on."""
        payload = {
            "section": getattr(self, section).model_dump(mode="json"),
            "seed": self.run.seed,
            "data_dir": str(self.data_dir),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value) with the value read as YAML (numbers, bools, lists)."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted override in a nested dict (in place) and return it."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(path[: depth + 1])
                raise ConfigError(f"override {text!r}: {prefix} is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def format_validation_error(error: ValidationError, origin: str) -> str:
    """One line per problem, each naming its dotted key path."""
    lines = [f"{origin}: {error.error_count()} problem(s)"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = "" if item["type"] == "missing" else f" (got {item['input']!r})"
        lines.append(f"  {path}: {item['msg']}{got}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Read a YAML recipe (or the defaults when `path` is None), apply overrides, validate it all."""
    origin = str(path) if path else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of sections")
    apply_overrides(data, overrides or [])
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None
