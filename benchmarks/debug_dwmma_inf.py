# One-off diagnostic (session 17): where tiled:depthwise_mma's forward differs from PyTorch with an inf input, and
# the filter its wrong tiles effectively used (least squares over one finite channel).
import os
import torch
import torch.nn.functional as F
import conv2d_ext
from conv2d_ext.testing import random_tensor
os.environ["CONV2D_EXT_EXPERIMENTAL"] = "1"
torch.set_printoptions(precision=2, linewidth=200, sci_mode=False)
for dtype in (torch.float16, torch.bfloat16):
    x = random_tensor((2, 16, 12, 40), dtype, seed=1, channels_last=True)
    x[1, 3, 5, 20] = float("inf")
    w = random_tensor((16, 1, 7, 7), dtype, seed=2)
    y = conv2d_ext.conv2d(x, w, padding=3, groups=16, variant={"forward": "tiled:depthwise_mma"}).double()
    ref = F.conv2d(x.double(), w.double(), padding=3, groups=16)
    fin = torch.isfinite(ref)
    print(dtype, "nonfinite mismatches", (torch.isfinite(y) != fin).sum().item(),
          "wrong per (n, c):", (((y - ref).abs() > 0.05 * ref.abs() + 0.05) & fin).sum(dim=(2, 3)).tolist())
    for c in (0, 5):
        cols = F.unfold(x[1:2, c:c + 1].double(), 7, padding=3)[0].T  # [480, 49]
        sol = torch.linalg.lstsq(cols.cpu(), y[1, c].flatten().cpu()[:, None]).solution.view(7, 7)
        print(" channel", c, "effective filter - filter:\n", sol - w[c, 0].double().cpu())
        print(" filter:\n", w[c, 0].double().cpu())
