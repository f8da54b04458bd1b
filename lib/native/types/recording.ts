/** Op recording: the primitives under `runAsync` (lib/ops.ts). Use `runAsync`, not these. */
export interface RecordingOps {
  /** From now on, op calls (and Tensor fill / copyFrom) are validated and queued instead of run. */
  recordBegin(): void;
  /** Drops the queued ops without running them. */
  recordCancel(): void;
  /** How many queued ops have a scalar result so far: the slot index of the next one. */
  recordScalarCount(): number;
  /** Runs the queued ops in order on a background thread; resolves to their scalar results, in slot order. */
  recordRunAsync(): Promise<number[]>;
}
