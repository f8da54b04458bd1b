/** One clear line on stderr and a non-zero exit: how every CLI error ends. */
import { InvalidArgumentError } from 'commander';

export function fail(command: string, err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  // "wavemoe train: train: ..." reads as a stutter: the library's own prefix goes when it repeats the command.
  const line = message.split('\n')[0]!.replace(new RegExp(`^${command}: `), '');
  process.stderr.write(`wavemoe ${command}: ${line}\n`);
  process.exit(1);
}

/** Parses a CLI number, rejecting junk ("12abc", ""); commander names the option in the message. `above`: exclusive lower bound. */
export function parseNumber(opts: { integer?: boolean; min?: number; above?: number; max?: number } = {}) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('not a number');
    if (opts.integer && !Number.isInteger(n)) throw new InvalidArgumentError('not an integer');
    if (opts.min !== undefined && n < opts.min) throw new InvalidArgumentError(`must be >= ${opts.min}`);
    if (opts.above !== undefined && n <= opts.above) throw new InvalidArgumentError(`must be > ${opts.above}`);
    if (opts.max !== undefined && n > opts.max) throw new InvalidArgumentError(`must be <= ${opts.max}`);
    return n;
  };
}
