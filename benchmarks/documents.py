"""Does training on your documents help? The model configs/documents.yaml trained on examples/documents' pairs
vs the base model, on held-out questions about those documents (written here, never shown to the teacher).

Two measures per question: the perplexity of its reference answer given the question (chat template; lower
is better), and whether the model's greedy answer states the key fact (a phrase from the documents, e.g.
"1861"). A control set, 20 self-instruct instructions with their reference answers, shows what the training
did to answers in general.

    make all CONFIG=configs/documents.yaml       # trains runs/documents/train/merged
    flock /tmp/heavy.lock .venv/bin/python -m benchmarks.documents      # writes results/documents.json
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import save
from pipeline.eval.self_instruct import load_pairs, perplexities
from pipeline.hf_models import resolve_model

# (question, reference answer, key fact the answer must state); every fact is in examples/documents.
HELD_OUT = [
    ("How long does the ferry crossing to Tern Island take?",
     "The crossing from Selby Quay to Tern Island takes forty minutes in calm weather.", "forty minutes"),
    ("How many cars fit on the Marigold?",
     "The Marigold carries up to twenty cars and two hundred passengers.", "twenty"),
    ("What time does the first ferry leave Selby Quay?",
     "The first ferry leaves Selby Quay at 7:15 in the morning.", "7:15"),
    ("What does a return ticket cost a foot passenger on the Tern Island ferry?",
     "A return ticket for a foot passenger costs six pounds.", "six pounds"),
    ("In which year was Gannet Head Lighthouse built?",
     "Gannet Head Lighthouse was built in 1861 by the engineer Thomas Orrin.", "1861"),
    ("How tall is Gannet Head Lighthouse?", "Gannet Head Lighthouse is thirty-two metres tall.", "thirty-two"),
    ("Who was the last keeper of Gannet Head Lighthouse?",
     "The last keeper was Agnes Pell, who lived in the keeper's cottage from 1952 to 1988.", "Agnes Pell"),
    ("When is the Port Wren Saturday market open?",
     "The market is open every Saturday from eight in the morning until one in the afternoon.", "eight"),
    ("What does Hettie Marsh sell at the Port Wren market?",
     "Hettie Marsh's smokehouse stall sells smoked mackerel caught the same morning.", "mackerel"),
    ("When is the Kelp Festival held on Tern Island?",
     "The Kelp Festival is held on the first weekend of September.", "September"),
    ("What does the winning crew of the Kelp Festival rowing race receive?",
     "The winning crew receives the Orrin Cup, a silver cup.", "Orrin Cup"),
    ("Who lights the bonfire that opens the Kelp Festival?",
     "The Kelp Queen, chosen by lot among the island's children, lights the bonfire.", "Kelp Queen"),
]


def score(model_path: str | Path, control: list[tuple[str, str]]) -> dict[str, object]:
    """Reference-answer perplexities on the held-out and control sets, and key facts stated when greedy."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    held = perplexities(lm, tokenizer, [(q, a) for q, a, _ in HELD_OUT])
    stated = []
    for question, _, fact in HELD_OUT:
        context = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                add_generation_prompt=True)
        ids = tokenizer(context, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=48, do_sample=False)
        stated.append(fact.lower() in tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).lower())
    return {"held_out": held, "control": perplexities(lm, tokenizer, control), "facts": stated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", default="runs/documents/train/merged")
    parser.add_argument("--base", default="bundled:SmolLM2-135M-Instruct")
    args = parser.parse_args()
    control = load_pairs(Path("data"), 20)
    results = {"base": score(resolve_model(args.base), control), "trained": score(args.trained, control)}
    rows = [{"model": name,
             "held-out answer perplexity (median)": round(statistics.median(r["held_out"]), 2),
             "held-out answer perplexity (mean)": round(statistics.mean(r["held_out"]), 2),
             "key facts stated (greedy)": f"{sum(r['facts'])} / {len(HELD_OUT)}",
             "control: self-instruct perplexity (median)": round(statistics.median(r["control"]), 2)}
            for name, r in results.items()]
    save("documents", {
        "title": "Documents as training data: the model trained on examples/documents vs its base",
        "setup": (f"configs/documents.yaml: SmolLM2-135M-Instruct + LoRA trained on the pairs its own bundled "
                  f"teacher wrote from examples/documents (4 files: Markdown, text, HTML, PDF about an invented "
                  f"island). {len(HELD_OUT)} held-out questions written for this benchmark (not the teacher's), "
                  f"each with a reference answer and a key fact; the control is the first 20 self-instruct "
                  f"instructions. Perplexity of the reference answer given the question (chat template), clipped "
                  f"at 100."),
        "rows": rows,
        "notes": [f"held-out questions: {'; '.join(q for q, _, _ in HELD_OUT)}",
                  "per question, base -> trained perplexity: " + "; ".join(
                      f"{b:.1f} -> {t:.1f}" for b, t in zip(results["base"]["held_out"],
                                                            results["trained"]["held_out"], strict=True))],
        "when": datetime.now(UTC).strftime("%Y-%m-%d"),
    })


if __name__ == "__main__":
    main()
