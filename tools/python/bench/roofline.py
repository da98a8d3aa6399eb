"""The machine's roofline and each model's bytes and FLOPs per token.

    tools/.venv/bin/python tools/python/bench/roofline.py [--threads 2]     # prints JSON

* read bandwidth: a C kernel (gcc -O3 -march=native -fopenmp) summing a 1 GiB float array with --threads
  OpenMP threads (first-touched by the same threads); best of several passes.
* peak FMA: a C kernel with 16 independent FMA chains per thread on GCC vector types of 512 and 256 bits,
  --threads threads; best width, best of several passes. FLOPs = 2 per lane per FMA.
* bytes per decoded token (weights_bytes_per_token): every matrix of the model read once in the mlxc (MLX
  .pte) storage format — fp32 4 B, bf16 2 B, 8-bit 1 B + a 2-byte scale and a 2-byte bias per group of 32,
  4-bit 0.5 B + the same per group — plus the norms (one embedding row per token is negligible and not
  counted). kv_bytes_per_token: the KV cache the exported graph attends over on every step (all
  max_context_len slots, masked), fp32 (bf16 for the bf16 model).
* decode bound = bandwidth / weight bytes per token; prefill bound = FMA peak / (2 · matrix parameters).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BW_C = r"""
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
    int passes = argc > 1 ? atoi(argv[1]) : 10;
    float *a = aligned_alloc(64, bytes);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 7);
    double best = 0, sink = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now();
        float s = 0;
        #pragma omp parallel for schedule(static) reduction(+:s)
        for (size_t i = 0; i < n; i++) s += a[i];
        double dt = now() - t0, gbs = bytes / dt / 1e9;
        sink += s;
        if (gbs > best) best = gbs;
    }
    printf("%.3f %g\n", best, sink);
    return 0;
}
"""

FMA_C = r"""
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifndef W
#define W 64
#endif
typedef float vf __attribute__((vector_size(W)));
#define LANES (W / 4)
#define CHAINS 16
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 20000000L;
    int passes = argc > 2 ? atoi(argv[2]) : 5;
    double best = 0, sink = 0;
    for (int p = 0; p < passes; p++) {
        int threads = 1;
        double t0 = now();
        #pragma omp parallel reduction(+:sink)
        {
            #pragma omp single
            threads = omp_get_num_threads();
            vf acc[CHAINS], m, b;
            for (int l = 0; l < LANES; l++) { m[l] = 0.999999f; b[l] = 1e-6f * (omp_get_thread_num() + 1); }
            for (int c = 0; c < CHAINS; c++) for (int l = 0; l < LANES; l++) acc[c][l] = (float)c;
            for (long i = 0; i < iters; i++) {
                #pragma GCC unroll 16
                for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * m + b;
                __asm__ volatile("" : "+x"(acc[0]));
            }
            for (int c = 0; c < CHAINS; c++) for (int l = 0; l < LANES; l++) sink += acc[c][l];
        }
        double dt = now() - t0;
        double gflops = 2.0 * LANES * CHAINS * (double)iters * threads / dt / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("%.3f %g\n", best, sink);
    return 0;
}
"""


def _compile_run(src: str, flags, args, threads: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        c, exe = Path(d) / "k.c", Path(d) / "k"
        c.write_text(src)
        subprocess.run(["gcc", "-O3", "-march=native", "-fopenmp", "-ffast-math", *flags, str(c), "-o", str(exe)],
                       check=True, capture_output=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="spread")
        out = subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True, text=True, env=env).stdout
        return float(out.split()[0])


def machine_roofline(threads: int) -> dict:
    bw = _compile_run(BW_C, [], [12], threads)
    fma = {f"{w * 8}bit": _compile_run(FMA_C, [f"-DW={w}"], [20000000, 5], threads) for w in (64, 32)}
    best_w = max(fma, key=fma.get)
    return {"threads": threads, "read_bandwidth_gb_s": bw, "fma_gflops_by_width": fma,
            "fma_peak_gflops": fma[best_w], "fma_best_width": best_w,
            "method": "C kernels, gcc -O3 -march=native -fopenmp; bandwidth: sum of a 1 GiB float array, best of 12; "
                      "FMA: 16 independent chains per thread, best of 5"}


BYTES_PER_WEIGHT = {"fp32": 4.0, "bf16": 2.0, "8bit": 1.0 + 4.0 / 32, "4bit": 0.5 + 4.0 / 32}


def model_costs(cfg: dict, precision: str) -> dict:
    d, L, hd = cfg["dim"], cfg["n_layers"], cfg["head_dim"]
    h, hk, hid, v = cfg["n_heads"], cfg["n_kv_heads"], cfg["hidden_dim"], cfg["vocab_size"]
    per_layer = d * h * hd + 2 * d * hk * hd + h * hd * d + 3 * d * hid
    matrix_params = L * per_layer + v * d          # + output projection
    embed_params = v * d
    norm_params = (2 * L + 1) * d
    weights = matrix_params * BYTES_PER_WEIGHT[precision] + norm_params * 4
    kv_elem = 2 if precision == "bf16" else 4
    kv = L * 2 * hk * cfg["max_context_len"] * hd * kv_elem
    return {"matrix_params": matrix_params, "total_params": matrix_params + embed_params + norm_params,
            "weights_bytes_per_token": weights, "kv_bytes_per_token": kv,
            "flops_per_token": 2 * matrix_params}


def llc_bytes() -> int:
    """Largest cache level's size (sysfs)."""
    best = 0
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in base.glob("index*"):
        try:
            txt = (idx / "size").read_text().strip()
            n = int(txt[:-1]) * {"K": 1024, "M": 1 << 20}[txt[-1]] if txt[-1] in "KM" else int(txt)
            best = max(best, n)
        except (OSError, ValueError, KeyError):
            pass
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    r = machine_roofline(args.threads)
    r["llc_bytes"] = llc_bytes()
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
