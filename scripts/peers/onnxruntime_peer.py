#!/usr/bin/env python3
"""ONNX Runtime (CPU execution provider) on `kiln bench`'s inference and stream workloads, for
`kiln bench --peers`.

The models are written with onnx.helper (opset 17) as tf2onnx writes a TensorFlow graph: the
digits CNN takes NHWC images and transposes them to NCHW, its weights are initializers (a frozen
model, so cnn_infer and cnn_infer_frozen run the same one), and ORT's own graph optimisations
(ORT_ENABLE_ALL: batch norm folded into the convolutions, fused activations) apply when the
session is made. The reductions and the chain take x as a fed input (an initializer would be
constant-folded away). Sessions run with intra_op_num_threads = --threads, inter_op_num_threads 1,
sequential execution. Timed like Kiln: session.run after 2 warm-up runs, samples the mean of a
batch of runs.

ONNX Runtime is not a dependency of Kiln. To run it by hand:
    python3 -m venv /tmp/peervenv && /tmp/peervenv/bin/pip install onnxruntime onnx
    /tmp/peervenv/bin/python scripts/peers/onnxruntime_peer.py [--workloads cnn_infer,...] [--samples 15] [--threads 2]
"""
import sys

import peer_common as pc


def load(a):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    def session(nodes, inputs, outputs, initializers=()):
        graph = helper.make_graph(nodes, "kiln_peer", inputs, outputs, initializer=list(initializers))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        o = ort.SessionOptions()
        o.intra_op_num_threads = a.threads
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model.SerializeToString(), o, providers=["CPUExecutionProvider"])

    def tensor(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    def cnn_infer():
        p = pc.cnn_weights()
        init = [numpy_helper.from_array(v, k) for k, v in {
            # TensorFlow's HWIO weights as ONNX's OIHW.
            "w1": p["w1"].transpose(3, 2, 0, 1), "w2": p["w2"].transpose(3, 2, 0, 1),
            "one16": np.ones(16, np.float32), "one32": np.ones(32, np.float32),
            "beta1": p["beta1"], "mean1": p["mean1"], "var1": p["var1"],
            "beta2": p["beta2"], "mean2": p["mean2"], "var2": p["var2"],
            "w3": p["w3"], "b3": p["b3"], "w4": p["w4"], "b4": p["b4"],
            "flat": np.array([-1, 512], np.int64)}.items()]
        n = helper.make_node
        nodes = [
            n("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]),
            n("Conv", ["nchw", "w1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            n("BatchNormalization", ["c1", "one16", "beta1", "mean1", "var1"], ["n1"], epsilon=1e-3),
            n("Relu", ["n1"], ["r1"]),
            n("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            n("BatchNormalization", ["c2", "one32", "beta2", "mean2", "var2"], ["n2"], epsilon=1e-3),
            n("Relu", ["n2"], ["r2"]),
            n("MaxPool", ["r2"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
            # Back to NHWC before flattening, so the dense weights see TensorFlow's order.
            n("Transpose", ["pool"], ["nhwc"], perm=[0, 2, 3, 1]),
            n("Reshape", ["nhwc", "flat"], ["flat_h"]),
            n("Gemm", ["flat_h", "w3", "b3"], ["d1"]),
            n("Relu", ["d1"], ["h1"]),
            n("Gemm", ["h1", "w4", "b4"], ["logits"]),
        ]
        s = session(nodes, [tensor("images", ["N", 8, 8, 1])], [tensor("logits", ["N", 10])], init)
        feed = {"images": pc.filled([pc.CNN_BATCH, 8, 8, 1])}
        return lambda: s.run(None, feed)

    def fed(nodes, shape, out_shape, data, extra=()):
        def setup():
            s = session(nodes, [tensor("x", shape)], [tensor("y", out_shape)], extra)
            feed = {"x": data}
            return lambda: s.run(None, feed)
        return setup

    n = pc.REDUCE_N
    rows = pc.filled([n, n])
    axes = lambda k: numpy_helper.from_array(np.array([k], np.int64), "axes")  # noqa: E731
    reduce = lambda k: [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)]  # noqa: E731
    consts = {k: numpy_helper.from_array(np.array(v, np.float32), k) for k, v in {"half": 0.5, "one": 1.0, "quarter": 0.25}.items()}
    mk = helper.make_node
    chain = [mk("Mul", ["x", "half"], ["a"]), mk("Add", ["a", "one"], ["b"]), mk("Tanh", ["b"], ["t"]), mk("Mul", ["t", "x"], ["u"]),
             mk("Mul", ["x", "quarter"], ["q"]), mk("Mul", ["q", "x"], ["v"]), mk("Sub", ["u", "v"], ["y"])]
    method = "InferenceSession.run (ORT_ENABLE_ALL)"
    cnn = pc.Workload(f"{method} of the digits CNN as a frozen ONNX model (BN folded by ORT), batch {pc.CNN_BATCH} fed", setup=cnn_infer)
    workloads = {
        "cnn_infer": cnn,
        "cnn_infer_frozen": cnn,
        "reduce_sum_rows": pc.Workload(f"{method} of ReduceSum(x, axis 1), x a fed [{n},{n}] array",
                                       setup=fed(reduce(1), [n, n], [n], rows, [axes(1)])),
        "reduce_sum_cols": pc.Workload(f"{method} of ReduceSum(x, axis 0), x a fed [{n},{n}] array",
                                       setup=fed(reduce(0), [n, n], [n], rows, [axes(0)])),
        "eltwise_chain_16M": pc.Workload(f"{method} of tanh(x*0.5+1)*x - 0.25*x*x, x a fed [16M] array",
                                         setup=fed(chain, [pc.ELTWISE_N], [pc.ELTWISE_N], pc.filled([pc.ELTWISE_N]), consts.values())),
    }
    return ort.__version__, workloads


if __name__ == "__main__":
    sys.exit(pc.main("onnxruntime", __doc__, load))
