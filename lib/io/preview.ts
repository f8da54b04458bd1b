/**
 * Values from outside data, shown in error messages: never a throw, never megabytes (fuzzing, issue #14: printing a
 * deeply nested value with JSON.stringify overflowed the stack, and megabyte-long names made megabyte messages).
 */

/** `s` cut to `max` characters, saying how long it was. */
export function clip(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}... (${s.length} characters)` : s;
}

/** A value as JSON (numbers as written: JSON would print NaN and ±Infinity as null), clipped. */
export function preview(value: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    s = Array.isArray(value) ? '[...]' : typeof value === 'object' && value !== null ? '{...}' : String(value);
  }
  return clip(s, max);
}

/** An error's message; by shape, not instanceof: errors made in another realm (a vm context, a test runner) are not instances here. */
export function errorMessage(err: unknown): string {
  const raw = (err as { message?: unknown } | null)?.message;
  return typeof raw === 'string' ? raw : String(err);
}
