"""The machine's roofline and each model's bytes and FLOPs per token.

    tools/.venv/bin/python tools/python/bench/roofline.py [--threads 2]     # prints JSON

* read bandwidth: a C kernel (gcc -O3 -march=native -fopenmp) summing a 1 GiB float array with --threads
  OpenMP threads (first-touched by the same threads); best of several passes.
* peak FMA: a C kernel with 16 independent FMA chains per thread (AVX-512 intrinsics, and AVX2 with
  -mno-avx512f), --threads threads; best width, best of several passes. FLOPs = 2 per lane per FMA.
* the driver also measures the bandwidth right before every mlxc measurement (memory bandwidth of a shared VM
  host varies over time) and relates mlxc's decode to that measurement as well.
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
from pathlib import Path

BW_C = r"""
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
    int passes = argc > 1 ? atoi(argv[1]) : 10;
    float *a = aligned_alloc(1 << 21, bytes);
    madvise(a, bytes, MADV_HUGEPAGE);
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

# 16 independent FMA chains per thread on the widest vectors the compiler is allowed (-mno-avx512f: 256 bits)
FMA_C = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX512F__)
typedef __m512 vf;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM _mm512_reduce_add_ps
#elif defined(__FMA__)
typedef __m256 vf;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v) { float t[8]; _mm256_storeu_ps(t, v); float s = 0; for (int i = 0; i < 8; i++) s += t[i]; return s; }
#else
#error "needs FMA"
#endif
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
            threads = omp_get_num_threads();
            vf m = SET1(0.999999f), b = SET1(1e-6f);
            vf a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5), a6 = SET1(6), a7 = SET1(7);
            vf a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11), a12 = SET1(12), a13 = SET1(13), a14 = SET1(14), a15 = SET1(15);
            for (long i = 0; i < iters; i++) {
                a0 = FMA(a0, m, b); a1 = FMA(a1, m, b); a2 = FMA(a2, m, b); a3 = FMA(a3, m, b);
                a4 = FMA(a4, m, b); a5 = FMA(a5, m, b); a6 = FMA(a6, m, b); a7 = FMA(a7, m, b);
                a8 = FMA(a8, m, b); a9 = FMA(a9, m, b); a10 = FMA(a10, m, b); a11 = FMA(a11, m, b);
                a12 = FMA(a12, m, b); a13 = FMA(a13, m, b); a14 = FMA(a14, m, b); a15 = FMA(a15, m, b);
            }
            vf s = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))),
                       ADD(ADD(ADD(a8, a9), ADD(a10, a11)), ADD(ADD(a12, a13), ADD(a14, a15))));
            sink += SUM(s);
        }
        double dt = now() - t0;
        double gflops = 2.0 * LANES * 16 * (double)iters * threads / dt / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("%.3f %g\n", best, sink);
    return 0;
}
"""


KERNELS = Path(__file__).resolve().parents[2] / ".work" / "bench" / "roofline"


def _kernel(name: str, src: str, flags) -> Path:
    """Compiles once per source + flags (cached in tools/.work/bench/roofline/)."""
    import hashlib

    key = hashlib.sha1((src + " ".join(flags)).encode()).hexdigest()[:12]
    exe = KERNELS / f"{name}-{key}"
    if not exe.exists():
        KERNELS.mkdir(parents=True, exist_ok=True)
        c = KERNELS / f"{name}-{key}.c"
        c.write_text(src)
        subprocess.run(["gcc", "-O3", "-march=native", "-fopenmp", "-ffast-math", *flags, str(c), "-o", str(exe)],
                       check=True, capture_output=True)
    return exe


def _run(exe: Path, args, threads: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="spread")
    out = subprocess.run([str(exe), *map(str, args)], check=True, capture_output=True, text=True, env=env).stdout
    return float(out.split()[0])


def bandwidth(threads: int, passes: int = 12) -> float:
    """GB/s: best of `passes` sums over a 1 GiB float array (~0.5 s + 0.3 s setup)."""
    return _run(_kernel("bw", BW_C, []), [passes], threads)


def machine_roofline(threads: int) -> dict:
    bw = bandwidth(threads)
    fma = {}
    for width, flags in (("512bit", []), ("256bit", ["-mno-avx512f"])):
        try:
            fma[width] = _run(_kernel(f"fma{width}", FMA_C, flags), [20000000, 5], threads)
        except subprocess.CalledProcessError:
            pass  # no AVX-512 (or no FMA) here
    best_w = max(fma, key=fma.get)
    return {"threads": threads, "read_bandwidth_gb_s": bw, "fma_gflops_by_width": fma,
            "fma_peak_gflops": fma[best_w], "fma_best_width": best_w,
            "method": "C kernels, gcc -O3 -march=native -fopenmp; bandwidth: sum of a 1 GiB float array, best of 12; "
                      "FMA: 16 independent FMA chains per thread (intrinsics), best of 5"}


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
