import pytest
import torch
import torch.nn.functional as F

from bench.errors import BenchError
from bench.train.models import AvgPool2x2, ConvNet, ResizeInput, create_model, default_depth


def test_convnet_matches_reference_layout():
    net = create_model("convnet", 3, 10, 32)
    assert isinstance(net, ConvNet) and net.depth == 3 and net.width == 128
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and all(n.num_groups == n.num_channels == 128 for n in norms)  # instance norm
    assert net.feature_dim == 128 * 4 * 4
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(126, 128, 8, 8), (10, 128, 4, 4), (3, 5, 16, 6), (2, 3, 2, 2)])
def test_fast_avg_pool_is_bit_identical_to_native(shape):
    """Forward, backward and the double backward of gradient matching: the same bits as avg_pool2d
    (a summation order or divisor change would show here as a last-bit difference)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    w = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g)

    def run(pool):
        xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        y = pool(xr)
        (gx,) = torch.autograd.grad((y * wr).sum(), xr, create_graph=True)
        gx.square().sum().backward()
        return y, gx, wr.grad

    for fast, native in zip(run(AvgPool2x2()), run(lambda t: F.avg_pool2d(t, 2, 2))):
        assert torch.equal(fast, native)
    assert torch.equal(AvgPool2x2()(x.to(memory_format=torch.channels_last)), F.avg_pool2d(x, 2, 2))


def test_fast_avg_pool_takes_the_native_op_where_it_does_not_apply(monkeypatch):
    import bench.train.models as models

    calls = []
    monkeypatch.setattr(models._StridedAvgPool2x2, "apply", lambda x: calls.append(x.shape) or F.avg_pool2d(x, 2, 2))
    pool = AvgPool2x2()
    for odd in [(1, 2, 5, 4), (1, 2, 4, 7)]:
        x = torch.randn(odd)
        assert torch.equal(pool(x), F.avg_pool2d(x, 2, 2))  # floor mode: the last row/column dropped
    assert calls == []
    pool(torch.randn(1, 2, 4, 4))
    assert calls == [(1, 2, 4, 4)]
    net = create_model("convnet", 1, 10, 8)
    assert sum(isinstance(m, AvgPool2x2) for m in net.modules()) == net.depth


def test_depth_by_resolution_keeps_last_map_at_least_2x2():
    assert default_depth(32) == 3 and default_depth(28) == 3 and default_depth(64) == 4
    assert default_depth(8) == 2
    net = create_model("convnet", 1, 10, 8)
    assert net.feature_dim == 128 * 2 * 2
    mnist = create_model("convnet", 1, 10, 28)  # padded like 32x32 in the reference
    assert mnist.feature_dim == 128 * 4 * 4


def test_variants_and_timm_models_with_resizing():
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in create_model("convnet_bn", 1, 10, 8).modules())
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))
                   for m in create_model("convnet_nn", 1, 10, 8).modules())
    for name in ("resnet18", "vit_tiny_patch16_224"):
        net = create_model(name, 1, 10, 8)
        assert isinstance(net, ResizeInput) and net.size == 32
        assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(BenchError, match="resnet18") as info:
        create_model("resnet-18", 1, 10, 8)
    assert "\n" not in str(info.value)


def test_vgg11_dc_matches_the_reference_layout():
    # DC benchmark VGG-11: 8 conv3x3 with instance norm, 5 max-pools, one 512 -> classes linear layer
    net = create_model("vgg11_dc", 3, 10, 32)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 5
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 8 and all(n.num_groups == n.num_channels for n in norms)
    assert net.classifier.in_features == 512 and net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert convs[0].padding == (1, 1) and create_model("vgg11_dc", 1, 10, 28).features[0].padding == (3, 3)
    small = create_model("vgg11_dc", 1, 10, 8)  # digits: resized up to 32x32
    assert isinstance(small, ResizeInput) and small.size == 32 and small(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    big = create_model("vgg11_dc", 3, 200, 64)  # TinyImageNet keeps 64x64, pooled to a 512-wide head
    assert big(torch.randn(2, 3, 64, 64)).shape == (2, 200)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in create_model("vgg11_dc_bn", 3, 10, 32).modules())
