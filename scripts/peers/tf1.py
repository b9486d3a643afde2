#!/usr/bin/env python3
"""TensorFlow 1 graph mode (tf.compat.v1: Graph, Session.run) on `kiln bench`'s workloads, for
`kiln bench --peers`; with --xla the same graphs with XLA auto-clustering on the CPU
(TF_XLA_FLAGS=--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit and global_jit_level ON_2).

Each Session runs with intra_op_parallelism_threads = --threads (default: the cores) and
inter_op_parallelism_threads = 1, as Kiln's bench runs on its pool of one worker per core.
Timed like Kiln: Session.run of the fetch after 2 warm-up runs; a sample is the mean of a batch of
runs (1000 below 0.1 ms, 50 below 1 ms, else 1); compile_mlp_sgd and digits_train time graph
construction, the Session, the initialisers and the runs, after one warm-up.

TensorFlow is not a dependency of Kiln. To run it by hand:
    python3 -m venv /tmp/peervenv && /tmp/peervenv/bin/pip install tensorflow-cpu
    /tmp/peervenv/bin/python scripts/peers/tf1.py [--xla] [--workloads reduce_sum_rows,...] [--samples 15] [--threads 2]
"""
import os
import sys
import time

import peer_common as pc


def load(a):
    if a.xla:
        # Before TensorFlow is imported: it reads the flags once.
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") + " --tf_xla_auto_jit=2 --tf_xla_cpu_global_jit").strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    tf.get_logger().setLevel("ERROR")

    def config():
        c = tf1.ConfigProto(intra_op_parallelism_threads=a.threads, inter_op_parallelism_threads=1)
        if a.xla:
            c.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_2
        return c

    def session(g):
        return tf1.Session(graph=g, config=config())

    def variable(name, value):
        """A variable holding `value`, loaded through a placeholder (a 64 MiB constant would sit in the graph)."""
        v = tf1.get_variable(name, shape=value.shape, dtype=tf.float32, initializer=tf1.zeros_initializer())
        return v, (v.initializer, v.assign(tf1.placeholder_with_default(value, value.shape)))

    def resident(build, data):
        """Session.run of `build(x)` for a variable x holding `data`."""
        def setup():
            g = tf.Graph()
            with g.as_default():
                x, (init, load_op) = variable("x", data)
                y = build(x)
            s = session(g)
            s.run(init)
            s.run(load_op)
            return lambda: s.run(y)
        return setup

    def mlp_graph():
        x = tf1.placeholder(tf.float32, [None, 784], name="x")
        y = tf1.placeholder(tf.int64, [None], name="y")
        w1 = tf1.Variable(tf1.truncated_normal([784, 200], stddev=0.05, seed=1))
        b1 = tf1.Variable(tf.zeros([200]))
        w2 = tf1.Variable(tf1.truncated_normal([200, 10], stddev=0.05, seed=2))
        b2 = tf1.Variable(tf.zeros([10]))
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        logits = tf.matmul(h, w2) + b2
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        return x, y, tf1.train.GradientDescentOptimizer(0.01).minimize(loss)

    def mlp_step():
        g = tf.Graph()
        with g.as_default():
            x, y, train = mlp_graph()
            init = tf1.global_variables_initializer()
        s = session(g)
        s.run(init)
        fx, fy = pc.mlp_feeds()
        return lambda: s.run(train, {x: fx, y: fy})

    def compile_mlp():
        t0 = time.perf_counter()
        g = tf.Graph()
        with g.as_default():
            x, y, train = mlp_graph()
            init = tf1.global_variables_initializer()
        fx, fy = pc.mlp_feeds()
        with session(g) as s:
            s.run(init)
            s.run(train, {x: fx, y: fy})
        return time.perf_counter() - t0

    def cnn(images, training, p):
        """The digits CNN (peer_common.cnn_weights); batch norm from its moving statistics unless training."""
        updates = []

        def bn(h, n, i):
            beta = tf1.Variable(p[f"beta{i}"])
            mean, var = tf1.Variable(p[f"mean{i}"], trainable=False), tf1.Variable(p[f"var{i}"], trainable=False)
            if not training:
                return tf1.nn.fused_batch_norm(h, tf.ones([n]), beta, mean=mean, variance=var, epsilon=1e-3, is_training=False)[0]
            out, bm, bv = tf1.nn.fused_batch_norm(h, tf.ones([n]), beta, epsilon=1e-3, is_training=True)
            updates.extend([tf1.assign_sub(mean, (mean - bm) * 0.1), tf1.assign_sub(var, (var - bv) * 0.1)])
            return out

        h = tf.nn.relu(bn(tf.nn.conv2d(images, tf1.Variable(p["w1"]), 1, "SAME"), 16, 1))
        h = tf.nn.relu(bn(tf.nn.conv2d(h, tf1.Variable(p["w2"]), 1, "SAME"), 32, 2))
        h = tf.nn.max_pool2d(h, 2, 2, "SAME")
        h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 512]), tf1.Variable(p["w3"])) + tf1.Variable(p["b3"]))
        if training:
            h = tf1.nn.dropout(h, rate=0.5, seed=3)
        return tf.matmul(h, tf1.Variable(p["w4"])) + tf1.Variable(p["b4"]), updates

    def cnn_infer():
        g = tf.Graph()
        with g.as_default():
            images = tf1.placeholder(tf.float32, [None, 8, 8, 1])
            logits, _ = cnn(images, False, pc.cnn_weights())
            init = tf1.global_variables_initializer()
        s = session(g)
        s.run(init)
        feed = {images: pc.filled([pc.CNN_BATCH, 8, 8, 1])}
        return lambda: s.run(logits, feed)

    digits = pc.digits_data()

    def digits_train():
        """Examples/Digits/main.swift's training with fed arrays: Adam on a staircase decay of 3e-3
        (x0.9 every 100 steps), batch-norm updates before each step, dropout 0.5, then an exponential
        moving average (0.99) of the weights; every step also fetches the loss and the accuracy."""
        t0 = time.perf_counter()
        g = tf.Graph()
        with g.as_default():
            tf1.set_random_seed(7)
            images = tf1.placeholder(tf.float32, [None, 8, 8, 1])
            labels = tf1.placeholder(tf.int64, [None])
            logits, updates = cnn(images, True, pc.cnn_weights())
            loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
            accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))
            step = tf1.train.get_or_create_global_step()
            lr = tf1.train.exponential_decay(3e-3, step, 100, 0.9, staircase=True)
            with tf.control_dependencies(updates):
                minimize = tf1.train.AdamOptimizer(lr).minimize(loss, global_step=step)
            ema = tf1.train.ExponentialMovingAverage(0.99, num_updates=step)
            with tf.control_dependencies([minimize]):
                train = tf.group(ema.apply(tf1.trainable_variables()))
            init = tf1.global_variables_initializer()
        x, y = digits
        with session(g) as s:
            s.run(init)
            for rows in pc.digits_batches():
                s.run([loss, accuracy, train], {images: x[rows], labels: y[rows]})
        return time.perf_counter() - t0

    n = pc.REDUCE_N
    rows = pc.filled([n, n])
    mode = "TF1 Session.run" + (" with XLA auto-clustering (ON_2, CPU global jit)" if a.xla else "")
    workloads = {
        "cnn_infer": pc.Workload(f"{mode} of the logits, batch {pc.CNN_BATCH} fed, weights in variables", setup=cnn_infer),
        "reduce_sum_rows": pc.Workload(f"{mode} of reduce_sum(x, 1), x a [{n},{n}] variable", setup=resident(lambda x: tf.reduce_sum(x, 1), rows)),
        "reduce_sum_cols": pc.Workload(f"{mode} of reduce_sum(x, 0), x a [{n},{n}] variable", setup=resident(lambda x: tf.reduce_sum(x, 0), rows)),
        "eltwise_chain_16M": pc.Workload(f"{mode} of tanh(x*0.5+1)*x - 0.25*x*x, x a [16M] variable",
                                         setup=resident(lambda x: tf.tanh(x * 0.5 + 1) * x - (x * 0.25) * x, pc.filled([pc.ELTWISE_N]))),
        "mlp_sgd_step": pc.Workload(f"{mode} of the SGD step, batch {pc.MLP_BATCH} fed", setup=mlp_step),
        "compile_mlp_sgd": pc.Workload("graph construction + Session + init + first SGD step" + (" (XLA compiles)" if a.xla else ""),
                                       sample=compile_mlp, warmup=1),
    }
    if not a.xla:
        workloads["digits_train"] = pc.Workload(
            f"graph construction + Session + init + {pc.digits_steps()} Adam steps (batch {pc.DIGITS_BATCH}, fed)", sample=digits_train, warmup=1)
    del np
    return tf.__version__, workloads


if __name__ == "__main__":
    sys.exit(pc.main(lambda a: "xla" if a.xla else "tf1", __doc__, load,
                     extra=lambda p: p.add_argument("--xla", action="store_true", help="XLA auto-clustering on the CPU")))
