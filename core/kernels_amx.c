/* kernels_amx.c - the AMX-BF16 kernel set: the AVX512-BF16 set (the same
 * f32 kernels, kernels_avx512.c included) with its bf16 GEMM on AMX
 * tiles.  Built with the AVX-512 flags, -mavx512bf16 and -mamx-tile
 * -mamx-bf16 only (core/meson.build); cpu.c hands it out only on CPUs
 * with AMX-TILE and AMX-BF16 whose OS saves the tile state and has granted
 * this process the tile data (cnn_amx_permission, Linux).
 *
 * The GEMM: blocks of 32 x 32 elements of C in four tiles of 16 x 16 f32
 * (tmm0-3), K in steps of 32 bf16: two A tiles of 16 rows x 32 bf16
 * (tmm4-5) and two B tiles of 16 pairs x 16 columns (tmm6-7, the pair
 * layout of kernels.h is AMX's), four _tile_dpbf16ps.  Blocks at the edges
 * of M, N or K go through zero-padded copies, so every element of C is
 * computed the same way (the same K steps) whatever part of C a call
 * covers. */
#include <immintrin.h>

#define KN(name) name##_amx
#define KSET cnn_kernels_amx
#define KNAME "amx"
#define KBF16_OWN 1
#include "kernels_avx512.c" /* its tiles, kernels_impl.h */

typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

static void amx_configure(void)
{
    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

/* One 32 x 32 block of C at rows i, columns j (mr, nc of them valid),
 * over all of K (2 * K2 bf16). */
static void amx_block(int i, int j, int mr, int nc, int K2, const uint16_t *a, ptrdiff_t lda,
                      const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc, int load)
{
    float ctmp[32 * 32];
    uint16_t atmp[32 * 32], btmp[16 * 64];
    const int full = mr == 32 && nc == 32;
    float *cp = full ? c + i * ldc + j : ctmp;
    const ptrdiff_t cs = full ? ldc * 4 : 32 * 4;
    if (!full) {
        memset(ctmp, 0, sizeof ctmp);
        if (load)
            for (int r = 0; r < mr; r++)
                memcpy(ctmp + r * 32, c + (i + r) * ldc + j, (size_t)nc * sizeof *ctmp);
    }
    if (load || !full) {
        _tile_loadd(0, cp, cs);
        _tile_loadd(1, cp + 16, cs);
        _tile_loadd(2, cp + 16 * 32 * !full + 16 * ldc * full, cs);
        _tile_loadd(3, cp + 16 * 32 * !full + 16 * ldc * full + 16, cs);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    /* Columns of B a load may read: up to ldb (kernels.h). */
    const int b_cols_ok = j + 32 <= ldb;
    for (int q0 = 0; q0 < K2; q0 += 16) {
        const int kq = K2 - q0 < 16 ? K2 - q0 : 16;
        const uint16_t *ap = a + i * lda + 2 * q0, *bp = b + (q0 * ldb + j) * 2;
        ptrdiff_t as = lda * 2, bs = ldb * 4;
        if (mr < 32 || kq < 16) {
            memset(atmp, 0, sizeof atmp);
            for (int r = 0; r < mr; r++)
                memcpy(atmp + r * 32, a + (i + r) * lda + 2 * q0, (size_t)kq * 2 * sizeof *atmp);
            ap = atmp, as = 64;
        }
        if (!b_cols_ok || kq < 16) {
            memset(btmp, 0, sizeof btmp);
            const int ncb = ldb - j < 32 ? (int)(ldb - j) : 32;
            for (int q = 0; q < kq; q++)
                memcpy(btmp + q * 64, b + ((q0 + q) * ldb + j) * 2, (size_t)ncb * 2 * sizeof *btmp);
            bp = btmp, bs = 128;
        }
        _tile_loadd(4, ap, as);
        _tile_loadd(5, ap + (as / 2) * 16, as);
        _tile_loadd(6, bp, bs);
        _tile_loadd(7, bp + 32, bs);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, cp, cs);
    _tile_stored(1, cp + 16, cs);
    _tile_stored(2, cp + 16 * 32 * !full + 16 * ldc * full, cs);
    _tile_stored(3, cp + 16 * 32 * !full + 16 * ldc * full + 16, cs);
    if (!full)
        for (int r = 0; r < mr; r++)
            memcpy(c + (i + r) * ldc + j, ctmp + r * 32, (size_t)nc * sizeof *ctmp);
}

static void KN(gemm_bf16)(int M, int N, int K, const uint16_t *a, ptrdiff_t lda,
                          const uint16_t *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc,
                          int accumulate)
{
    const int K2 = K / 2;
    if (K2 <= 0 || M <= 0 || N <= 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++) memset(c + i * ldc, 0, (size_t)N * sizeof *c);
        return;
    }
    amx_configure();
    for (int j = 0; j < N; j += 32)
        for (int i = 0; i < M; i += 32)
            amx_block(i, j, M - i < 32 ? M - i : 32, N - j < 32 ? N - j : 32, K2, a, lda, b, ldb, c,
                      ldc, accumulate);
    _tile_release();
}

/* Independent tile dot products into four accumulator tiles: each
 * _tile_dpbf16ps is 16 x 16 x 32 multiply-adds. */
static float KN(bf16_loop)(long iters, double *flops)
{
    static const uint16_t one_pairs[16 * 32] = {0}; /* zeros: the sums stay finite */
    float out[16 * 16];
    amx_configure();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, one_pairs, 64);
    _tile_loadd(5, one_pairs, 64);
    _tile_loadd(6, one_pairs, 64);
    _tile_loadd(7, one_pairs, 64);
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *flops = 4.0 * 2 * 16 * 16 * 32 * (double)iters;
    return out[0] + out[255];
}
