"""The reference ConvNet (VICO-UoE/DatasetCondensation ``networks.py`` lines 36-110), re-stated to
check that ``bench.train.models.ConvNet`` is the same network (same modules, parameter order and init).

``first_pad=None`` applies the reference's rule (padding 3 on the first conv when the input has
one channel, meant for 28x28 MNIST); an explicit value overrides it.
"""

from __future__ import annotations

from torch import Tensor, nn


class ReferenceConvNet(nn.Module):
    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], net_width: int = 128,
                 net_depth: int = 3, first_pad: int | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = channel
        if im_size[0] == 28:
            im_size = (32, 32)
        shape_feat = [in_channels, im_size[0], im_size[1]]
        for d in range(net_depth):
            pad = (3 if channel == 1 and d == 0 else 1) if (first_pad is None or d > 0) else first_pad
            layers += [nn.Conv2d(in_channels, net_width, kernel_size=3, padding=pad)]
            shape_feat[0] = net_width
            layers += [nn.GroupNorm(shape_feat[0], shape_feat[0], affine=True)]  # 'instancenorm'
            layers += [nn.ReLU(inplace=True)]
            in_channels = net_width
            layers += [nn.AvgPool2d(kernel_size=2, stride=2)]
            shape_feat[1] //= 2
            shape_feat[2] //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(shape_feat[0] * shape_feat[1] * shape_feat[2], num_classes)

    def embed(self, x: Tensor) -> Tensor:
        out = self.features(x)
        # networks.py has out.view(...); on CPU a 1-channel DSA output can carry channels-last strides
        # (ambiguous for one channel) that mkldnn propagates, which .view rejects: reshape, no copy otherwise
        return out.reshape(out.size(0), -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))
