/** Device names: checking one a user gave (CLI, trainRun, loadModel) before any work is done on it. */
import type { Device } from './native';
import { Tensor } from './tensor';

/** 'cuda' → 'cuda:0' (the name tensors report); anything but 'cpu', 'cuda', 'cuda:N' is a TypeError. */
export function canonicalDevice(device: string): Device {
  if (device === 'cuda') return 'cuda:0';
  if (device !== 'cpu' && !/^cuda:\d{1,4}$/.test(device)) {
    throw new TypeError(`device must be 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(device)}`);
  }
  return device as Device;
}

/**
 * The canonical name of a device that can be used now; otherwise an Error that says why (a CPU-only build, no NVIDIA
 * driver, no such GPU), so that a run fails before it loads data or builds a model.
 */
export function usableDevice(device: string): Device {
  const d = canonicalDevice(device);
  if (d === 'cpu') return d;
  try {
    Tensor.zeros([0], 'float32', d).dispose(); // asks the device backend; allocates nothing
  } catch (err) {
    // The addon's errors come from Node's realm: not `instanceof Error` inside a vm context (jest), so read .message.
    const message = (err as { message?: unknown } | null)?.message;
    throw new Error((typeof message === 'string' ? message : String(err)).replace(/^new Tensor: /, ''));
  }
  return d;
}
