"""`python -m pipeline STAGE --config FILE [--run-dir DIR] [--force] [key.sub=value ...]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from pipeline import processes
from pipeline.artifacts import RunDir, Stage, atomic_path, execute
from pipeline.collect import stage as collect_stage
from pipeline.curate import stage as curate_stage
from pipeline.eval import stage as eval_stage
from pipeline.quantize import stage as quantize_stage
from pipeline.train import stage as train_stage
from pipeline.config import ConfigError, PipelineConfig, load_config

# quantize before eval, so that the quantized file that ships is the one measured.
STAGE_ORDER = ("collect", "curate", "train", "quantize", "eval")

STAGES: dict[str, Stage] = {
    "collect": Stage("collect", collect_stage.run, collect_stage.inputs, collect_stage.plan),
    "curate": Stage("curate", curate_stage.run, curate_stage.inputs),
    "train": Stage("train", train_stage.run, train_stage.inputs, train_stage.plan),
    "quantize": Stage("quantize", quantize_stage.run, quantize_stage.inputs),
    "eval": Stage("eval", eval_stage.run, eval_stage.inputs),
}

STAGE_HELP = {
    "collect": "Ask a teacher model for responses to prompts -> collect/pairs.jsonl.",
    "curate": "Dedupe, filter and map the pairs -> curate/pairs.jsonl, removed.jsonl, report, map.",
    "train": "Fine-tune (LoRA or full) on the curated pairs -> train/merged/.",
    "eval": "Score the HF model and the shipped GGUF on the seven GPT4All tasks -> eval/results.json, leaderboard.",
    "quantize": "Convert to GGUF and quantize -> quantize/*.gguf, models.json.",
}

# Plain tracebacks: a worker's error reaches `accelerate launch` users line by line, prefixed with its rank.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="GPT4All-style pipeline, stage by stage.")
console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML recipe (configs/*.yaml).")]
RunDirOption = Annotated[Path | None, typer.Option("--run-dir", help="Run directory (default runs/<run.name>).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Rerun even if inputs and config are unchanged.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Validate and print the plan; send and write nothing.")]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. train.lora.r=16.")]


def resolve(config: Path | None, overrides: list[str] | None, run_dir: Path | None) -> tuple[PipelineConfig, RunDir]:
    """Load and validate the config, or exit with every problem listed."""
    try:
        cfg = load_config(config, overrides or [])
    except ConfigError as exc:
        console.print(f"[red]config error[/red]\n{escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    return cfg, RunDir(run_dir or cfg.run_dir())


def save_resolved_config(cfg: PipelineConfig, run: RunDir) -> None:
    """The run directory describes itself: the exact config it ran with."""
    run.root.mkdir(parents=True, exist_ok=True)
    with atomic_path(run.root / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def run_stages(names: list[str], cfg: PipelineConfig, run: RunDir, force: bool, dry_run: bool) -> None:
    """Run stages in order, skipping those that are up to date (or only print their plans)."""
    if dry_run:
        for name in names:
            stage = STAGES[name]
            typer.echo(stage.plan(cfg) if stage.plan else f"{name}: nothing to estimate")
        return
    if processes.world_size() > 1 and names != ["train"]:
        console.print(f"only train runs under a multi-process launch (got {', '.join(names)}); run the other "
                      "stages with plain `python -m pipeline`", markup=False, highlight=False)
        raise typer.Exit(2)
    if processes.is_main():
        save_resolved_config(cfg, run)
    for name in names:
        try:
            manifest, ran = execute(STAGES[name], cfg, run, force=force)
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            # markup=False: messages such as gloo's hold [brackets] that rich would parse and choke on;
            # soft_wrap: no line breaks inserted at the console's width, which would split a path in two
            console.print(f"{who()}{name} failed: {exc}", style="red", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        if processes.is_main():
            verb = "done" if ran else "up to date, skipped (--force reruns it)"
            console.print(f"[green]{name}[/green] {verb}: {escape(str(manifest.counts))} "
                          f"({manifest.wall_time_s:.1f}s)", highlight=False)


def who() -> str:
    """'rank 1/2: ' in a worker of a multi-process launch, else nothing."""
    return f"rank {processes.rank()}/{processes.world_size()}: " if processes.world_size() > 1 else ""


def print_summary(cfg: PipelineConfig, run: RunDir) -> None:
    """Where a finished run's results are, and how to chat with its model."""
    model = run.root / "quantize" / f"{cfg.run.name}-{cfg.quantize.types[0]}.gguf"
    lines = [("leaderboard", run.root / "eval" / "leaderboard.md"), ("data map", run.root / "curate" / "map.html"),
             ("curation report", run.root / "curate" / "report.md"), ("model", model)]
    console.print("\n[bold]run finished[/bold]: " + escape(str(run.root)), highlight=False)
    for label, path in lines:
        console.print(f"  {label:16} {path}", markup=False, highlight=False)
    console.print(f"  chat with it:    make chat   (or: python -m runtime chat {model})", markup=False, highlight=False)


def make_stage_command(name: str, stages: list[str], help_text: str) -> None:
    """Register `python -m pipeline NAME` running `stages`, with the shared options."""

    def command(
        overrides: OverridesArg = None,
        config: ConfigOption = None,
        run_dir: RunDirOption = None,
        force: ForceOption = False,
        dry_run: DryRunOption = False,
    ) -> None:
        cfg, run = resolve(config, overrides, run_dir)
        run_stages(stages, cfg, run, force, dry_run)
        if len(stages) > 1 and not dry_run:
            print_summary(cfg, run)

    app.command(name=name, help=help_text)(command)


for _name in STAGE_ORDER:
    make_stage_command(_name, [_name], STAGE_HELP[_name])
make_stage_command("all", list(STAGE_ORDER), "Run every stage in order: " + " -> ".join(STAGE_ORDER) + ".")


@app.command(name="config", help="Validate a config and print it resolved, overrides applied.")
def show_config(overrides: OverridesArg = None, config: ConfigOption = None) -> None:
    cfg, _ = resolve(config, overrides, None)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), nl=False)


@app.command(name="map", help="Rebuild curate/map.html from saved points, colored by loss once train/losses.jsonl exists.")
def rebuild_map(config: ConfigOption = None, run_dir: RunDirOption = None) -> None:
    from pipeline.curate.maps import recolor

    cfg, run = resolve(config, [], run_dir)
    typer.echo(str(recolor(run.root, cfg.curate.map)))


@app.command(name="leaderboard", help="Gather every runs/*/eval/results.json plus the report's published rows.")
def build_leaderboard(
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Folder holding the runs.")] = Path("runs"),
    out: Annotated[Path, typer.Option("--out", help="Where leaderboard.md/.png go.")] = Path("runs"),
) -> None:
    from pipeline.eval.leaderboard import build

    typer.echo(str(build(runs_dir, out)))


def main() -> None:
    processes.exit_with_launcher()
    app()
