"""LocalDocs retrieval: vector-only, BM25-only and hybrid on questions about invented facts; indexing speed
and query latency on 2 cores.

The corpus is generated here, deterministically (seeded): entities with invented names (bridges, ships,
observatories, guilds, vineyards, festivals), one file each whose fact paragraph is buried between filler
paragraphs, distractor files that share an entity's name but not its facts, and files of filler alone.
Each entity gets two questions: one naming it, one paraphrased without its name (its facts described in
other words). Entities are split in two: the development set tunes the fusion (weighted reciprocal-rank
fusion: k and the BM25 weight), the held-out set is only measured. A hit counts when it comes from the
answering file and holds the answer.

    flock /tmp/heavy.lock .venv/bin/python -m benchmarks.localdocs            # writes results/localdocs.json
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import save

SYLLABLES = ["qu", "or", "vath", "el", "mir", "tesk", "dro", "bal", "nyx", "zeph", "kor", "ith", "sal", "vun",
             "tar", "ow", "brel", "ka", "ost", "rin", "fal", "gim", "ux", "pel", "dra", "sov", "lin", "ek"]
FIRST_NAMES = ["Amelia", "Oskar", "Ilse", "Bertram", "Noor", "Tobias", "Greta", "Ivo", "Sabine", "Matteo",
               "Liesel", "Rafael", "Hanne", "Cosmo", "Edda", "Pavel", "Yara", "Lorcan", "Mireille", "Anselm"]
# Each attribute as the file writes it -> as a paraphrased question puts it (no word in common).
COLORS = {"grey": "ash-coloured", "red": "crimson", "white": "snowy", "black": "jet-dark", "green": "emerald",
          "blue": "azure", "yellow": "golden", "pink": "rose-tinted"}
MATERIALS = {"granite": "hard speckled rock", "oak": "hardwood timber", "iron": "forged metal",
             "brick": "fired clay blocks", "limestone": "pale sedimentary rock", "copper": "reddish metal",
             "marble": "polished veined rock", "cedar": "fragrant softwood"}
COUNTS = {"three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
          "eleven": "11", "twelve": "12"}

# Per kind: the fact as written in the file, a question naming the entity, and one without its name (the
# same facts in other words). {name}, {person}, {year}, {color}, {material}, {count} are filled in; the
# paraphrase gets {color_p}, {material_p}, {count_p} instead.
KINDS = {
    "bridge": ("The {name} bridge was built in {year} by the engineer {person}. It rests on {count} arches of "
               "{color} {material} and carries the old road over the river.",
               "Who built the {name} bridge?",
               "Which designer constructed the river crossing that stands on {count_p} {color_p} {material_p} "
               "vaults?"),
    "ship": ("The {name} was a merchant ship launched in {year}; her captain for thirty years was {person}. "
             "Her hull was {color} {material} and she carried {count} masts.",
             "Who captained the {name}?",
             "Who commanded the trading vessel with a {color_p} {material_p} body and {count_p} spars?"),
    "observatory": ("The {name} observatory opened in {year} under its first director, {person}. Its dome is "
                    "covered in {color} {material} and it houses {count} telescopes.",
                    "Who was the first director of the {name} observatory?",
                    "Who first led the star-watching station whose {color_p} {material_p} cupola shelters "
                    "{count_p} scopes?"),
    "guild": ("The {name} guild of weavers was founded in {year} by {person}. Its hall has {count} doors of "
              "{color} {material}, and members meet there every spring.",
              "Who founded the {name} guild?",
              "Which person started the association of cloth makers whose meeting house has {count_p} "
              "{color_p} {material_p} entrances?"),
    "vineyard": ("The {name} vineyard was planted in {year} by the grower {person}. Its cellar holds {count} "
                 "casks of {color} {material}.",
                 "Who planted the {name} vineyard?",
                 "Which winemaker established the estate whose underground store keeps {count_p} {color_p} "
                 "{material_p} barrels?"),
    "festival": ("The {name} festival was first held in {year}, organised by {person}. Each year a stage of "
                 "{color} {material} is raised and {count} bands play until dawn.",
                 "Who organised the first {name} festival?",
                 "Who put together the first edition of the yearly celebration where {count_p} groups of "
                 "musicians perform on a {color_p} {material_p} platform?"),
}
FILLER = [
    "The committee met again on Tuesday to discuss the budget for the coming year.",
    "Many visitors come to the region in summer, when the roads are dry and the days are long.",
    "Records from that period are incomplete, and several ledgers were lost in a fire.",
    "Local historians still argue about the exact dates of the early settlements.",
    "The town council published a short report on the state of the public buildings.",
    "Engineers and builders from the capital often travelled north to study older works.",
    "A small museum near the harbour keeps maps, letters and photographs from the archive.",
    "The weather in the valley changes quickly, and fog can cover the hills for days.",
    "Several families have lived in the district for generations and know its stories well.",
    "The railway reached the coast late, so most goods travelled by cart or by boat.",
    "In the winter months the markets close early and the streets are quiet.",
    "Teachers at the village school use the old buildings to explain local history.",
    "Directors of the regional archive asked for new shelves and a larger reading room.",
    "Festivals, fairs and markets filled the calendar from spring to the first frost.",
    "Ships unloaded timber, salt and cloth at the quay, and carts took them inland.",
    "Some of the oldest houses were rebuilt after the flood, using stone from the quarry.",
]
DISTRACTOR = ("The {name} family bakery on Market Street sells rye bread and honey cakes. It was opened by "
              "{person} and is known for its {color} shutters.")


@dataclass(frozen=True)
class Question:
    text: str
    file: str  # the answering file's name
    answer: str  # a string only the answering chunk holds
    named: bool


def invented_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
        if name not in used and len(name) > 4:
            used.add(name)
            return name


def filler(rng: random.Random, paragraphs: int) -> list[str]:
    return [" ".join(rng.sample(FILLER, 4)) for _ in range(paragraphs)]


def make_corpus(folder: Path, entities: int, seed: int = 0) -> list[Question]:
    """Write the corpus into `folder`; the questions, in entity order."""
    rng = random.Random(seed)
    used: set[str] = set()
    questions, combos = [], set()
    for n in range(entities):
        kind = list(KINDS)[n % len(KINDS)]
        fact, named_q, paraphrase_q = KINDS[kind]
        while True:  # the paraphrased question must single out its entity
            combo = (kind, rng.choice(list(COUNTS)), rng.choice(list(COLORS)), rng.choice(list(MATERIALS)))
            if combo not in combos:
                combos.add(combo)
                break
        values = {"name": invented_name(rng, used), "person": f"{rng.choice(FIRST_NAMES)} {invented_name(rng, used)}",
                  "year": rng.randint(1700, 1990), "count": combo[1], "color": combo[2], "material": combo[3],
                  "count_p": COUNTS[combo[1]], "color_p": COLORS[combo[2]], "material_p": MATERIALS[combo[3]]}
        body = filler(rng, rng.randint(6, 14))
        body.insert(rng.randint(2, len(body) - 2), fact.format(**values))  # buried inside a long file
        file = f"{kind}-{n:03d}.md"
        (folder / file).write_text(f"# Notes {n}\n\n" + "\n\n".join(body) + "\n")
        surname = values["person"].split()[1]
        questions += [Question(named_q.format(**values), file, surname, True),
                      Question(paraphrase_q.format(**values), file, surname, False)]
        if n % 2 == 0:  # a file sharing the entity's name, not its facts
            other = {**values, "person": f"{rng.choice(FIRST_NAMES)} {invented_name(rng, used)}"}
            text = "\n\n".join([*filler(rng, 2), DISTRACTOR.format(**other), *filler(rng, 2)])
            (folder / f"bakery-{n:03d}.txt").write_text(text + "\n")
    for n in range(entities // 4):
        (folder / f"minutes-{n:03d}.txt").write_text("\n\n".join(filler(rng, 10)) + "\n")
    return questions


def first_relevant(hits: list, question: Question) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        if Path(hit.path).name == question.file and question.answer in hit.text:
            return rank
    return None


def scores(ranks: list[int | None]) -> dict[str, float]:
    return {"recall@1": sum(r == 1 for r in ranks) / len(ranks),
            "recall@3": sum(r is not None and r <= 3 for r in ranks) / len(ranks),
            "mrr": sum(1 / r for r in ranks if r) / len(ranks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=120)
    parser.add_argument("--dev-share", type=float, default=0.4, help="Entities whose questions tune the fusion.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RUNTIME_HOME"] = str(Path(tmp) / "home")
        run(Path(tmp), args.entities, args.dev_share)


def run(tmp: Path, entities: int, dev_share: float) -> None:
    from runtime.localdocs import FUSION, Collection, Fusion, TextEmbedder, search, sync

    docs = tmp / "docs"
    docs.mkdir()
    questions = make_corpus(docs, entities)
    cut = 2 * round(entities * dev_share)
    dev, held_out = questions[:cut], questions[cut:]
    megabytes = sum(p.stat().st_size for p in docs.iterdir()) / 1e6

    embed = TextEmbedder(n_threads=2)
    embed(["warm up"])  # the model's load is not indexing
    collection = Collection.create("bench")
    collection.add_folders([docs])
    started = time.perf_counter()
    report = sync(collection, embed, show_progress=False)
    index_s = time.perf_counter() - started

    vectors = {q.text: embed([q.text])[0] for q in questions}
    depth = 10

    def ranks(qs: list[Question], mode: str, fusion: Fusion = FUSION) -> list[int | None]:
        return [first_relevant(search(collection, q.text, vectors[q.text], depth, mode, fusion), q) for q in qs]  # type: ignore[arg-type]

    grid = [Fusion(k=k, bm25_weight=w) for k in (1, 2, 5, 10, 20, 60) for w in (0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6)]
    tuned = max(grid, key=lambda f: (scores(ranks(dev, "hybrid", f))["mrr"], -abs(f.bm25_weight - 0.5)))

    methods = {"vector": ("vector", FUSION), "bm25": ("bm25", FUSION),
               f"hybrid (shipped: k={FUSION.k:g}, w={FUSION.bm25_weight:g})": ("hybrid", FUSION),
               "hybrid (equal-weight RRF, k=60)": ("hybrid", Fusion(k=60, bm25_weight=0.5))}
    if tuned != FUSION:
        methods[f"hybrid (dev-tuned now: k={tuned.k:g}, w={tuned.bm25_weight:g})"] = ("hybrid", tuned)
    rows = []
    for label, qs in (("held-out", held_out), ("held-out, naming the entity", [q for q in held_out if q.named]),
                      ("held-out, paraphrased", [q for q in held_out if not q.named]), ("development", dev)):
        measured = {method: scores(ranks(qs, mode, fusion)) for method, (mode, fusion) in methods.items()}
        best_part = max(measured["vector"]["mrr"], measured["bm25"]["mrr"])
        for method, s in measured.items():
            rows.append({"questions": f"{label} ({len(qs)})", "retrieval": method, "recall@1": f"{s['recall@1']:.3f}",
                         "recall@3": f"{s['recall@3']:.3f}", "MRR": f"{s['mrr']:.3f}",
                         "MRR / better part": f"{s['mrr'] / best_part:.3f}" if method.startswith("hybrid") else "-"})

    latency = {}
    for mode in ("vector", "bm25", "hybrid"):
        times = []
        for q in held_out:
            start = time.perf_counter()
            vector = None if mode == "bm25" else embed([q.text])[0]
            search(collection, q.text, vector, 5, mode)  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
        latency[mode] = (statistics.median(times) * 1000, sorted(times)[int(0.95 * len(times))] * 1000)
    chunks = collection.counts()["chunks"]
    speed = [
        {"measure": f"indexing {report.added} files, {megabytes:.2f} MB, {chunks} chunks",
         "ours": f"{index_s:.1f} s: {megabytes / index_s:.3f} MB/s, {chunks / index_s:.1f} chunks/s",
         "baseline": "-", "ratio": "-"},
        *({"measure": f"query latency, {mode}, median / p95 (top 5)",
           "ours": f"{latency[mode][0]:.1f} / {latency[mode][1]:.1f} ms",
           "baseline": f"{latency['vector'][0]:.1f} ms (vector only, median)",
           "ratio": f"{latency[mode][0] / latency['vector'][0]:.2f}x"} for mode in ("hybrid", "bm25")),
    ]
    for row in [*rows, *speed]:
        print(row)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    save("localdocs", {
        "title": "localdocs: retrieval on invented facts, vector vs BM25 vs hybrid",
        "setup": f"Generated corpus (benchmarks/localdocs.py, seed 0): {entities} invented entities (6 kinds), one "
                 "file each with the fact buried among 6-14 filler paragraphs, a distractor file sharing the "
                 f"name for every other entity, {entities // 4} filler-only files ({megabytes:.2f} MB, {chunks} "
                 "chunks); two questions per entity (naming it; paraphrased without the name, its attributes in "
                 "other words: 'crimson' for red, 'hardwood timber' for oak, '7' for seven). The first "
                 f"{cut // 2} entities' questions are the development set (the fusion's k and BM25 weight chosen "
                 "on them over a grid), the rest held out. A hit counts when it is a chunk of the answering file "
                 "holding the answer; ranks over the top 10. Embeddings: all-MiniLM-L6-v2 (Embed4All); chunks of "
                 "160 tokens, 24 overlapping; vectors searched exactly (numpy), BM25 by SQLite FTS5.",
        "rows": rows,
        "notes": ["Fusion: score = (1 - w) / (k + vector rank) + w / (k + BM25 rank) over the top 50 of each; the "
                  "shipped FUSION (runtime/localdocs/search.py) is the development set's best. The claim is the "
                  "held-out rows: hybrid's MRR against the better of vector and BM25 ('MRR / better part').",
                  "Equal-weight RRF (k=60) loses to vector search alone on the paraphrased questions, as the issue "
                  "warned; the tuned weights keep the names' BM25 wins without giving up the vector ranking.",
                  "Paraphrases that share no word with the file are hard for a 22M-parameter embedder in a corpus "
                  "of look-alike files (six kinds, the same attribute words): read recall@3 there as a floor."],
        "when": when,
    })
    save("localdocs-speed", {
        "title": "localdocs: indexing speed and query latency, 2 cores",
        "setup": "The retrieval benchmark's corpus and collection (benchmarks/localdocs.py), Embed4All with 2 "
                 "threads, run under the shared heavy lock.",
        "rows": speed,
        "notes": ["Indexing covers extraction, chunking, embedding and SQLite writes (one transaction per file); "
                  "the embedder's load is excluded. Query latency includes embedding the question (none for BM25)."],
        "when": when,
    })


if __name__ == "__main__":
    main()
