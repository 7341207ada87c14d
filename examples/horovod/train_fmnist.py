"""Data-parallel training of a 784-1024-1024-10 perceptron on Fashion-MNIST with Horovod
and PyTorch: a plain Horovod script, nothing in it knows about qtopo.  Run it under
mpirun; whatever Open MPI does with Horovod's MPI_Allreduce calls (qtopo included, via
--mca coll_qtopo_priority 40) happens underneath.

    mpirun -np 2 $VENV/bin/python train_fmnist.py --epochs 1

Prints, on rank 0, the loss and test accuracy per epoch and
"final test_acc=<0..1> epochs=<n> seconds=<s>" (seconds: training time, evaluation
excluded).
"""

import argparse
import gzip
import os
import struct
import time

import torch
import torch.nn.functional as F
import horovod.torch as hvd


def load_idx(path):
    """An unsigned-byte IDX file (gzip'd) as a uint8 tensor of its shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">%dI" % ndims, data[4:4 + 4 * ndims])
    body = bytearray(data[4 + 4 * ndims:])
    count = 1
    for d in dims:
        count *= d
    if len(body) != count:
        raise ValueError("%s: %d data bytes, the header says %d" % (path, len(body), count))
    return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)


def load_set(data_dir, prefix, limit):
    images = load_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte.gz"))
    labels = load_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte.gz"))
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = (images.reshape(len(images), -1).float() / 255.0 - 0.2860) / 0.3530
    return x, labels.long()


def evaluate(model, x, y):
    """Test accuracy over all ranks (each scores a slice)."""
    model.eval()
    per = (len(x) + hvd.size() - 1) // hvd.size()
    lo, hi = hvd.rank() * per, min(len(x), (hvd.rank() + 1) * per)
    with torch.no_grad():
        correct = (model(x[lo:hi]).argmax(1) == y[lo:hi]).sum().float()
    model.train()
    return hvd.allreduce(correct, op=hvd.Sum, name="correct").item() / len(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=256, help="global batch")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--limit-train", type=int, default=0)
    p.add_argument("--limit-test", type=int, default=0)
    p.add_argument("--fp16", action="store_true", help="hvd.Compression.fp16")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args()

    hvd.init()
    torch.manual_seed(1)
    torch.set_num_threads(1)
    x, y = load_set(args.data, "train", args.limit_train)
    tx, ty = load_set(args.data, "t10k", args.limit_test)
    model = torch.nn.Sequential(torch.nn.Linear(784, args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    opt = hvd.DistributedOptimizer(
        opt, named_parameters=model.named_parameters(),
        compression=hvd.Compression.fp16 if args.fp16 else hvd.Compression.none)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)

    local = args.batch // hvd.size()
    steps = len(x) // args.batch
    seconds = 0.0
    gen = torch.Generator().manual_seed(2)
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        start = time.time()
        for s in range(steps):
            first = s * args.batch + hvd.rank() * local
            idx = perm[first:first + local]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        seconds += time.time() - start
        mean_loss = hvd.allreduce(torch.tensor(total / steps), name="loss").item()
        acc = evaluate(model, tx, ty)
        if hvd.rank() == 0:
            print("epoch %d loss=%.5f test_acc=%.4f train_s=%.3f" % (epoch, mean_loss, acc,
                                                                   seconds), flush=True)
    if hvd.rank() == 0:
        print("final test_acc=%.4f epochs=%d seconds=%.3f" % (acc, args.epochs, seconds),
              flush=True)
    hvd.shutdown()


if __name__ == "__main__":
    main()
