// Replays a kernel launch trace (KernelLaunchTrace.replayInput) with kernels compiled for this
// machine: for each launch, the recorded buffers are filled, the kernel is called once on its
// whole work range, and the result buffers are written out in order. Built for ARM64 with
// aarch64-linux-gnu-gcc together with `mlxc`'s aarch64 object and the generated kernel table
// (kernels.c), and run under qemu-aarch64; the Swift test compares the results with x86's.
//
//   replay TRACE OUT
//
// Errors: one line on stderr naming what and where, exit 1.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*kernel_fn)(void **buffers, const int64_t *dims, int64_t begin, int64_t end);
struct kernel_entry { const char *name; kernel_fn fn; };
extern const struct kernel_entry mlxc_kernels[];
extern const int mlxc_kernel_count;

static const char *trace_path;
static unsigned launch_index;

static void fail(const char *what) {
    fprintf(stderr, "replay: %s: launch %u: %s\n", trace_path, launch_index, what);
    exit(1);
}

static void read_exact(FILE *f, void *p, size_t n) {
    if (n && fread(p, 1, n, f) != n) fail("trace ends early");
}
static uint32_t u32(FILE *f) { uint32_t v; read_exact(f, &v, 4); return v; }
static uint64_t u64(FILE *f) { uint64_t v; read_exact(f, &v, 8); return v; }

static kernel_fn find(const char *name) {
    for (int i = 0; i < mlxc_kernel_count; i++)
        if (strcmp(mlxc_kernels[i].name, name) == 0) return mlxc_kernels[i].fn;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: replay TRACE OUT\n"); return 1; }
    trace_path = argv[1];
    FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
    if (!in || !out) { fprintf(stderr, "replay: cannot open %s or %s\n", argv[1], argv[2]); return 1; }
    char magic[8];
    read_exact(in, magic, 8);
    if (memcmp(magic, "MLXCTRC1", 8) != 0) fail("not a kernel launch trace");
    uint32_t launches = u32(in);
    for (launch_index = 0; launch_index < launches; launch_index++) {
        uint32_t name_bytes = u32(in);
        char name[4096];
        if (name_bytes >= sizeof name) fail("kernel name too long");
        read_exact(in, name, name_bytes);
        name[name_bytes] = 0;
        kernel_fn fn = find(name);
        if (!fn) { fprintf(stderr, "replay: %s: launch %u: no kernel %s in the aarch64 object\n", trace_path, launch_index, name); return 1; }

        uint32_t region_count = u32(in);
        uint8_t **regions = calloc(region_count ? region_count : 1, sizeof *regions);
        for (uint32_t r = 0; r < region_count; r++) {
            uint64_t n = u64(in);
            regions[r] = aligned_alloc(64, ((n ? n : 1) + 63) / 64 * 64);
            if (!regions[r]) fail("out of memory");
            read_exact(in, regions[r], n);
        }
        uint32_t slot_count = u32(in);
        void **buffers = calloc(slot_count ? slot_count : 1, sizeof *buffers);
        for (uint32_t s = 0; s < slot_count; s++) {
            uint32_t region = u32(in);
            uint64_t offset = u64(in);
            if (region >= region_count) fail("slot names a missing region");
            buffers[s] = regions[region] + offset;
        }
        uint32_t dim_count = u32(in);
        int64_t *dims = calloc(dim_count ? dim_count : 1, sizeof *dims);
        read_exact(in, dims, (size_t)dim_count * 8);
        int64_t work = (int64_t)u64(in);

        fn(buffers, dims, 0, work);

        uint32_t result_count = u32(in);
        for (uint32_t r = 0; r < result_count; r++) {
            uint32_t slot = u32(in);
            uint64_t n = u64(in);
            if (slot >= slot_count) fail("result names a missing slot");
            if (n && fwrite(buffers[slot], 1, n, out) != n) fail("cannot write the results");
        }
        for (uint32_t r = 0; r < region_count; r++) free(regions[r]);
        free(regions); free(buffers); free(dims);
    }
    if (fclose(out) != 0) fail("cannot write the results");
    fclose(in);
    return 0;
}
