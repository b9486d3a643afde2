/* The digits CNN as an ahead-of-time artifact: `make demo` trains it (Examples/Digits), compiles
 * the evaluation graph with its checkpoint by `kiln compile ... --name digits`, and links this
 * file with digits.o using cc alone. It classifies the test digits in batches of the batch size
 * the artifact was compiled for (the last batch padded with zeros) and prints the accuracy in
 * the words the session printed it. Usage: digits TEST_IMAGES.f32 TEST_LABELS.i64 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"

/* The whole file, or NULL with a message. */
static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = malloc(n > 0 ? (size_t)n : 1);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "%s: cannot read\n", path); fclose(f); free(data); return NULL; }
    fclose(f);
    *size = (size_t)n;
    return data;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s TEST_IMAGES.f32 TEST_LABELS.i64\n", argv[0]); return 2; }
    enum { batch = DIGITS_FEED0_DIM0, pixels = DIGITS_FEED0_ELEMENTS / DIGITS_FEED0_DIM0, classes = DIGITS_FETCH0_DIM1 };
    size_t image_bytes, label_bytes;
    float *images = read_file(argv[1], &image_bytes);
    int64_t *labels = read_file(argv[2], &label_bytes);
    if (!images || !labels) return 1;
    size_t count = label_bytes / sizeof(int64_t);
    if (image_bytes != count * pixels * sizeof(float)) {
        fprintf(stderr, "%zu bytes of images for %zu labels: expected %zu\n", image_bytes, count, count * pixels * sizeof(float));
        return 1;
    }
    static float x[DIGITS_FEED0_ELEMENTS], logits[DIGITS_FETCH0_ELEMENTS];
    const void *feeds[DIGITS_FEED_COUNT] = {x};
    void *fetches[DIGITS_FETCH_COUNT] = {logits};
    size_t correct = 0;
    for (size_t start = 0; start < count; start += batch) {
        size_t n = count - start < batch ? count - start : batch;
        memset(x, 0, sizeof x);
        memcpy(x, images + start * pixels, n * pixels * sizeof(float));
        if (digits_run(feeds, fetches) != DIGITS_OK) {
            char message[512];
            digits_last_error(message, sizeof message);
            fprintf(stderr, "digits_run failed: %s\n", message);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            /* argmax, first on ties (tf.argmax) */
            int best = 0;
            for (int c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
            correct += best == labels[start + i];
        }
    }
    /* the session's accuracy is a float32 mean */
    printf("digits (compiled artifact, %zu test digits in batches of %d): test_accuracy=%.4f\n", count, batch, (double)((float)correct / (float)count));
    free(images);
    free(labels);
    return 0;
}
