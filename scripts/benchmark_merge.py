"""`--merge`: write the task sections one run measured into an existing benchmarks.json, keeping the others.

Re-measuring one section (e.g. `--models segmenter`) should not throw away an hour of other measurements.
The header (machine, date, command, settings) stays the existing run's; each merged section carries the
settings it was measured under and `merged` says which sections a later run replaced, so the doc can say so.
"""

from __future__ import annotations

#: Sections a run can replace on its own: each renders from its own entry (and its own settings).
TASK_SECTIONS = ("detection", "segmentation", "transformer")


def merge_sections(existing: dict, fresh: dict) -> dict:
    """`existing` with the task sections `fresh` measured replaced by fresh's (see the module docstring)."""
    if fresh.get("models"):
        raise SystemExit("--merge replaces the detector / segmenter / vit sections only; the classifier rows share the "
                         "header's settings with the stream section: measure them without --merge")
    measured = [name for name in TASK_SECTIONS if fresh.get(name)]
    merged = dict(existing)
    for name in TASK_SECTIONS:  # a kept section keeps the settings it was measured under
        if merged.get(name) and "settings" not in merged[name]:
            merged[name] = {**merged[name], "settings": existing["settings"]}
    for name in measured:
        merged[name] = {**fresh[name], "settings": fresh["settings"]}
    merged["merged"] = [*existing.get("merged", []), {
        "sections": measured, "date": fresh["date"], "command": fresh["command"], "quick": fresh["quick"],
        "code_version": fresh["code_version"], "cpu_model": fresh["machine"].get("cpu_model")}]
    return merged
