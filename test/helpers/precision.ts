/** Bit-level references of the matmul precision's rounding (csrc/kernels/matmul_precision.h), for tests. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer); // the same 4 bytes

/**
 * x as float32, rounded to `bits` mantissa bits, ties to even, by integer arithmetic on the float32 bits (7: bf16,
 * 10: tf32; 23 or more: the float32 value unchanged).
 */
export function roundRef(x: number, bits: number): number {
  f32[0] = x;
  if (bits >= 23) return f32[0]!;
  const exp = (u32[0]! >>> 23) & 0xff;
  if (exp === 0xff) return f32[0]!;
  const drop = 23 - bits;
  const low = u32[0]! & ((1 << drop) - 1);
  const halfway = 1 << (drop - 1);
  let kept = u32[0]! - low;
  if (low > halfway || (low === halfway && ((kept >>> drop) & 1) === 1)) kept += 1 << drop;
  u32[0] = kept >>> 0;
  return f32[0]!;
}
