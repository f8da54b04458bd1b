/**
 * The native ops, destination-passing: outputs first, then inputs, then sizes and options, as in
 * `ops.rmsnormForward(out, rstd, x, weight, eps)`. Every op `name` has `nameAsync`, which runs on a background
 * thread and returns a Promise. Backward ops add (+=) into their gradient outputs; zero them between steps.
 */
import { binding, type NativeOps } from './native';

export const ops: NativeOps = binding;

/**
 * Runs a sequence of ops off the main thread as one job. `record` is called at once and synchronously: each op it
 * calls (and each Tensor fill / copyFrom) is validated immediately, throwing as usual on bad arguments, but only
 * queued. The queue then runs in order on a background thread, and the returned Promise resolves to what `record`
 * returned once every op has run. Inside `record`, tensor data is not ready: toArray throws, and ops' scalar
 * results are NaN (read them from tensors afterwards). Tensors disposed inside `record` are freed after the run.
 * Runs queued by successive calls execute one after another in call order, so the next step may be recorded
 * while the previous one runs. One whole model step costs one thread hop this way, and the event loop stays free.
 */
export async function runAsync<T>(record: () => T): Promise<T> {
  binding.recordBegin();
  const slots: Array<[Scalar, number]> = [];
  pendingScalars = slots;
  let result: T;
  try {
    result = record();
  } catch (err) {
    binding.recordCancel();
    throw err;
  } finally {
    pendingScalars = null;
  }
  const values = await binding.recordRunAsync();
  for (const [s, slot] of slots) s.value = values[slot]!;
  return result;
}

/** The scalar result of an op: available at once outside runAsync, and once the run completes inside it. */
export class Scalar {
  constructor(public value: number) {}
}

/** The slots of the scalars created by the recording in progress. */
let pendingScalars: Array<[Scalar, number]> | null = null;

/**
 * Wraps one op call that returns a number. Outside runAsync the Scalar holds the result at once; inside, the op is
 * only queued, so the Scalar holds NaN until the run has completed and then the op's result (its value is set before
 * runAsync's Promise resolves).
 */
export function scalar(call: () => number): Scalar {
  if (pendingScalars === null) return new Scalar(call());
  const slot = binding.recordScalarCount();
  const s = new Scalar(call());
  if (binding.recordScalarCount() !== slot + 1) {
    throw new Error('scalar(): the call must make exactly one op call that returns a number');
  }
  pendingScalars.push([s, slot]);
  return s;
}
