"""Pruning transformers: a ViT's heads and MLPs shrink and it still runs, loads and exports; Swin is refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision import PreprocessSpec
from edgevision.compress import LatencyConfig, PruneConfig, prune
from edgevision.errors import CompressionError
from edgevision.export import export
from edgevision.model import CUSTOM_ARCHITECTURES, TrainedModel
from edgevision.runtimes import load_runtime

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
QUICK = LatencyConfig(runs=3, warmup=1)
LABELS = [str(d) for d in range(10)]
TINY_VIT = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 4, "hidden_dim": 64, "mlp_dim": 128}


def build_tiny_vit(*, num_classes: int, input_size: tuple[int, int] | None = None):
    """A CUSTOM_ARCHITECTURES builder, so TrainedModel.load can rebuild the tiny ViT from its name."""
    from edgevision._compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(**TINY_VIT, num_classes=num_classes)


def varied_classifier(module) -> None:
    """torchvision zero-initialises a ViT's classifier: every logit would be 0 and parity would prove nothing."""
    torch.nn.init.normal_(module.heads.head.weight, std=0.5)
    torch.nn.init.normal_(module.heads.head.bias, std=0.1)


@pytest.fixture
def tiny_vit(monkeypatch):
    monkeypatch.setitem(CUSTOM_ARCHITECTURES, "tiny_vit", f"{__name__}:build_tiny_vit")
    torch.manual_seed(0)
    module = build_tiny_vit(num_classes=10)
    varied_classifier(module)
    return TrainedModel(module=module, labels=LABELS, preprocess=PreprocessSpec(size=(32, 32)),
                        architecture="tiny_vit", name="tiny_vit")


def attention_layers(model: TrainedModel) -> list:
    return [layer for layer in model.module.modules() if isinstance(layer, torch.nn.MultiheadAttention)]


def mlp_widths(model: TrainedModel) -> list[int]:
    return [block.mlp[0].out_features for block in model.module.encoder.layers]


def test_tiny_vit_pruned_to_a_mac_target_saves_loads_and_exports(tiny_vit, tmp_path):
    pruned, report = prune(tiny_vit, config=PruneConfig(target_macs_ratio=0.6, round_to=4, latency=QUICK))

    assert 0.45 <= report.macs_ratio <= 0.6, report.describe()  # at or just below the target
    assert report.after.params < report.before.params and report.after.latency_ms > 0
    assert tiny_vit.module.hidden_dim == 64 and mlp_widths(tiny_vit) == [128, 128], "the input is not modified"
    width = pruned.module.hidden_dim
    assert width < 64 and width == pruned.module.class_token.shape[-1] == pruned.module.conv_proj.out_channels
    assert pruned.module.encoder.pos_embedding.shape == (1, 17, width)
    for attention in attention_layers(pruned):
        assert attention.num_heads == 4 and attention.embed_dim == width and width % 4 == 0
        assert attention.head_dim * 4 == width and attention.in_proj_weight.shape == (3 * width, width)
    assert all(hidden < 128 and hidden % 4 == 0 for hidden in mlp_widths(pruned))
    assert pruned.module.heads.head.out_features == 10, "the classifier keeps its outputs"

    example = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        logits = pruned.module(example)
    assert logits.shape == (4, 10) and logits.std(dim=0).min() > 0, "outputs must vary across inputs"

    loaded = TrainedModel.load(pruned.save(tmp_path / "vit.pt"))
    assert loaded.module.hidden_dim == width
    with torch.inference_mode():
        assert torch.equal(loaded.module(example), logits)

    bundle = export(loaded, tmp_path / "onnx", format="onnx")
    assert bundle.manifest.compression["prune"] == pruned.notes["prune"]
    with load_runtime(bundle, "onnxruntime") as runtime:
        engine_logits = runtime.infer(example.numpy())
    np.testing.assert_allclose(engine_logits, logits.numpy(), rtol=1e-3, atol=1e-4)


def test_each_head_keeps_its_own_channels(tiny_vit):
    """The same number of channels go from every head, and the q rows that stay in head h came from head h."""
    pruned, _ = prune(tiny_vit, config=PruneConfig(channel_ratio=0.5, round_to=4, latency=QUICK))
    before, after = tiny_vit.module.conv_proj.weight.detach(), pruned.module.conv_proj.weight.detach()
    kept = [next(i for i in range(64) if torch.equal(before[i], row)) for row in after]  # residual channels kept
    assert len(kept) == 32 and [sum(i // 16 == head for i in kept) for head in range(4)] == [8, 8, 8, 8]
    q_before = attention_layers(tiny_vit)[0].in_proj_weight.detach()[:64]
    q_after = attention_layers(pruned)[0].in_proj_weight.detach()[:32]
    assert torch.equal(q_after, q_before[kept][:, kept]), "head h's queries are head h's own, in order"


def test_every_iterative_step_keeps_whole_heads(tiny_vit):
    """Intermediate steps are rounded too: an unrounded width would not split into 4 heads and the forward would fail."""
    progress: list[float] = []
    pruned, report = prune(tiny_vit, config=PruneConfig(channel_ratio=0.5, round_to=4, steps=3, latency=QUICK),
                           on_progress=lambda _step, _steps, ratio: progress.append(ratio))
    assert len(progress) == 3 and 1.0 > progress[0] > progress[1] > progress[2] == pytest.approx(report.macs_ratio)
    assert pruned.module.hidden_dim == 32


def build_tiny_vit_at_48(*, num_classes: int, input_size: tuple[int, int] | None = None):
    return type(build_tiny_vit(num_classes=num_classes))(**{**TINY_VIT, "image_size": 48}, num_classes=num_classes)


def test_vit_saved_at_another_image_size_loads(tiny_vit, tmp_path, monkeypatch):
    """The architecture's builder makes 48 px; the checkpoint's position embedding says 32 px, and wins."""
    monkeypatch.setitem(CUSTOM_ARCHITECTURES, "tiny_vit_48", f"{__name__}:build_tiny_vit_at_48")
    loaded = TrainedModel.load(tiny_vit.save(tmp_path / "vit.pt"), architecture="tiny_vit_48")
    example = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert loaded.module.image_size == 32 and loaded.module.seq_length == 17
        assert torch.equal(loaded.module(example), tiny_vit.module(example))


def test_swin_is_refused_with_the_reason():
    from edgevision.model import build_architecture

    swin = TrainedModel(module=build_architecture("swin_t", num_classes=10), labels=LABELS,
                        preprocess=PreprocessSpec(size=(64, 64)), architecture="swin_t")
    with pytest.raises(CompressionError, match=r"Cannot prune a torchvision SwinTransformer: .*F\.linear"):
        prune(swin, config=PruneConfig(target_macs_ratio=0.6, latency=QUICK))


class CachedWidth(torch.nn.Module):
    """A model whose own code reads a width it cached at construction, with no entry in prune_arch."""

    def __init__(self) -> None:
        super().__init__()
        self.channels = 16
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.body = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = self.body(self.stem(x).relu()).relu()
        n, _, h, w = x.shape
        return self.fc(x.reshape(n, self.channels, h * w).mean(dim=2))


def test_a_model_that_breaks_after_pruning_is_a_named_compression_error():
    model = TrainedModel(module=CachedWidth(), labels=LABELS, preprocess=PreprocessSpec(size=(16, 16)), name="cached")
    with pytest.raises(CompressionError, match=r"no longer runs: the model's own forward \(CachedWidth\) raised"):
        prune(model, config=PruneConfig(channel_ratio=0.5, latency=QUICK))


@pytest.mark.slow
def test_vit_b_16_at_64_px(tmp_path):
    from edgevision.model import build_architecture

    torch.manual_seed(0)
    module = type(build_architecture("vit_b_16", num_classes=10))(
        image_size=64, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072, num_classes=10)
    varied_classifier(module)
    model = TrainedModel(module=module, labels=LABELS, preprocess=PreprocessSpec(size=(64, 64)),
                         architecture="vit_b_16", name="vit_b_16_64")
    pruned, report = prune(model, config=PruneConfig(target_macs_ratio=0.6, latency=LatencyConfig(runs=10, warmup=2)))

    assert 0.5 <= report.macs_ratio <= 0.6, report.describe()
    width = pruned.module.hidden_dim
    assert width < 768 and width % 24 == 0  # a multiple of round_to=8 and of the 12 heads
    assert all(attention.embed_dim == width for attention in attention_layers(pruned))
    loaded = TrainedModel.load(pruned.save(tmp_path / "vit_b_16.pt"))  # built at 224 px, conformed to 64
    example = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert loaded.module.image_size == 64
        assert torch.equal(loaded.module(example), pruned.module(example))
