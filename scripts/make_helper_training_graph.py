"""Writes Tests/RuntimeTests/Fixtures/helper_training/: a small TensorFlow 1-style training graph
whose gradients use the helper ops TensorFlow's *_grad.py functions emit (Cumsum, Cumprod,
DivNoNan, StridedSliceGrad, MirrorPadGrad, FusedBatchNormGradV3, ConcatOffset, ShapeN,
ListDiff, InvertPermutation, DynamicStitch, UnsortedSegmentSum/Max, ...), and what TensorFlow
computes with it.

Run with TensorFlow installed (never a dependency of Kiln's build):
    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
    /tmp/tfvenv/bin/python scripts/make_helper_training_graph.py
"""
import json
import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
tf1.disable_eager_execution()
out_dir = os.path.join(os.path.dirname(__file__), "..", "Tests", "RuntimeTests", "Fixtures", "helper_training")

rng = np.random.RandomState(7)
g = tf.Graph()
with g.as_default():
    x = tf1.placeholder(tf.float32, [None, 6], name="x")        # batch unknown: gradient shapes fold at run time
    ids = tf1.placeholder(tf.int32, [None], name="ids")         # segment ids
    rows = tf1.placeholder(tf.int32, [None], name="rows")       # rows gathered from the hidden layer
    w = tf1.Variable(rng.uniform(-0.5, 0.5, (6, 5)).astype(np.float32), name="w", use_resource=False)
    b = tf1.Variable(rng.uniform(-0.1, 0.1, (5,)).astype(np.float32), name="b", use_resource=False)
    h = tf.matmul(x, w) + b                                     # [N, 5]
    c = tf.cumsum(h, axis=1)
    c2 = tf.math.cumprod(tf.tanh(h) * 0.5 + 1.0, axis=1, exclusive=True, reverse=True)
    s = h[:, 1:4:2]                                             # StridedSlice -> StridedSliceGrad
    p = tf.pad(s, [[0, 0], [1, 1]], mode="REFLECT")             # MirrorPad -> MirrorPadGrad
    r = tf.reverse(h, [1])
    cat = tf.concat([c, c2, p, r], axis=1)                      # ConcatV2 -> ConcatOffset, ShapeN
    seg = tf.math.unsorted_segment_sum(cat, ids, 3)
    segmax = tf.math.unsorted_segment_max(cat, ids, 3)
    picked = tf.gather(h, rows)                                 # IndexedSlices -> UnsortedSegmentSum
    prod = tf.reduce_prod(tf.tanh(h[:, :3]) + 1.5, axis=1)      # ListDiff, InvertPermutation, Cumprod
    gamma = tf1.Variable(rng.uniform(0.5, 1.5, (5,)).astype(np.float32), name="gamma", use_resource=False)
    beta = tf1.Variable(rng.uniform(-0.1, 0.1, (5,)).astype(np.float32), name="beta", use_resource=False)
    bn, _, _ = tf1.nn.fused_batch_norm(tf.reshape(h, [-1, 1, 1, 5]), gamma, beta, is_training=True)  # -> FusedBatchNormGradV3
    loss = tf.identity(tf.reduce_mean(tf.square(seg)) + 0.1 * tf.reduce_sum(segmax) +
                       tf.reduce_mean(tf.square(picked)) + tf.reduce_mean(prod) +
                       tf.reduce_mean(tf.square(bn - 0.3)), name="loss")
    gw, gb, ggamma = tf.gradients(loss, [w, b, gamma])
    ggamma = tf.identity(ggamma, name="grad_gamma")
    gw = tf.identity(gw, name="grad_w")
    gb = tf.identity(gb, name="grad_b")
    # The descent step as TensorFlow 1 graphs write it by hand (AssignSub on VariableV2).
    train = tf.group(tf1.assign_sub(w, 0.05 * gw), tf1.assign_sub(b, 0.05 * gb), tf1.assign_sub(gamma, 0.05 * ggamma), name="train")
    init = tf1.global_variables_initializer()

feeds = {
    "x:0": rng.uniform(-1, 1, (4, 6)).astype(np.float32),
    "ids:0": np.array([0, 1, 2, 1], np.int32),
    "rows:0": np.array([3, 0, 3], np.int32),
}
with tf1.Session(graph=g) as sess:
    fd = {g.get_tensor_by_name(k): v for k, v in feeds.items()}
    sess.run(init)
    before = sess.run(["loss:0", "grad_w:0", "grad_b:0", "grad_gamma:0"], fd)
    sess.run(train, fd)
    after = sess.run(["w:0", "b:0", "gamma:0", "loss:0"], fd)


def tj(a):
    a = np.asarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.reshape(-1).tolist()}


os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "graph.pb"), "wb") as f:
    f.write(g.as_graph_def().SerializeToString())
types = sorted({n.op for n in g.as_graph_def().node})
with open(os.path.join(out_dir, "expected.json"), "w") as f:
    json.dump({"tensorflow": tf.__version__, "init": init.name, "train": "train", "op_types": types,
               "feeds": {k: tj(v) for k, v in feeds.items()},
               "before_step": {"loss:0": tj(before[0]), "grad_w:0": tj(before[1]), "grad_b:0": tj(before[2]), "grad_gamma:0": tj(before[3])},
               "after_step": {"w:0": tj(after[0]), "b:0": tj(after[1]), "gamma:0": tj(after[2]), "loss:0": tj(after[3])}}, f, indent=1)
print("op types:", " ".join(types))
