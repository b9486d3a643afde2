#!/usr/bin/env python3
"""Records per second of TensorFlow's two input pipelines on the file `kiln bench`'s
input_pipeline workload reads, so the two can be set side by side on one machine.

The file: 100,000 tf.train.Examples, each a 28x28 uint8 image as `img_raw` (bytes) and an int64
`label` (i % 10), one TFRecord file, no compression. Measured:
  (a) TF1's queue pipeline (the tutorial's): string_input_producer -> TFRecordReader.read ->
      parse_single_example -> decode_raw(uint8) -> reshape [28,28] -> shuffle_batch(128,
      capacity 1000 + 3*128, min_after_dequeue 1000, num_threads N), start_queue_runners under a
      Coordinator;
  (b) tf.data: TFRecordDataset -> map(parse + decode_raw + reshape, num_parallel_calls N) ->
      shuffle(1000) -> batch(128) -> prefetch(1), repeated.
Both are run in graph mode through Session.run of the batch (the way Kiln is measured): after
20 warm-up batches (the shuffle buffer fills), one sample is the time of a full pass (781 batches
= 99,968 records); the rate printed is the median of --runs samples.

TensorFlow is not a dependency of Kiln. To run it, in a throwaway virtual environment:
    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
    /tmp/tfvenv/bin/python scripts/peers/input_pipeline.py [--threads 1,2] [--runs 3] [--file PATH]
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()
tf.get_logger().setLevel("ERROR")  # the queue API's deprecation notices

RECORDS, BATCH, MIN_AFTER, WARMUP = 100_000, 128, 1000, 20
CAPACITY = MIN_AFTER + 3 * BATCH
PASS_BATCHES = RECORDS // BATCH
FEATURES = {"label": tf1.FixedLenFeature([], tf.int64), "img_raw": tf1.FixedLenFeature([], tf.string)}


def write(path):
    """The same Examples `kiln bench` writes: image bytes (i * 7 + k) % 256, label i % 10."""
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
    f = tf1.parse_single_example(serialized, features=FEATURES)
    image = tf.reshape(tf1.decode_raw(f["img_raw"], tf.uint8), [28, 28])
    return image, f["label"]


def timed(sess, fetch, runs):
    for _ in range(WARMUP):
        sess.run(fetch)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(PASS_BATCHES):
            sess.run(fetch)
        samples.append(PASS_BATCHES * BATCH / (time.perf_counter() - t0))
    return samples


def queue_pipeline(path, threads, runs):
    with tf.Graph().as_default():
        filename_queue = tf1.train.string_input_producer([path])
        _, serialized = tf1.TFRecordReader().read(filename_queue)
        image, label = parse(serialized)
        batch = tf1.train.shuffle_batch([image, label], batch_size=BATCH, capacity=CAPACITY,
                                        min_after_dequeue=MIN_AFTER, num_threads=threads, seed=1)
        with tf1.Session() as sess:
            coord = tf1.train.Coordinator()
            runners = tf1.train.start_queue_runners(sess=sess, coord=coord)
            samples = timed(sess, batch, runs)
            coord.request_stop()
            sess.run(filename_queue.close(cancel_pending_enqueues=True))
            coord.join(runners, stop_grace_period_secs=5)
    return samples


def dataset_pipeline(path, threads, runs):
    with tf.Graph().as_default():
        ds = (tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=threads)
              .shuffle(MIN_AFTER, seed=1).batch(BATCH).prefetch(1).repeat())
        batch = tf1.data.make_one_shot_iterator(ds).get_next()
        with tf1.Session() as sess:
            return timed(sess, batch, runs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", default=os.path.join("/tmp", "kiln-peers", "input_pipeline.tfrecord"))
    p.add_argument("--threads", default=str(os.cpu_count()), help="comma-separated thread counts (default: the cores)")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    if not os.path.exists(a.file):
        os.makedirs(os.path.dirname(a.file), exist_ok=True)
        t0 = time.perf_counter()
        write(a.file)
        print(f"wrote {RECORDS} Examples to {a.file} in {time.perf_counter() - t0:.1f} s")
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} cores; batch {BATCH}, shuffle min_after_dequeue/buffer {MIN_AFTER}, "
          f"capacity {CAPACITY}; median of {a.runs} passes of {PASS_BATCHES} batches after {WARMUP} warm-up batches")
    for threads in [int(t) for t in a.threads.split(",")]:
        for name, run in (("tf1_queue_shuffle_batch", queue_pipeline), ("tf_data", dataset_pipeline)):
            samples = run(a.file, threads, a.runs)
            print(f"{name:24s} threads={threads}: {statistics.median(samples):9.0f} records/s "
                  f"(samples {', '.join(f'{s:.0f}' for s in samples)})", flush=True)


if __name__ == "__main__":
    main()
