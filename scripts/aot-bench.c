/* Times one `kiln compile` artifact with one float32 feed and one fetch (scripts/aot-bench.sh).
 * Built with -DHEADER='"NAME.h"' -DNAME=name -DUP=NAME. Usage:
 *   aot-bench RUNS          median wall time of NAME_run on deterministic inputs ($THREADS:
 *                           NAME_set_threads before the first run, as KILN_THREADS caps Session's pool)
 *   aot-bench --npy FILE    writes those inputs as a .npy file (for `kiln bench GRAPH`) */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include HEADER

#define CAT3(a, b, c) a##b##c
#define SYM(n, s) CAT3(n, _, s)
#define MAC(n, s) CAT3(n, _, s)
#define STR2(x) #x
#define STR(x) STR2(x)

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    static float x[MAC(UP, FEED0_ELEMENTS)], y[MAC(UP, FETCH0_ELEMENTS)];
    uint64_t s = 1;
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) / (double)(1 << 24));   /* [0, 1), like pixel intensities */
    }
    if (argc == 3 && strcmp(argv[1], "--npy") == 0) {
        static const long long shape[] = MAC(UP, FEED0_SHAPE);
        char header[256];
        int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
        for (int d = 0; d < MAC(UP, FEED0_RANK); d++) n += snprintf(header + n, sizeof header - n, "%lld,%s", shape[d], d + 1 < MAC(UP, FEED0_RANK) ? " " : "");
        n += snprintf(header + n, sizeof header - n, "), }");
        while ((10 + n + 1) % 64) header[n++] = ' ';
        header[n++] = '\n';
        FILE *f = fopen(argv[2], "wb");
        if (!f) { perror(argv[2]); return 1; }
        unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 255), (unsigned char)(n >> 8)};
        fwrite(magic, 1, 10, f);
        fwrite(header, 1, n, f);
        fwrite(x, 1, sizeof x, f);
        fclose(f);
        return 0;
    }
    int runs = argc > 1 ? atoi(argv[1]) : 1000;
    if (runs < 1) runs = 1;
    const void *feeds[] = {x};
    void *fetches[] = {y};
    double *t = malloc(sizeof(double) * runs);
    /* before the pool starts: $THREADS, else one per online CPU (the default) */
    int threads = SYM(NAME, set_threads)(getenv("THREADS") ? atoi(getenv("THREADS")) : 0);
    for (int i = 0; i < 10; i++) if (SYM(NAME, run)(feeds, fetches) != 0) { fprintf(stderr, "run failed\n"); return 1; }
    for (int i = 0; i < runs; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        SYM(NAME, run)(feeds, fetches);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
    }
    qsort(t, runs, sizeof(double), compare);
    printf("artifact %s: median %.1f us, min %.1f us over %d runs, %d thread(s)\n", STR(NAME), t[runs / 2], t[0], runs, threads);
    free(t);
    return 0;
}
