"""Ignored scope: layers the user names by torch module path stay in float.

Users know their model by module names ("fc", "layer4.1"); engines know node names. The
TorchScript ONNX exporter names every node by its module path, one segment per level, each
segment the module's own name with any numeric atoms before it (torch's "unqualified" name):
module "layer4.1.conv2" becomes "/layer4/layer4.1/conv2/Conv", and OpenVINO keeps those names
(adding suffixes such as "/WithoutBiases") when it reads the ONNX file. So a module path maps
to every node under the prefix "/layer4/layer4.1/", which also covers its sub-modules. An entry
may instead be an engine node name itself (for an ONNX model from another framework).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ...errors import ConfigError, did_you_mean


def scope_prefix(module_name: str) -> str:
    """"layer4.1" → "/layer4/layer4.1/" (the exporter's node-name prefix for that module)."""
    atoms = module_name.split(".")
    return "/" + "/".join(_unqualified(atoms[: i + 1]) for i in range(len(atoms))) + "/"


def _unqualified(atoms: list[str]) -> str:
    """torch's exporter segment: the last non-numeric atom and the numeric atoms after it."""
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return ".".join(atoms)


def resolve_ignored_scope(ignored_scope: Sequence[str], node_names: Iterable[str], *, engine: str) -> list[str]:
    """Engine node names covered by `ignored_scope` (module paths or node names), in graph order.

    Raises ConfigError for an entry that matches no node, listing the module paths that exist.
    """
    names = list(node_names)
    selected: list[str] = []
    for entry in ignored_scope:
        entry = entry.strip()
        if not entry:
            raise ConfigError("ignored_scope has an empty entry; name torch modules such as 'fc' or 'layer4.1'.")
        prefix = scope_prefix(entry)
        matched = [n for n in names if n == entry or n.startswith(prefix)]
        if not matched:
            modules = module_paths(names)
            shown = ", ".join(modules[:12]) + (" …" if len(modules) > 12 else "")
            raise ConfigError(
                f"ignored_scope entry {entry!r} matches no layer of the {engine} graph. "
                f"Name a torch module path (e.g. {shown}) or an exact node name.{did_you_mean(entry, modules + names)}"
            )
        selected.extend(n for n in matched if n not in selected)
    return selected


def module_paths(node_names: Iterable[str]) -> list[str]:
    """Torch module paths recoverable from exporter node names ("/layer1/layer1.0/conv1/Conv" → "layer1.0.conv1")."""
    paths: list[str] = []
    for name in node_names:
        if not name.startswith("/"):
            continue
        path = ""
        for segment in (s for s in name.split("/")[1:-1] if s):
            path = f"{path}.{segment.split('.')[-1]}" if path else segment
            if path not in paths:
                paths.append(path)
    return paths
