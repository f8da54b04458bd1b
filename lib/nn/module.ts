/**
 * Base of every layer. Backward is explicit (as in llm.c): each module's `forward` keeps what its `backward` needs,
 * and `backward` adds parameter gradients (+=) and returns the gradient of its input. Gradients are zeroed by
 * `zeroGrad()` between steps. Only one forward per module is in flight: backward must follow its forward.
 *
 * A module is built on the CPU (so that a seeded initialisation gives the same weights everywhere) and moved with
 * `to(device)`: parameters, buffers and any tensor a module keeps (moveState) then live on that device.
 */
import { Buffers } from './buffers';
import type { Parameter } from './parameter';
import type { Device } from '../native';
import { canonicalDevice } from '../device';
import type { Tensor } from '../tensor';

export abstract class Module {
  protected readonly buffers = new Buffers();
  private readonly ownParams: Parameter[] = [];
  private readonly children: Module[] = [];

  protected addParameter<P extends Parameter>(p: P): P {
    this.ownParams.push(p);
    return p;
  }

  protected addModule<M extends Module>(m: M): M {
    this.children.push(m);
    return m;
  }

  /** Every parameter of this module and its children, in a fixed order, each once (a tied weight is shared). */
  parameters(): Parameter[] {
    return [...new Set([...this.ownParams, ...this.children.flatMap((c) => c.parameters())])];
  }

  /** Where this module's tensors live: 'cpu' or 'cuda:N'. */
  get device(): Device {
    return this.buffers.device;
  }

  /**
   * Moves every parameter (value and gradient), buffer and kept tensor of this module and its children to `device`
   * (copies, then frees the old ones). A no-op when already there. Returns this.
   */
  to(device: Device): this {
    const target = canonicalDevice(device);
    if (target === this.device) return this;
    const moved = new Set<Parameter>();
    this.visit((m) => m.moveState(target, moved));
    for (const p of this.parameters()) if (!moved.has(p)) p.moveTo(target);
    this.visit((m) => m.buffers.setDevice(target));
    return this;
  }

  /**
   * Moves what a module keeps besides its plain parameters and buffers (tables, views of shared blocks) to `device`.
   * A parameter it moves itself goes into `moved`, so that `to` does not move it twice.
   */
  protected moveState(_device: Device, _moved: Set<Parameter>): void {}

  private visit(fn: (m: Module) => void): void {
    fn(this);
    for (const c of this.children) c.visit(fn);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  dispose(): void {
    for (const p of this.ownParams) p.dispose();
    for (const c of this.children) c.dispose();
    this.buffers.dispose();
  }
}

/** `t` moved to `device` (the old tensor freed), or `t` itself when it is there already. */
export function moveTensor(t: Tensor, device: Device): Tensor {
  if (t.device === device) return t;
  const moved = t.to(device);
  t.dispose();
  return moved;
}
