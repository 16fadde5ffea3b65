#!/usr/bin/env python3
"""Train a converted torchvision ResNet under DistributedDataParallel (NCCL, one process per GPU) and check it
against the same run on nn.Conv2d (cuDNN): the loss curve and the final weights must match, and every one of our
kernels must run on the process's own GPU.

    torchrun --nproc_per_node=2 benchmarks/ddp_train.py --steps 5 [--out results.json]

float64 by default, so the two runs differ only by rounding far below the tolerance: a few SGD steps of a ResNet
with BatchNorm on random data amplify fp32 rounding differences into percent-level loss differences within 4 steps
(seen on an H100), which would test the optimiser's chaos rather than our kernels. `--dtype float32` runs fp32
with TF32 off (give it a looser --rtol). NCCL's NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as the GPU
machines here require.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import conv2d_ext  # noqa: E402


def build_model(device, dtype):
    import torchvision

    torch.manual_seed(0)  # same initial weights on every rank and for both runs
    return torchvision.models.resnet18(num_classes=10).to(device=device, dtype=dtype)


def train(model, device, dtype, rank, steps, batch, size):
    ddp = DDP(model, device_ids=[device.index], gradient_as_bucket_view=True)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(device=device).manual_seed(1000 + rank)  # each rank its own data, same for both runs
    losses = []
    for _ in range(steps):
        x = torch.randn(batch, 3, size, size, device=device, generator=gen, dtype=dtype)
        y = torch.randint(0, 10, (batch,), device=device, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(mean.item() / dist.get_world_size())
    return ddp, losses


def our_kernel_devices(ddp, device, dtype, batch, size):
    """Devices our kernels ran on during one training step, and the number of peer-to-peer copies in it."""
    x = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
    y = torch.randint(0, 10, (batch,), device=device)
    torch.cuda.synchronize(device)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        F.cross_entropy(ddp(x), y).backward()
        torch.cuda.synchronize(device)
    ours, peer_copies = set(), 0
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        if "conv2d_ext" in e.name:
            ours.add(e.device_index)
        if "PtoP" in e.name:
            peer_copies += 1
    return ours, peer_copies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--out", default=None, help="write the loss curves and checks here (rank 0)")
    args = parser.parse_args()

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", device_id=device)
    rank, world = dist.get_rank(), dist.get_world_size()
    dtype = getattr(torch, args.dtype)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True

    ref_ddp, ref_losses = train(build_model(device, dtype), device, dtype, rank, args.steps, args.batch, args.size)
    model = conv2d_ext.convert(build_model(device, dtype))
    ours_ddp, our_losses = train(model, device, dtype, rank, args.steps, args.batch, args.size)
    kernel_devices, peer_copies = our_kernel_devices(ours_ddp, device, dtype, args.batch, args.size)

    max_weight_err = 0.0
    for p_ours, p_ref in zip(ours_ddp.module.parameters(), ref_ddp.module.parameters()):
        err = ((p_ours - p_ref).norm() / p_ref.norm().clamp_min(1e-30)).item()
        max_weight_err = max(max_weight_err, err)
    loss_err = max(abs(a - b) / abs(b) for a, b in zip(our_losses, ref_losses))
    checks = {
        "loss_curves_match": loss_err <= args.rtol,
        "weights_match": max_weight_err <= args.rtol,
        "our_kernels_only_on_own_gpu": kernel_devices == {local_rank},
        "no_peer_copies": peer_copies == 0,
    }
    ok = torch.tensor([all(checks.values())], device=device, dtype=torch.int32)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    print(f"rank {rank}/{world} on {device}: loss ours {['%.5f' % v for v in our_losses]} cuDNN "
          f"{['%.5f' % v for v in ref_losses]} | max loss rel err {loss_err:.2e} | max weight rel err "
          f"{max_weight_err:.2e} | our kernels on devices {sorted(kernel_devices)} | peer copies {peer_copies} | "
          f"{checks}", flush=True)
    if rank == 0 and args.out:
        with open(args.out, "w") as f:
            json.dump({"world_size": world, "dtype": args.dtype, "gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
                       "losses_ours": our_losses, "losses_cudnn": ref_losses, "max_loss_rel_err": loss_err,
                       "max_weight_rel_err": max_weight_err, "checks": checks}, f, indent=2)
    dist.destroy_process_group()
    return 0 if ok.item() == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
