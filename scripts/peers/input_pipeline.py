#!/usr/bin/env python3
"""Records per second of TensorFlow's input pipelines on the file `kiln bench`'s input_pipeline
workload reads, for `kiln bench --peers` (the workloads input_pipeline_Nt) or by hand.

The file: 100,000 tf.train.Examples, each a 28x28 uint8 image as `img_raw` (bytes) and an int64
`label` (i % 10), one TFRecord file, no compression (written on first use). Measured:
  (a) default, peer "tf1": TF1's queue pipeline (the tutorial's): string_input_producer ->
      TFRecordReader.read -> parse_single_example -> decode_raw(uint8) -> reshape [28,28] ->
      shuffle_batch(128, capacity 1000 + 3*128, min_after_dequeue 1000, num_threads N),
      start_queue_runners under a Coordinator;
  (b) --tf-data, peer "tf.data": TFRecordDataset -> map(parse + decode_raw + reshape,
      num_parallel_calls N) -> shuffle(1000) -> batch(128) -> prefetch(1), repeated.
Both run in graph mode through Session.run of the batch (the way Kiln is measured): after 20
warm-up batches (the shuffle buffer fills), one sample is a full pass (781 batches = 99,968
records), reported as seconds per batch (records/s = 128 / that). N is 1 and the cores.

TensorFlow is not a dependency of Kiln. To run it by hand:
    python3 -m venv /tmp/peervenv && /tmp/peervenv/bin/pip install tensorflow-cpu
    /tmp/peervenv/bin/python scripts/peers/input_pipeline.py [--tf-data] [--samples 3] [--file PATH]
"""
import os
import sys
import time

import peer_common as pc

RECORDS, BATCH, MIN_AFTER, WARMUP = 100_000, 128, 1000, 20
CAPACITY = MIN_AFTER + 3 * BATCH
PASS_BATCHES = RECORDS // BATCH


def load(a):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    tf.get_logger().setLevel("ERROR")  # the queue API's deprecation notices
    features = {"label": tf1.FixedLenFeature([], tf.int64), "img_raw": tf1.FixedLenFeature([], tf.string)}

    def write(path):
        """The same Examples `kiln bench` writes: pixel j of record i is (j + 7 i) % 256, label i % 10."""
        base = np.arange(28 * 28, dtype=np.int64)
        with tf.io.TFRecordWriter(path) as w:
            for i in range(RECORDS):
                img = ((base + i * 7) % 256).astype(np.uint8).tobytes()
                ex = tf.train.Example(features=tf.train.Features(feature={
                    "img_raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[img])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 10])),
                }))
                w.write(ex.SerializeToString())

    def parse(serialized):
        f = tf1.parse_single_example(serialized, features=features)
        return tf.reshape(tf1.decode_raw(f["img_raw"], tf.uint8), [28, 28]), f["label"]

    def queue_pipeline(threads):
        g = tf.Graph()
        with g.as_default():
            filename_queue = tf1.train.string_input_producer([a.file])
            _, serialized = tf1.TFRecordReader().read(filename_queue)
            batch = tf1.train.shuffle_batch(list(parse(serialized)), batch_size=BATCH, capacity=CAPACITY,
                                            min_after_dequeue=MIN_AFTER, num_threads=threads, seed=1)
        sess = tf1.Session(graph=g)
        # The runners keep reading until the process ends (daemon threads).
        tf1.train.start_queue_runners(sess=sess, coord=tf1.train.Coordinator())
        return sess, batch

    def dataset_pipeline(threads):
        g = tf.Graph()
        with g.as_default():
            ds = (tf.data.TFRecordDataset(a.file).map(parse, num_parallel_calls=threads)
                  .shuffle(MIN_AFTER, seed=1).batch(BATCH).prefetch(1).repeat())
            batch = tf1.data.make_one_shot_iterator(ds).get_next()
        return tf1.Session(graph=g), batch

    def measure(threads):
        """One sample: a full pass, in seconds per batch; the pipeline is built (and its 20 warm-up
        batches run) before the first."""
        state = {}

        def sample():
            if not state:
                if not os.path.exists(a.file):
                    os.makedirs(os.path.dirname(a.file), exist_ok=True)
                    write(a.file)
                state["sess"], state["batch"] = (dataset_pipeline if a.tf_data else queue_pipeline)(threads)
                for _ in range(WARMUP):
                    state["sess"].run(state["batch"])
            t0 = time.perf_counter()
            for _ in range(PASS_BATCHES):
                state["sess"].run(state["batch"])
            return (time.perf_counter() - t0) / PASS_BATCHES
        return sample

    how = ("tf.data: TFRecordDataset.map(parse, num_parallel_calls=N).shuffle(1000).batch(128).prefetch(1)" if a.tf_data else
           "TF1 queues: string_input_producer, TFRecordReader, parse_single_example, shuffle_batch(128, num_threads=N)")
    workloads = {f"input_pipeline_{t}t": pc.Workload(f"{how}, N={t}; a sample is a pass of {PASS_BATCHES} batches, per batch",
                                                      sample=measure(t), warmup=0)
                 for t in sorted({1, os.cpu_count() or 1})}
    return tf.__version__, workloads


def extra(p):
    p.add_argument("--tf-data", action="store_true", help="tf.data instead of TF1's queues")
    p.add_argument("--file", default=os.path.join("/tmp", "kiln-peers", "input_pipeline.tfrecord"))
    p.set_defaults(samples=3)


if __name__ == "__main__":
    sys.exit(pc.main(lambda a: "tf.data" if a.tf_data else "tf1", __doc__, load, extra=extra))
