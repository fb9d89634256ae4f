/* half.c - IEEE 754 binary16 and bfloat16 <-> float32 conversions.
 *
 * Done on the bit patterns (no compiler half type, no FPU rounding mode
 * dependence) so that a model file decodes to the same floats on every
 * machine.  Narrowing rounds to nearest, ties to even, like PyTorch's
 * .half() and .bfloat16(); NaN stays NaN (quiet), infinities stay
 * infinite, and binary16 subnormals are handled both ways. */
#include "cnn_internal.h"

#include <string.h>

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float cnn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;

    if (exp == 0x1fu) /* Inf, or NaN keeping its payload */
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0) /* normal: rebias 15 -> 127 */
        return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
    if (mant == 0) return bits_f32(sign);
    /* Subnormal: mant * 2^-24, exact in float32.  Normalise the
     * mantissa so its leading 1 becomes the implicit bit. */
    uint32_t e = 113u; /* float32 exponent field of 2^-14 */
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

float cnn_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t cnn_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;

    if (x > 0x7f800000u) /* NaN: quiet it, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    /* 65520 is halfway between 65504 (the largest binary16) and 65536;
     * the tie goes to the even side, which is infinity. */
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) { /* normal in binary16 (>= 2^-14) */
        uint32_t h = (x >> 13) - (112u << 10);
        uint32_t rest = x & 0x1fffu;
        /* A carry out of the mantissa correctly bumps the exponent. */
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    if (x < 0x33000000u) return sign; /* below 2^-25: rounds to zero */
    /* Subnormal result: round(value * 2^24) with the implicit bit. */
    uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    unsigned shift = 126u - (x >> 23); /* 14 .. 24 */
    uint32_t h = mant >> shift;
    uint32_t rest = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

uint16_t cnn_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign, force quiet */
        return (uint16_t)((x >> 16) | 0x40u);
    /* Adding 0x7fff plus the lowest kept bit rounds ties to even; a
     * carry into the exponent rounds up to the next binade or to Inf. */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}
