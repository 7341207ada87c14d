#!/usr/bin/env python3
"""Stock PyTorch DistributedDataParallel training over the MPI backend.

Nothing here knows about qtopo: run it under mpirun and DDP's gradient all-reduces are
MPI_Allreduce calls, which qtopo takes when it is switched on with MCA parameters:

    mpirun -np 4 --mca coll_qtopo_priority 40 python3 train_ddp.py
    mpirun -np 4 --mca coll_qtopo_priority 40 --mca coll_qtopo_bits 8 python3 train_ddp.py

Data: Fashion-MNIST as gzip'd IDX files (Debian: apt-get install dataset-fashion-mnist,
which puts them in /usr/share/datasets/fashion-mnist; --data DIR for another place).
Each rank trains on its own shard of the training set (rank::world_size); rank 0 prints
the loss per epoch and the test accuracy at the end.
"""

import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP


def read_idx(path):
    """Reads a gzip'd IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(len(images), -1)
    return (x - 0.2860) / 0.3530, torch.from_numpy(labels.astype(np.int64))


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=60000,
                        help="use the first N training images (quick runs)")
    parser.add_argument("--batch", type=int, default=64, help="per rank")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    dist.init_process_group("mpi")
    rank, size = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "t10k")
    x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    x_train, y_train = x_train[rank::size], y_train[rank::size]

    model = DDP(MLP(args.hidden))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    nparams = sum(p.numel() for p in model.parameters())
    if 0 == rank:
        print(f"DDP over MPI: {size} ranks, {nparams} parameters "
              f"({4 * nparams} bytes of fp32 gradients per step)", flush=True)

    steps = 0
    start = time.time()
    for epoch in range(args.epochs):
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch * 100 + rank)
        order = torch.randperm(len(x_train), generator=g)
        # every rank must run the same number of steps (each is a collective)
        nbatches = len(x_train) // args.batch
        total = torch.zeros(2)
        model.train()
        for b in range(nbatches):
            idx = order[b * args.batch:(b + 1) * args.batch]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += torch.tensor([loss.item(), 1.0])
            steps += 1
        dist.all_reduce(total)
        if 0 == rank:
            print(f"epoch {epoch + 1}: mean training loss {total[0] / total[1]:.4f}", flush=True)

    model.eval()
    with torch.no_grad():
        correct = (model(x_test).argmax(dim=1) == y_test).sum().item()
    # the replicas must be identical: compare a checksum of the weights across ranks
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sums = torch.tensor([flat.double().sum().item()], dtype=torch.float64)
    lo, hi = sums.clone(), sums.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if 0 == rank:
        print(f"{steps} steps in {time.time() - start:.1f} s; test accuracy "
              f"{correct / len(y_test):.4f}; weights identical on all ranks: "
              f"{'yes' if lo.item() == hi.item() else 'NO'}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
