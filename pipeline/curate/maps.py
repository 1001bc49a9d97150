"""The data map: records (kept and removed) as points, from their static MiniLM embeddings.

With NOMIC_API_KEY set, every record goes to Nomic Atlas (what GPT4All used). Otherwise a local map of a
seeded random sample, stratified by source and kept/removed: UMAP to 2-D, a plotly page (curate/map.html
beside plotly.min.js, nothing fetched; hover shows prompt and response, a menu colors by source / rule /
cluster, and by per-example loss once train/losses.jsonl exists) held under a size cap, and
curate/map.png. The 2-D points are kept in curate/map_points.jsonl so the map can be recolored later
without recomputing anything.
"""

from __future__ import annotations

import html
import json
import os
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.artifacts import atomic_path
from pipeline.config import MapConfig
from pipeline.curate.dedupe import neighbour_index
from pipeline.curate.embedding import unit_rows
from pipeline.plots import figure

HOVER_CHARS = 160
WEBGL_ABOVE = 5000  # SVG keeps small maps crisp (and screenshot-able without a GPU); WebGL scales
MIN_PER_STRATUM = 20  # small sources and rare outcomes still show up in a sample


@dataclass
class MapPoint:
    id: str
    source: str
    rule: str  # "kept" or the rule that removed it
    prompt: str
    response: str
    x: float = 0.0
    y: float = 0.0
    cluster: int = 0
    duplicate_of: str | None = None  # a removed duplicate: the kept record's id, the similarity, its beginning
    similarity: float | None = None
    kept_text: str | None = None


def stratum(source: str, rule: str) -> tuple[str, str]:
    """What the map samples by: the record's source, and whether it was kept."""
    return source, "kept" if rule == "kept" else "removed"


def stratified_sample(strata: list[tuple[str, str]], limit: int, seed: int) -> list[int]:
    """Indices of a seeded random sample of at most `limit` items, in input order: each stratum (e.g.
    source, kept or removed) gets its proportional share, and at least MIN_PER_STRATUM (or all it has)."""
    if len(strata) <= limit:
        return list(range(len(strata)))
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, key in enumerate(strata):
        members[key].append(index)
    rng = random.Random(seed)
    floor = {key: min(len(group), MIN_PER_STRATUM) for key, group in members.items()}
    small = {key for key, group in members.items() if limit * len(group) / len(strata) < floor[key]}
    budget = max(0, limit - sum(floor[key] for key in small))
    rest = sum(len(members[key]) for key in members if key not in small)
    chosen: list[int] = []
    for key in sorted(members):
        quota = floor[key] if key in small else budget * len(members[key]) // max(rest, 1)
        chosen += rng.sample(members[key], min(quota, len(members[key])))
    if len(chosen) > limit:  # more strata than room for their minimums: trim at random
        chosen = rng.sample(chosen, limit)
    return sorted(chosen)


def cosine_neighbours(vectors: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k nearest neighbours of every row (itself first, at distance 0) from the semantic dedupe's faiss
    index: exact up to its EXACT_SEARCH_UP_TO points, which a map sample stays under unless max_points is raised."""
    unit = unit_rows(vectors)
    similarities, neighbours = neighbour_index(unit, seed).search(unit, k)
    return neighbours, np.maximum(0.0, 1.0 - similarities).astype(np.float32)


def project(vectors: np.ndarray, seed: int) -> np.ndarray:
    """2-D coordinates: UMAP (cosine) when there are enough points for a neighbourhood graph, else PCA.
    UMAP gets the exact neighbours from faiss: its own exact path (under 4,096 points) calls a Python
    distance function for every pair, ~10 s of a 4,000-point map (26 s -> 8 s for UMAP here)."""
    if len(vectors) >= 20:
        import warnings

        import umap

        k = min(15, len(vectors) - 1)
        reducer = umap.UMAP(n_components=2, n_neighbors=k, metric="cosine", random_state=seed, n_jobs=1,
                            precomputed_knn=cosine_neighbours(vectors, k, seed), force_approximation_algorithm=True)
        with warnings.catch_warnings():  # "no search index: transform() unavailable"; the map never needs it
            warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
            return reducer.fit_transform(vectors)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(vectors) if len(vectors) > 2 else np.zeros((len(vectors), 2))


def clusters(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(vectors)))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors)


def layout(points: list[MapPoint], vectors: np.ndarray, k: int, seed: int) -> list[MapPoint]:
    coords = project(vectors, seed)
    labels = clusters(vectors, k, seed)
    for point, (x, y), label in zip(points, coords, labels, strict=True):
        point.x, point.y, point.cluster = float(x), float(y), int(label)
    return points


def save_points(points: list[MapPoint], path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in points))


def load_points(path: Path) -> list[MapPoint]:
    return [MapPoint(**json.loads(line)) for line in path.read_text().splitlines() if line]


def hover(point: MapPoint) -> str:
    def part(text: str) -> str:
        text = text if len(text) <= HOVER_CHARS else text[:HOVER_CHARS] + "…"
        return html.escape(text).replace("\n", "<br>")

    shown = (f"<b>{html.escape(point.source)}</b> · {html.escape(point.rule)}<br><b>prompt:</b> {part(point.prompt)}"
             f"<br><b>response:</b> {part(point.response)}")
    if point.duplicate_of is not None:
        shown += (f"<br><b>duplicate of {html.escape(point.duplicate_of)}</b> (similarity {point.similarity:.3f}): "
                  f"{part(point.kept_text or '')}")
    return shown


def plotly_figure(points: list[MapPoint], losses: dict[str, float] | None = None):  # noqa: ANN201 - plotly Figure
    """One trace per group for each coloring; a menu shows one coloring at a time."""
    import plotly.graph_objects as go

    scatter = go.Scattergl if len(points) > WEBGL_ABOVE else go.Scatter
    colorings = {"source": lambda p: p.source, "rule": lambda p: p.rule, "cluster": lambda p: f"cluster {p.cluster}"}
    traces, owner = [], []
    for name, key in colorings.items():
        groups: dict[str, list[MapPoint]] = {}
        for point in points:
            groups.setdefault(key(point), []).append(point)
        for label, members in sorted(groups.items()):
            traces.append(scatter(
                x=[p.x for p in members], y=[p.y for p in members], mode="markers", name=label,
                hovertext=[hover(p) for p in members], hoverinfo="text", visible=name == "source",
                marker={"size": 7, "symbol": ["circle" if p.rule == "kept" else "x" for p in members]}))
            owner.append(name)
    if losses:
        known = [p for p in points if p.id in losses]
        traces.append(scatter(
            x=[p.x for p in known], y=[p.y for p in known], mode="markers", name="loss", visible=False,
            hovertext=[f"loss {losses[p.id]:.3f}<br>{hover(p)}" for p in known], hoverinfo="text",
            marker={"size": 7, "color": [losses[p.id] for p in known], "colorscale": "Viridis", "showscale": True}))
        owner.append("loss")
    names = list(colorings) + (["loss"] if losses else [])
    buttons = [{"label": f"color by {name}", "method": "update",
                "args": [{"visible": [o == name for o in owner]}]} for name in names]
    fig = go.Figure(traces)
    fig.update_layout(title=f"curated data map: {len(points)} records (circles kept, crosses removed)",
                      updatemenus=[{"buttons": buttons, "x": 1, "y": 1.12, "xanchor": "right"}],
                      height=720, template="plotly_white", showlegend=True, legend={"itemsizing": "constant"})
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def write_local_map(points: list[MapPoint], out: Path, losses: dict[str, float] | None = None,
                    max_bytes: int = 5_000_000, seed: int = 0) -> int:
    """map.html (plotly.min.js beside it, nothing fetched) of at most `max_bytes`, and map.png; returns how
    many points the page shows (a page over the cap is redrawn from a smaller stratified sample)."""
    shown = points
    while True:
        with atomic_path(out / "map.html") as tmp:
            plotly_figure(shown, losses).write_html(tmp, include_plotlyjs="directory", full_html=True)
            size = tmp.stat().st_size
            if size <= max_bytes or len(shown) <= MIN_PER_STRATUM:
                break
        keep = stratified_sample([stratum(p.source, p.rule) for p in shown], int(len(shown) * max_bytes / size * 0.95),
                                 seed)
        shown = [shown[i] for i in keep]
    write_png(points, out / "map.png")
    return len(shown)


def write_png(points: list[MapPoint], path: Path) -> None:
    with figure(path, figsize=(8, 7)) as (_, ax):
        for source in sorted({p.source for p in points}):
            for kept, marker in ((True, "o"), (False, "x")):
                group = [p for p in points if p.source == source and (p.rule == "kept") == kept]
                if group:
                    ax.scatter([p.x for p in group], [p.y for p in group], s=14, marker=marker,
                               label=f"{source} ({'kept' if kept else 'removed'})")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{len(points)} records")
        ax.legend(fontsize=7, loc="best")


def atlas_rows(points: list[MapPoint]) -> list[dict[str, str | float | None]]:
    """What Atlas shows of each record: id, text, source, kept or removed, the rule, and for a duplicate the
    kept record it duplicates and how similar they are."""
    return [{"id": p.id, "text": f"{p.prompt}\n\n{p.response}", "source": p.source,
             "outcome": "kept" if p.rule == "kept" else "removed", "rule": p.rule,
             "duplicate_of": p.duplicate_of, "similarity": p.similarity} for p in points]


def upload_to_atlas(points: list[MapPoint], vectors: np.ndarray, name: str) -> str:
    """Send the embeddings and fields to Nomic Atlas; returns the map's address (the client's ATLAS_API_PATH
    points it at another Atlas deployment)."""
    try:
        import nomic
        from nomic import atlas
    except ImportError:
        raise RuntimeError("NOMIC_API_KEY is set but the `nomic` package is not installed: "
                           "pip install 'gpt4all-pipeline[atlas]'") from None
    nomic.login(os.environ["NOMIC_API_KEY"])
    dataset = atlas.map_data(embeddings=vectors, identifier=name, id_field="id", data=atlas_rows(points))
    maps = dataset.maps
    return maps[0].dataset_link if maps else name


def read_losses(path: Path) -> dict[str, float] | None:
    """train/losses.jsonl ({"id", "loss"} per line) when training has run."""
    if not path.is_file():
        return None
    return {row["id"]: float(row["loss"]) for row in map(json.loads, path.read_text().splitlines()) if row}


def build_map(points: list[MapPoint], vectors: np.ndarray, out: Path, cfg: MapConfig, seed: int, run_name: str) -> str:
    """Lay out, save and render the map (the points are the sample, or every record for Atlas)."""
    if len(points) > 0:
        layout(points, vectors, cfg.clusters, seed)
    save_points(points, out / "map_points.jsonl")
    if os.environ.get("NOMIC_API_KEY"):
        return upload_to_atlas(points, vectors, f"gpt4all-pipeline-{run_name}")
    write_local_map(points, out, read_losses(out.parent / "train" / "losses.jsonl"), int(cfg.max_html_mb * 1e6), seed)
    return str(out / "map.html")


def recolor(run_root: Path, cfg: MapConfig | None = None) -> Path:
    """Rebuild map.html from saved points, adding per-example loss if train/losses.jsonl exists."""
    out = run_root / "curate"
    cfg = cfg or MapConfig()
    write_local_map(load_points(out / "map_points.jsonl"), out, read_losses(run_root / "train" / "losses.jsonl"),
                    int(cfg.max_html_mb * 1e6))
    return out / "map.html"
