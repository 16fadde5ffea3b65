"""conv2d_ext under DistributedDataParallel on two GPUs (benchmarks/ddp_train.py does the work)."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (DistributedDataParallel over NCCL)")
def test_ddp_two_gpus_matches_cudnn(tmp_path):
    pytest.importorskip("torchvision", reason="the script trains a torchvision ResNet")
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(ROOT, "benchmarks", "ddp_train.py"), "--steps", "4", "--out", str(tmp_path / "ddp.json")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "our kernels on devices [0]" in result.stdout and "our kernels on devices [1]" in result.stdout
