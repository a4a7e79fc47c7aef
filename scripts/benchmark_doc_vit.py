"""The transformer part of docs/benchmarks.md, from the payload's "transformer" entry (scripts/benchmark_vit.py).

Every number, choice and limit is computed from the payload; the prose only says how they were taken.
"""

from __future__ import annotations

from pathlib import Path

from benchmark_doc_task import format_num as _num
from benchmark_doc_task import format_pct as _pct

#: (row key part, name in the doc), in table order (scripts/benchmark_vit_models.ENGINES).
ENGINES = (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO"), ("tflite", "TFLite"))
PRECISIONS = (("fp32", "FP32"), ("int8", "INT8"))
ROLES = (("vit", "ViT"), ("cnn", "CNN"))
REPRODUCE = "python scripts/benchmark.py --models vit --out docs --merge"


def transformer_section(found: dict | None, settings: dict) -> list[str]:
    """Models, the per-engine table, ViT vs CNN, what limits the figures and how to reproduce them.

    `settings`: the run's; a section merged from another run (`--merge`) carries its own.
    """
    if not found:
        return []
    settings = found.get("settings") or settings
    lines = [f"## {found['title']}", "", *method(found, settings), ""]
    lines += models_table(found) + [""] + candidates_table(found) + [""]
    lines += engines_table(found) + [""] + versus_table(found) + [""]
    lines += ["What limits these figures:", ""] + [f"- {note}" for note in limits(found, settings)] + [""]
    lines += ["Reproduce this section alone, merged into the existing benchmarks:", "", "```", REPRODUCE, "```", ""]
    return lines


def method(found: dict, settings: dict) -> list[str]:
    size, vit, cnn = found["input_size"], found["models"]["vit"], found["models"]["cnn"]
    config = vit.get("config") or {}
    return [
        (f"What a transformer costs at the edge: the demo ViT (`{vit['architecture']}`, torchvision's "
         f"`VisionTransformer` with {config.get('patch_size', '?')}-pixel patches, {config.get('layers', '?')} "
         f"encoder layers of width {config.get('hidden', '?')}, {config.get('heads', '?')} heads, MLP "
         f"{config.get('mlp', '?')}) beside a CNN of similar accuracy (`{cnn['architecture']}`, chosen below), both "
         f"trained from scratch on the digits at {size}×{size} with `edgevision.train.train_classifier`, each with "
         "its architecture's own recipe (`TrainConfig.for_architecture`), each "
         "exported for ONNX Runtime, OpenVINO and TFLite in FP32 and in edgevision's INT8."),
        "",
        (f"- **Accuracy:** top-1 on the digits **{found['accuracy_split']} split** "
         f"({found.get('accuracy_images') or '?'} images), through the row's own engine and precision at "
         f"{size}×{size}; Δ against the same model in PyTorch FP32 on the same images. The "
         f"{found['selection_split']} split chose everything else (each model's best epoch, the CNN, parity)."),
        (f"- **Latency:** batch {settings['batch_size']} at **{size}×{size}**, {settings['threads']} engine "
         "threads, every row in a worker process of its own (`scripts/benchmark_paired.py`), "
         f"{settings['rounds']} paired rounds of {settings['iterations']} calls per block. A ViT's position "
         "embeddings fix its input size (the number of patches is part of the model), so it is timed at the size "
         "it was built for, not at the 224×224 of the classifier sections, and the CNN at the same size. "
         "*INT8 × FP32*: in every round the INT8 row is timed back to back with the FP32 row of the same model on "
         "the same engine; the figure is the median of the per-round ratios FP32 p50 ÷ INT8 p50 (above 1: INT8 "
         "is faster), min–max over rounds in brackets. *ViT ÷ CNN*: the same pairing, ViT p50 ÷ CNN p50."),
        (f"- **INT8:** `edgevision.compress.quantize(model, out, format=..., calibration=CalibrationConfig(data="
         f"<train split>, max_images={found['calibration_images']}))` with each engine's defaults. Parity on the "
         f"validation images: FP32 logits within {_num(found.get('fp32_relative_tolerance'))} (relative); INT8 "
         f"top-1 agreement with the torch model ≥ {_pct(found['int8_bench_agreement'])} (edgevision's own default "
         f"is {_pct(found['default_int8_agreement'])}; lowered here, as in the classifier sections, so a lossy "
         "INT8 bundle is measured and its loss shows in the top-1 column). A bundle edgevision refuses is a row "
         "saying why, not timed."),
        "- **Size:** the bundle's model files on disk.",
    ]


def models_table(found: dict) -> list[str]:
    lines = [("| model | architecture | parameters | MMACs per image | training (AdamW, one-cycle) | epochs (val chose) "
              "| val top-1 | test top-1, PyTorch FP32 |"), "|---|---|---|---|---|---|---|---|"]
    for role, name in ROLES:
        m = found["models"][role]
        lines.append(f"| {name} | `{m['architecture']}` | {_count(m.get('params'))} | {_mmacs(m.get('macs'))} | "
                     f"{_recipe(m.get('recipe'))} | {m['epochs']} (epoch {m['best_epoch']}) | {_pct(m['val_top1'])} | "
                     f"{_pct(m['test_top1'])} |")
    return lines


def _recipe(recipe: dict | None) -> str:
    if not recipe:
        return "—"
    return (f"lr {recipe['learning_rate']:g}, weight decay {recipe['weight_decay']:g}, "
            f"batch {recipe['batch_size']}")


def candidates_table(found: dict) -> list[str]:
    """How the CNN was chosen: every budget tried, the one closest to the ViT on val marked."""
    vit = found["models"]["vit"]
    plan = found.get("plan") or {}
    tried = found.get("cnn_candidates") or []
    floor = ""
    if found.get("classes") and found.get("cnn_chance_factor"):
        factor = found["cnn_chance_factor"]
        floor = (f" among those above {factor:g}× chance ({_pct(factor / found['classes'])} val top-1; below it a "
                 "classifier's outputs barely vary and it is no comparison)")
    lines = [(f"Choosing the CNN: each of {_names(plan.get('cnn_architectures'))} was trained for "
              f"{_epochs(plan.get('cnn_epochs'))} epoch(s) in turn, stopping at the first budget whose val top-1 "
              f"reached the ViT's ({_pct(vit['val_top1'])}); the budget closest to the ViT's val top-1 was taken"
              f"{floor}. Test top-1 is shown, not used."), "",
             "| candidate | epochs (val chose) | val top-1 | Δ val vs ViT pt | test top-1 | chosen |",
             "|---|---|---|---|---|---|"]
    for c in tried:
        lines.append(f"| `{c['architecture']}` | {c['epochs']} (epoch {c['best_epoch']}) | {_pct(c['val_top1'])} | "
                     f"{(c['val_top1'] - vit['val_top1']) * 100:+.2f} | {_pct(c['test_top1'])} | "
                     f"{'**yes**' if c['chosen'] else ''} |")
    return lines


def engines_table(found: dict) -> list[str]:
    rows, ratios, failures, parity = found["rows"], found["ratios"], found["failures"], found["parity"]
    lines = [("| model | engine | precision (computes in) | p50 ms | p90 ms | size MB | test top-1 | Δ top-1 pt | "
             "agreement with torch (val) | INT8 × FP32 | |"), "|" + "---|" * 11]
    for role, name in ROLES:
        torch_top1 = found["models"][role]["test_top1"]
        for engine, engine_name in ENGINES:
            for precision, precision_name in PRECISIONS:
                key = f"{role}_{engine}_{precision}"
                label = f"| {name} | {engine_name} | {precision_name}"
                if key in failures:
                    lines.append(f"{label} | — | — | — | — | — | — | — | **refused**: {_cell(failures[key])} |")
                    continue
                row = rows.get(key)
                agreed = _pct((parity.get(key) or {}).get("top1_agreement"))
                top1 = (found.get("accuracy") or {}).get(key, (row or {}).get("accuracy"))
                delta = "—" if top1 is None or torch_top1 is None else f"{(top1 - torch_top1) * 100:+.2f}"
                if row is None:
                    lines.append(f"{label} | — | — | — | {_pct(top1)} | {delta} | {agreed} | — | built, not timed "
                                 "(no other row to pair it with) |")
                    continue
                speedup = (_ratio(ratios, f"{role}_{engine}_fp32", key) if precision == "int8" else "")
                lines.append(f"{label} ({row['engine_precision']}) | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | "
                             f"{row['size_mb']:.2f} | {_pct(top1)} | {delta} | {agreed} | {speedup} | |")
    return lines


def versus_table(found: dict) -> list[str]:
    """The ViT against the CNN on each engine and precision, paired."""
    rows, ratios = found["rows"], found["ratios"]
    vit, cnn = found["models"]["vit"], found["models"]["cnn"]
    lines = [(f"What the transformer costs: `{vit['architecture']}` against `{cnn['architecture']}` on the same engine "
             "and precision (ViT ÷ CNN: median of the per-round paired ratios; above 1: the ViT is slower)."), "",
             "| engine | precision | ViT p50 ms | CNN p50 ms | ViT ÷ CNN latency | ViT size ÷ CNN size |",
             "|---|---|---|---|---|---|"]
    found_any = False
    for engine, engine_name in ENGINES:
        for precision, precision_name in PRECISIONS:
            a, b = rows.get(f"vit_{engine}_{precision}"), rows.get(f"cnn_{engine}_{precision}")
            if a is None or b is None:
                continue
            found_any = True
            lines.append(f"| {engine_name} | {precision_name} | {a['p50_ms']:.3f} | {b['p50_ms']:.3f} | "
                         f"{_ratio(ratios, f'vit_{engine}_{precision}', f'cnn_{engine}_{precision}')} | "
                         f"{a['size_mb'] / b['size_mb']:.2f}× |")
    return lines if found_any else lines[:2] + ["Not measured: no engine ran both models at one precision."]


def limits(found: dict, settings: dict) -> list[str]:
    """Plain observations from the payload: the machine, the models' size, the input size, what was refused."""
    vit, cnn, rows = found["models"]["vit"], found["models"]["cnn"], found["rows"]
    others = [r["others_cores"] for r in found.get("rounds", []) if r.get("others_cores") is not None]
    notes = [(f"The machine: {found.get('cpus') or '?'} logical CPUs, {settings['threads']} engine threads per row"
              + (f"; other processes used a median of {_median(others):.2f} and at most {max(others):.2f} CPUs "
                 "while rows were timed" if others else "")
              + ". Absolute milliseconds move with that load; the paired ratios cancel load that lasts longer "
              "than one pair, so compare ratios, not milliseconds.")]
    size = found["input_size"]
    p50s = [r["p50_ms"] for r in rows.values()]
    if p50s:
        notes.append(
            f"Tiny models at {size}×{size}: the ViT does {_mmacs(vit.get('macs'))} MMACs per image, the CNN "
            f"{_mmacs(cnn.get('macs'))}, and every row runs in {min(p50s):.3f}–{max(p50s):.3f} ms. At this scale a "
            "fixed per-call cost (graph dispatch, thread wake-up, quantise/dequantise at the edges) is a large share "
            "of each call, so these INT8 speed-ups and ViT ÷ CNN ratios describe small models at batch 1 and do not "
            "carry over to larger inputs or models.")
    notes.append(
        f"{size}×{size} is the ViT's only size: {size // (vit.get('config') or {}).get('patch_size', 1)}² patches are "
        "built into its position embeddings. Attention's cost grows with the square of the number of patches, so "
        "a ViT built for a larger input is not these figures scaled by its pixel count.")
    int8 = [found["ratios"].get(f"{role}_{engine}_fp32/{role}_{engine}_int8") for role, _ in ROLES
            for engine, _ in ENGINES]
    slower = [f"{_role(r)} on {_engine(r)}" for r in (x for x in int8 if x) if r["median"] < 1.0]
    if slower:
        notes.append("INT8 was slower than FP32 for " + ", ".join(slower) + " (paired median below 1×): the engine's "
                     "INT8 kernels plus the conversions between them cost more than they save at this size.")
    refused = [_label(k) for k in found["failures"]]
    if refused:
        notes.append("Refused by edgevision, so not timed (why: in the table): " + ", ".join(refused) + ".")
    low = [_label(k) for k, p in found["parity"].items() if k.endswith("_int8") and p.get("top1_agreement") is not None
           and p["top1_agreement"] < found["default_int8_agreement"]]
    if low:
        notes.append(f"Measured here but below edgevision's default INT8 agreement "
                     f"({_pct(found['default_int8_agreement'])}), so `quantize` with its default parity would refuse "
                     "them: " + ", ".join(low) + ".")
    images = found.get("accuracy_images")
    if images:
        notes.append(f"Top-1 is measured once per row on the same {images} test images, so 1 image = "
                     f"{100 / images:.2f} pt; differences of a point or two between rows are a handful of images.")
    return notes


def section_provenance(found: dict | None) -> list[str]:
    """Where the section's two models came from: built in this run, or reused (with the commit that built them)."""
    if not found:
        return []
    parts = []
    for role, name in ROLES:
        model = found["models"][role]
        item = model.get("provenance") or {}
        commit = str((item.get("built_by") or {}).get("commit", "unknown"))
        commit = commit[:12] if len(commit) == 40 else commit
        parts.append(f"{name} `{model['architecture']}` reused from `{Path(item['path']).name}` ({commit})"
                     if item.get("reused") else f"{name} `{model['architecture']}` built in this run")
    return [f"- **{found['title']} models:** " + "; ".join(parts)]


def _cell(text: str) -> str:
    """`text` safe inside a Markdown table cell (a `|` in an error message would split the cell)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _label(key: str) -> str:
    role, engine, precision = key.split("_")
    return f"{dict(ROLES)[role]} {dict(ENGINES)[engine]} {dict(PRECISIONS)[precision]}"


def _role(ratio: dict) -> str:
    return dict(ROLES)[ratio["candidate"].split("_")[0]]


def _engine(ratio: dict) -> str:
    return dict(ENGINES)[ratio["candidate"].split("_")[1]]


def _ratio(ratios: dict, reference: str, candidate: str) -> str:
    found = ratios.get(f"{reference}/{candidate}")
    return "—" if found is None else f"{found['median']:.2f}× ({found['min']:.2f}–{found['max']:.2f})"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _names(values: list[str] | None) -> str:
    return ", ".join(f"`{v}`" for v in values) if values else "?"


def _epochs(values: list[int] | None) -> str:
    return ", ".join(map(str, values)) if values else "?"




def _count(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e6:.2f} M"


def _mmacs(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e6:.1f}"
