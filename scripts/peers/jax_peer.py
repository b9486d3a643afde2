#!/usr/bin/env python3
"""JAX (jax[cpu], XLA's CPU backend) on `kiln bench`'s workloads, for `kiln bench --peers`.

Each workload is one jax.jit function of device arrays, called and waited for
(block_until_ready) the way Kiln's Session.run returns a finished tensor; XLA's CPU client runs
with --threads intra-op threads (XLA_FLAGS=--xla_cpu_multi_thread_eigen=true
intra_op_parallelism_threads=N) on one host device. Timed like Kiln: 2 warm-up calls (the first
compiles), then samples that are the mean of a batch of calls; compile_mlp_sgd times a fresh
jax.jit of the step (parameters made, traced, compiled, first call) after one warm-up.

JAX is not a dependency of Kiln. To run it by hand:
    python3 -m venv /tmp/peervenv && /tmp/peervenv/bin/pip install 'jax[cpu]'
    /tmp/peervenv/bin/python scripts/peers/jax_peer.py [--workloads reduce_sum_rows,...] [--samples 15] [--threads 2]
"""
import os
import sys
import time

import peer_common as pc


def load(a):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={a.threads}").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    import numpy as np

    def resident(f, data):
        def setup():
            x = jax.device_put(data)
            g = jax.jit(f)
            return lambda: g(x).block_until_ready()
        return setup

    def mlp_params(key):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.truncated_normal(k1, -2, 2, (784, 200)) * 0.05, "b1": jnp.zeros(200),
                "w2": jax.random.truncated_normal(k2, -2, 2, (200, 10)) * 0.05, "b2": jnp.zeros(10)}

    def mlp_step_fn():
        def loss(p, x, y):
            h = jax.nn.relu(x @ p["w1"] + p["b1"])
            logits = h @ p["w2"] + p["b2"]
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

        def step(p, x, y):
            g = jax.grad(loss)(p, x, y)
            return jax.tree_util.tree_map(lambda w, d: w - 0.01 * d, p, g)
        return jax.jit(step, donate_argnums=0)

    fx, fy = (jax.device_put(v) for v in pc.mlp_feeds())

    def mlp_step():
        step = mlp_step_fn()
        state = {"p": mlp_params(jax.random.PRNGKey(1))}

        def run():
            state["p"] = step(state["p"], fx, fy)
            jax.block_until_ready(state["p"])
        return run

    def compile_mlp():
        t0 = time.perf_counter()
        step = mlp_step_fn()  # a new function: traced and compiled again
        jax.block_until_ready(step(mlp_params(jax.random.PRNGKey(1)), fx, fy))
        return time.perf_counter() - t0

    def cnn_infer():
        p = {k: jax.device_put(v) for k, v in pc.cnn_weights().items()}
        dims = ("NHWC", "HWIO", "NHWC")

        def bn(h, i):
            return (h - p[f"mean{i}"]) * jax.lax.rsqrt(p[f"var{i}"] + 1e-3) + p[f"beta{i}"]

        def f(x):
            h = jax.nn.relu(bn(jax.lax.conv_general_dilated(x, p["w1"], (1, 1), "SAME", dimension_numbers=dims), 1))
            h = jax.nn.relu(bn(jax.lax.conv_general_dilated(h, p["w2"], (1, 1), "SAME", dimension_numbers=dims), 2))
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
            h = jax.nn.relu(h.reshape(h.shape[0], 512) @ p["w3"] + p["b3"])
            return h @ p["w4"] + p["b4"]
        g = jax.jit(f)
        x = jax.device_put(pc.filled([pc.CNN_BATCH, 8, 8, 1]))
        return lambda: g(x).block_until_ready()

    n = pc.REDUCE_N
    rows = pc.filled([n, n])
    workloads = {
        "cnn_infer": pc.Workload(f"jit of the logits (weights closed over), batch {pc.CNN_BATCH} on the device", setup=cnn_infer),
        "reduce_sum_rows": pc.Workload(f"jit of x.sum(1), x a [{n},{n}] device array", setup=resident(lambda x: x.sum(1), rows)),
        "reduce_sum_cols": pc.Workload(f"jit of x.sum(0), x a [{n},{n}] device array", setup=resident(lambda x: x.sum(0), rows)),
        "eltwise_chain_16M": pc.Workload("jit of tanh(x*0.5+1)*x - 0.25*x*x, x a [16M] device array",
                                         setup=resident(lambda x: jnp.tanh(x * 0.5 + 1) * x - (x * 0.25) * x, pc.filled([pc.ELTWISE_N]))),
        "mlp_sgd_step": pc.Workload(f"jit of grad + SGD update, parameters donated, batch {pc.MLP_BATCH}", setup=mlp_step),
        "compile_mlp_sgd": pc.Workload("a fresh jit of the SGD step: parameters, trace, compile, first call", sample=compile_mlp, warmup=1),
    }
    del np
    return jax.__version__, workloads


if __name__ == "__main__":
    sys.exit(pc.main("jax", __doc__, load))
