"""PyTorch CE-Net, its Table VI variants and the U-Net baseline, written from docs/reference.md.

Only the tests import this (torch is a test dependency). Module and parameter names follow
the authors' state dicts (`firstconv`, `encoder1`, `dblock.dilate1`, `spp.conv`, `decoder4.conv1`,
`finaldeconv1`, `inc.conv.conv.0`, ...) so the converters see exactly the keys a real
checkpoint has. The encoder is torchvision's `resnet34(weights=None)`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


def conv(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Conv2d:
    """A biased 'same' convolution (padding = dilation * (kernel // 2))."""
    return nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation)


class DenseAtrous(nn.Module):
    """DAC with four shared convolutions; rates (1, 3, 5), or all 1 without atrous."""

    def __init__(self, channels: int, atrous: bool = True):
        super().__init__()
        r2, r3 = (3, 5) if atrous else (1, 1)
        self.dilate1 = conv(channels, channels, 3)
        self.dilate2 = conv(channels, channels, 3, r2)
        self.dilate3 = conv(channels, channels, 3, r3)
        self.conv1x1 = conv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.dilate1(x)
        d21 = self.dilate2(d1)
        branches = (d1, self.conv1x1(self.dilate2(x)), self.conv1x1(d21),
                    self.conv1x1(self.dilate3(d21)))
        return x + sum(F.relu(b) for b in branches)


class MultiKernelPooling(nn.Module):
    """RMP: max-pools 2/3/5/6 (kernel = stride), one shared 1x1 conv C -> 1, bilinear back."""

    def __init__(self, channels: int, sizes: tuple[int, ...] = (2, 3, 5, 6)):
        super().__init__()
        self.sizes = sizes
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        maps = [F.interpolate(self.conv(F.max_pool2d(x, k, k)), size=size, mode='bilinear',
                              align_corners=False) for k in self.sizes]
        return torch.cat(maps + [x], dim=1)


class Inception(nn.Module):
    """relu(1x1 x) + relu(3x3 1x1 x) + relu(5x5 1x1 x) + maxpool3x3(x); no residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1x1 = conv(channels, channels, 1)
        self.conv3x3 = conv(channels, channels, 3)
        self.conv5x5 = conv(channels, channels, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1x1(x)
        return (F.relu(a) + F.relu(self.conv3x3(a)) + F.relu(self.conv5x5(a))
                + F.max_pool2d(x, 3, 1, 1))


class InceptionResidual(nn.Module):
    """a = relu(1x1 x), b = relu(3x3 1x1 x), m = relu(1x1' [a, b]), x + relu(1x1 m)."""

    def __init__(self, channels: int):
        super().__init__()
        self.dilate1 = conv(channels, channels, 1)
        self.dilate3 = conv(channels, channels, 3)
        self.conv1x1 = conv(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.dilate1(x)
        merged = F.relu(self.conv1x1(torch.cat([F.relu(a), F.relu(self.dilate3(a))], dim=1)))
        return x + F.relu(self.dilate1(merged))


class Decoder(nn.Module):
    """1x1 conv to C/4 + BN + ReLU, 3x3/2 transposed conv + BN + ReLU, 1x1 conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cin // 4
        self.conv1, self.norm1 = nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid)
        self.deconv2 = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1)
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv3, self.norm3 = nn.Conv2d(mid, cout, 1), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        x = F.relu(self.norm2(self.deconv2(x)))
        return F.relu(self.norm3(self.conv3(x)))


# Table VI variant -> (block stored as `dblock`, DAC atrous, RMP stored as `spp`).
VARIANT_LAYOUT = {
    'cenet': ('dac', True, True),
    'backbone': (None, True, False),
    'backbone_dac': ('dac', True, False),
    'dac_no_atrous': ('dac', False, False),
    'backbone_rmp': (None, True, True),
    'backbone_inception': ('inception', True, False),
    'backbone_inception_resnet': ('inception_resnet', True, False),
}


class TorchCENet(nn.Module):
    """CE-Net on torchvision ResNet-34; `variant` is a key of VARIANT_LAYOUT. Returns logits."""

    def __init__(self, variant: str = 'cenet', num_classes: int = 1):
        super().__init__()
        block, atrous, pooling = VARIANT_LAYOUT[variant]
        resnet = torchvision.models.resnet34(weights=None)
        self.firstconv, self.firstbn = resnet.conv1, resnet.bn1
        self.encoder1, self.encoder2 = resnet.layer1, resnet.layer2
        self.encoder3, self.encoder4 = resnet.layer3, resnet.layer4
        if block == 'dac':
            self.dblock = DenseAtrous(512, atrous)
        elif block == 'inception':
            self.dblock = Inception(512)
        elif block == 'inception_resnet':
            self.dblock = InceptionResidual(512)
        if pooling:
            self.spp = MultiKernelPooling(512)
        self.decoder4 = Decoder(516 if pooling else 512, 256)
        self.decoder3 = Decoder(256, 128)
        self.decoder2 = Decoder(128, 64)
        self.decoder1 = Decoder(64, 64)
        self.finaldeconv1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.finalconv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.finalconv3 = nn.Conv2d(32, num_classes, 3, padding=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four encoder stage outputs e1..e4."""
        x = F.max_pool2d(F.relu(self.firstbn(self.firstconv(x))), 3, 2, 1)
        stages = []
        for layer in (self.encoder1, self.encoder2, self.encoder3, self.encoder4):
            x = layer(x)
            stages.append(x)
        return stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1, e2, e3, e4 = self.encode(x)
        for name in ('dblock', 'spp'):
            if hasattr(self, name):
                e4 = getattr(self, name)(e4)
        d = self.decoder4(e4) + e3
        d = self.decoder3(d) + e2
        d = self.decoder2(d) + e1
        d = self.decoder1(d)
        d = F.relu(self.finalconv2(F.relu(self.finaldeconv1(d))))
        return self.finalconv3(d)


class DoubleConv(nn.Module):
    """(3x3 conv, BN, ReLU) x 2 in a Sequential `.conv` (state-dict indices 0, 1, 3, 4)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _InConv(nn.Module):
    """The input double conv, nested once more (`inc.conv.conv.0`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Down(nn.Module):
    """2x2 max-pool then a double conv (`down1.max_pool_conv.1.conv.0`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.max_pool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.max_pool_conv(x)


class _Up(nn.Module):
    """Bilinear x2 (align_corners=True), concat [skip, x], double conv (`up1.conv.conv.0`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)
        return self.conv(torch.cat([skip, x], dim=1))


class _OutConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class TorchUNet(nn.Module):
    """The paper's U-Net baseline (widths 64..512, bilinear align_corners=True). Returns logits."""

    def __init__(self, num_classes: int = 1):
        super().__init__()
        self.inc = _InConv(3, 64)
        self.down1, self.down2 = _Down(64, 128), _Down(128, 256)
        self.down3, self.down4 = _Down(256, 512), _Down(512, 512)
        self.up1, self.up2 = _Up(1024, 256), _Up(512, 128)
        self.up3, self.up4 = _Up(256, 64), _Up(128, 64)
        self.outc = _OutConv(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in (self.down1, self.down2, self.down3, self.down4):
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in (self.up1, self.up2, self.up3, self.up4):
            y = up(y, skips.pop())
        return self.outc(y)


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Give every bias and BN statistic non-trivial random values (in place), eval mode.

    Zero biases and identity BN statistics would hide a transposed or misnamed tensor.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(t.shape, generator=gen)

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(uniform(m.weight, 0.5, 1.5))
                m.bias.copy_(uniform(m.bias, -0.2, 0.2))
                m.running_mean.copy_(uniform(m.running_mean, -0.2, 0.2))
                m.running_var.copy_(uniform(m.running_var, 0.5, 2.0))
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                m.bias.copy_(uniform(m.bias, -0.1, 0.1))
    return module.eval()


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters (BN running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())
