/**
 * Training batches drawn from a token stream by a counter-based generator: the windows of step s are a pure
 * function of (seed, s), so resuming at step s gives exactly the batches an uninterrupted run would have seen, on
 * any machine. Each row is a window of seqLen + 1 tokens: inputs are the first seqLen, targets the last seqLen.
 */
const MASK64 = (1n << 64n) - 1n;

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Uniform in [0, 1) from (seed, counter). */
export function uniform01(seed: number, counter: number): number {
  const z = mix64(mix64((BigInt(seed) + 0x9e3779b97f4a7c15n) & MASK64) ^ ((BigInt(counter) * 0xd1b54a32d192ed03n) & MASK64));
  return Number(z >> 11n) / 9007199254740992;
}

export interface Batch {
  inputs: Int32Array; // [batchSize, seqLen]
  targets: Int32Array; // [batchSize, seqLen]
}

export class BatchSampler {
  constructor(
    private readonly tokens: Int32Array,
    readonly batchSize: number,
    readonly seqLen: number,
    readonly seed: number,
  ) {
    if ((tokens as { [Symbol.toStringTag]?: string } | null)?.[Symbol.toStringTag] !== 'Int32Array') {
      throw new TypeError('the token ids must be an Int32Array');
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
    // uniform01 makes a BigInt of the seed: 1.5 would fail there, at the first batch, with BigInt's message.
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw new RangeError(`sequence length must be a positive integer, got ${seqLen}`);
    if (tokens.length < seqLen + 1) {
      throw new RangeError(`the data has ${tokens.length} tokens, fewer than one window of seqLen + 1 = ${seqLen + 1}`);
    }
  }

  /** The batch of training step `step` (0-based). */
  batch(step: number): Batch {
    const { batchSize: B, seqLen: T } = this;
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const starts = this.tokens.length - T; // window [s, s + T] must fit
    for (let r = 0; r < B; r++) {
      const s = Math.floor(uniform01(this.seed, step * B + r) * starts);
      inputs.set(this.tokens.subarray(s, s + T), r * T);
      targets.set(this.tokens.subarray(s + 1, s + T + 1), r * T);
    }
    return { inputs, targets };
  }

  /** Consecutive non-overlapping windows covering the stream (for evaluation), at most maxBatches batches. */
  *sequential(maxBatches = Infinity): Generator<Batch> {
    const { batchSize: B, seqLen: T } = this;
    const windows = Math.floor((this.tokens.length - 1) / T);
    for (let w0 = 0, n = 0; w0 + B <= windows && n < maxBatches; w0 += B, n++) {
      const inputs = new Int32Array(B * T);
      const targets = new Int32Array(B * T);
      for (let r = 0; r < B; r++) {
        const s = (w0 + r) * T;
        inputs.set(this.tokens.subarray(s, s + T), r * T);
        targets.set(this.tokens.subarray(s + 1, s + T + 1), r * T);
      }
      yield { inputs, targets };
    }
  }
}
