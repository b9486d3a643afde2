"""What every peer script of `kiln bench --peers` shares: the workloads' data (the same values
Kiln's bench feeds), the timing method (Kiln's: warm-up, then samples that are each the mean of
a batch of runs), and the two ways a script is run.

By hand, a script prints one line per workload:
    python3 scripts/peers/<peer>.py [--workloads NAME,...] [--samples 15] [--rounds 1] [--threads N]
Under `kiln bench --peers`, with --serve, it speaks JSON lines on stdin/stdout: first a hello
({"peer", "version", "threads", "workloads", "method"}, or {"peer", "skipped": why} when its
packages cannot be imported), then for each request {"workload", "samples"} one answer
({"workload", "median", "min", "samples"} in seconds, or {"workload", "error"}). Kiln sends a
request after each of its own rounds, so Kiln and the peers are sampled in turn.
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

# Kiln's bench data: element i of a tensor filled with key k is ((7 i + k) % 13) * 0.05 - 0.3.


def filled(shape, k=1):
    import numpy as np
    n = 1
    for d in shape:
        n *= d
    i = np.arange(n, dtype=np.int64)
    return (((i * 7 + k) % 13).astype(np.float32) * np.float32(0.05) - np.float32(0.3)).reshape(shape)


# The shapes of Kiln's workloads (Sources/KilnCLI/Bench.swift).
ELTWISE_N = 16 << 20          # y = tanh(x*0.5 + 1) * x - 0.25*x*x over a [16M] float32 variable
REDUCE_N = 4096               # reduce_sum over axis 1 (rows) or axis 0 (columns) of a [4096, 4096] variable
MLP_BATCH = 128               # 784-200-10 relu MLP, sparse softmax cross entropy, SGD lr 0.01
CNN_BATCH = 256               # the digits CNN's inference (see cnn_weights)
DIGITS = 1500                 # digits training: 1500 digits, batch 64, DIGITS_EPOCHS epochs, fed arrays
DIGITS_BATCH = 64
DIGITS_EPOCHS = 10


def mlp_feeds():
    import numpy as np
    return filled([MLP_BATCH, 784], 3), (np.arange(MLP_BATCH) % 10).astype(np.int64)


def digits_data():
    """1500 8x8 digits (pixels 0-16 scaled to 0-1) and labels: pixel j of digit i is (5 j + 3 i) % 17,
    label i % 10 (`kiln bench`'s digits_train uses the same; a step's time does not depend on them)."""
    import numpy as np
    i = np.arange(DIGITS, dtype=np.int64)[:, None]
    j = np.arange(64, dtype=np.int64)[None, :]
    images = (((5 * j + 3 * i) % 17).astype(np.float32) / 16).reshape(DIGITS, 8, 8, 1)
    return images, (np.arange(DIGITS) % 10).astype(np.int64)


def digits_batches():
    """The steps of digits training: each epoch the digits in a seeded shuffled order, in batches of
    64 with the short last batch kept (23 of 64 and one of 28 per epoch)."""
    import numpy as np
    rng = np.random.default_rng(7)
    for _ in range(DIGITS_EPOCHS):
        order = rng.permutation(DIGITS)
        for b in range(0, DIGITS, DIGITS_BATCH):
            yield order[b:b + DIGITS_BATCH]


def digits_steps():
    return DIGITS_EPOCHS * -(-DIGITS // DIGITS_BATCH)


def cnn_weights(seed=1):
    """The digits CNN's parameters (values only set the data; the time depends on the shapes):
    conv 3x3x1x16 (no bias) + batch norm (offset, no scale, eps 1e-3) + relu, conv 3x3x16x32 + batch
    norm + relu, max-pool 2x2 stride 2 SAME, dense 512x64 + relu, dense 64x10."""
    import numpy as np
    r = np.random.default_rng(seed)

    def n(*shape, s=0.1):
        return (r.standard_normal(shape) * s).astype(np.float32)
    return {
        "w1": n(3, 3, 1, 16), "beta1": n(16), "mean1": n(16), "var1": (1 + r.random(16)).astype(np.float32),
        "w2": n(3, 3, 16, 32), "beta2": n(32), "mean2": n(32), "var2": (1 + r.random(32)).astype(np.float32),
        "w3": n(512, 64), "b3": n(64), "w4": n(64, 10), "b4": n(10),
    }


def batch_size(run):
    """Kiln's Bench.batchSize: runs per sample, so a sample lasts well above the clock's resolution."""
    run()
    t0 = time.perf_counter()
    run()
    once = time.perf_counter() - t0
    return 1000 if once < 1e-4 else 50 if once < 1e-3 else 1


class Workload:
    """A run to time (`run`, after `setup` once) or, when `sample` is given, a function that
    measures one sample itself (compile-included workloads, the input pipeline)."""

    def __init__(self, method, setup=None, sample=None, warmup=2):
        self.method, self.setup, self.custom, self.warmup = method, setup, sample, warmup
        self.run = None
        self.batch = 1

    def samples(self, count):
        if self.custom is not None:
            for _ in range(self.warmup):
                self.custom()
            self.warmup = 0
            return [self.custom() for _ in range(count)]
        if self.run is None:
            self.run = self.setup()
            for _ in range(self.warmup):
                self.run()
            self.batch = batch_size(self.run)
        out = []
        for _ in range(count):
            t0 = time.perf_counter()
            for _ in range(self.batch):
                self.run()
            out.append((time.perf_counter() - t0) / self.batch)
        return out


def threads_default():
    return int(os.environ.get("KILN_PEERS_THREADS", os.cpu_count() or 1))


def arguments(description, extra=None):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", action="store_true", help="speak JSON lines on stdin/stdout (kiln bench --peers)")
    p.add_argument("--workloads", default="", help="comma-separated workload names (default: all this peer has)")
    p.add_argument("--samples", type=int, default=15, help="samples per round (default 15)")
    p.add_argument("--rounds", type=int, default=1, help="rounds; the median is over all samples")
    p.add_argument("--threads", type=int, default=threads_default(), help="intra-op threads (default: the cores)")
    if extra:
        extra(p)
    return p


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(peer, description, load, extra=None):
    """`load(args)` imports the peer's packages and returns (version, {name: Workload}); an
    ImportError (or any failure to start) makes the peer skipped, with the reason."""
    a = arguments(description, extra).parse_args()
    peer = peer(a) if callable(peer) else peer
    try:
        version, workloads = load(a)
    except Exception as e:  # noqa: BLE001 - any failure to import or start is a reason to skip
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
        if a.serve:
            send({"peer": peer, "skipped": reason})
            return 0
        print(f"{peer}: skipped ({reason})", file=sys.stderr)
        return 1
    wanted = [w for w in a.workloads.split(",") if w] or list(workloads)
    if a.serve:
        send({"peer": peer, "version": version, "threads": a.threads, "workloads": list(workloads),
              "method": {k: w.method for k, w in workloads.items()}})
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            name = req.get("workload")
            try:
                s = workloads[name].samples(int(req.get("samples", 5)))
                send({"workload": name, "median": statistics.median(s), "min": min(s), "samples": s})
            except Exception as e:  # noqa: BLE001 - reported to Kiln, which prints it beside the workload
                traceback.print_exc(file=sys.stderr)
                send({"workload": name, "error": f"{type(e).__name__}: {e}".splitlines()[0]})
        return 0
    print(f"{peer} {version}, {a.threads} intra-op threads; median of {a.rounds} x {a.samples} samples after warm-up")
    for name in wanted:
        if name not in workloads:
            print(f"{name:24s} (not measured by {peer}; it has {', '.join(workloads)})")
            continue
        s = [x for _ in range(a.rounds) for x in workloads[name].samples(a.samples)]
        print(f"{name:24s} median {statistics.median(s) * 1e3:10.3f} ms  min {min(s) * 1e3:10.3f} ms   {workloads[name].method}", flush=True)
    return 0
