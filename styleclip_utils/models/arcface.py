"""ArcFace IR-SE50 (TreB1eN/InsightFace_Pytorch, as vendored by pSp/e4e/StyleCLIP as model_irse.Backbone),
written to be key-for-key compatible with `model_ir_se50.pth`. `weights.official.load_arcface` loads it."""
import torch
import torch.nn.functional as F
from torch import nn

# units per stage; the first unit of each stage halves the resolution (112 -> 56 -> 28 -> 14 -> 7)
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)


class SEModule(nn.Module):
    """Squeeze-and-excitation: rescale channels by a gate computed from their global average.
    1×1 convs without bias (not Linear) because that is how the weights are stored (fc1/fc2 [C', C, 1, 1])."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x):
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class BottleneckIR(nn.Module):
    """Improved residual unit (BN-conv-PReLU-conv-BN, + SE for 'ir_se'); the stride sits on the second conv."""

    def __init__(self, cin, cout, stride, se=True):
        super().__init__()
        if cin == cout:
            # same width: the shortcut only subsamples. MaxPool2d with kernel 1 is a strided pick, and
            # has no weights, which is why the file has no shortcut_layer keys for these units.
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        layers = [nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.PReLU(cout),
                  nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        if se:
            layers.append(SEModule(cout, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class Backbone(nn.Module):
    """ArcFace IR(-SE) backbone: 112×112 image in [-1, 1] -> L2-normalised 512-d embedding.

    The official forward ends with l2_norm, so this one does too (same interface as IdentityNet).
    `drop_ratio` only matters in training; IDLoss always runs the net in eval mode."""

    def __init__(self, num_layers=50, mode="ir_se", drop_ratio=0.4, affine=True, input_size=112):
        super().__init__()
        if num_layers not in STAGE_UNITS:
            raise ValueError(f"num_layers must be one of {sorted(STAGE_UNITS)}, got {num_layers}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {input_size}")
        self.input_size = input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        # output_layer is defined before body, as in the original, so state_dict() lists keys in the file's order
        side = input_size // 16
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(512 * side * side, 512), nn.BatchNorm1d(512, affine=affine))
        units, cin = [], 64
        for n, cout in zip(STAGE_UNITS[num_layers], STAGE_WIDTHS):
            for i in range(n):
                units.append(BottleneckIR(cin, cout, stride=2 if i == 0 else 1, se=mode == "ir_se"))
                cin = cout
        self.body = nn.Sequential(*units)  # flat: keys are body.0 ... body.23 for 50 layers

    def forward(self, x):
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=1)

