'use strict';
/**
 * A small mutation + generative fuzzing engine for the parsers of outside data (issue #14), plain CommonJS so that
 * both scripts/fuzz.js (over dist/) and the jest tests (over lib/) use it. No coverage feedback (libFuzzer/Jazzer.js
 * cannot load here): an input joins the corpus when it reaches an outcome (a success, or an error message of a new
 * shape) not seen before, which steers mutation towards every validation branch the parser has.
 *
 *   mutation:   seeds from test/fuzz/corpus/<harness>/ (real files from the library's writers plus hand-made edge
 *               cases); byte mutations (bit flips, insert/delete, truncation, splicing, interesting integers) and the
 *               harness's structure-aware ones (header length/offset/shape rewrites, JSON value swaps, ...).
 *   generative: fast-check arbitraries (random bytes, random JSON, random well-formed-ish files) run through
 *               fc.check, so a failure comes back shrunk.
 *
 * The oracle (execute): the parser returns a value that passes the harness's sanity checks, or throws an Error (or
 * ConfigError) whose message names the file and is short. Anything else is a crash: a throw of a non-Error, a
 * TypeError/RangeError (JS internals: "Invalid typed array length", "Array buffer allocation failed", stack
 * overflow, ...), a message not naming the file, one longer than MAX_MESSAGE, an input slower than the timeout, or
 * an allocation (ArrayBuffers, native tensors) far larger than the input.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const fc = require('fast-check');

const MAX_MESSAGE = 4096;

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness

function hash32(s) {
  // FNV-1a then a murmur3 finaliser.
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** sfc32, seeded from any string. */
class Rng {
  constructor(seed) {
    const s = String(seed);
    this.a = hash32(`a${s}`);
    this.b = hash32(`b${s}`);
    this.c = hash32(`c${s}`);
    this.d = hash32(`d${s}`) | 1;
    for (let i = 0; i < 15; i++) this.u32();
  }
  u32() {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }
  /** Integer in [0, n). */
  below(n) {
    return n <= 1 ? 0 : Math.floor((this.u32() / 4294967296) * n);
  }
  /** Integer in [lo, hi]. */
  int(lo, hi) {
    return lo + this.below(hi - lo + 1);
  }
  chance(p) {
    return this.u32() / 4294967296 < p;
  }
  pick(arr) {
    return arr[this.below(arr.length)];
  }
  /** Small numbers far more often than large ones (1 + a geometric-ish count). */
  small(max) {
    return Math.min(max, 1 + Math.floor(-Math.log2(1 - this.u32() / 4294967296)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Interesting values

const INTERESTING_INTS = [
  0, 1, -1, 2, 3, 4, 7, 8, 15, 16, 255, 256, 1023, 1024, 1025, 4096, 65535, 65536, 65537, 2 ** 20, 2 ** 20 + 1,
  2 ** 24, 2 ** 24 + 1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 64, 2 ** 32 + 1024, 2 ** 40,
  2 ** 53 - 1, 2 ** 53, -(2 ** 53), 2 ** 60, 2 ** 63, 2 ** 64, 1e300,
];
const INTERESTING_FLOATS = [0.5, 1.5, -0.5, -0, 1e-300, 5e-324, 1e308, -1e308, 0.1, 3.14159];
const INTERESTING_U64 = [
  0n, 1n, 7n, 8n, 16n, 255n, 4096n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 60n, 2n ** 62n, 2n ** 63n,
  2n ** 64n - 1n, 10_000_000_000n, 100n * 1024n * 1024n, 100n * 1024n * 1024n + 1n,
];
const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];
/** Literal texts spliced over JSON numbers: valid and invalid JSON, huge, negative, NaN-like. */
const JSON_LITERALS = [
  '-1', '0', '-0', '1e309', '-1e309', '1e-400', 'NaN', 'Infinity', '-Infinity', 'null', 'true', 'false', '""', '[]',
  '{}', '"NaN"', '"1"', '18446744073709551616', '18446744073709551615', '9007199254740993', '9007199254740991',
  '4294967296', '4294968320', '2147483648', '1152921504606846976', '1.5', '0x10', '1e5', '01', '1_000', '[1]',
  '{"a":1}', '"\\u0000"',
];
const JUNK_KEYS = [
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', '', ' ', '__metadata__', 'length',
  '0', 'x'.repeat(5000), '\u0000', 'é',
];
const JUNK_STRINGS = [
  '', 'F32', 'F64', 'I32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'toString', '__proto__', 'constructor', 'NaN',
  'Infinity', '-1', 'null', 'a'.repeat(10000), '\u0000', '\ud800',
];

function nestedText(depth, open = '[', close = ']') {
  return open.repeat(depth) + close.repeat(depth);
}

// ---------------------------------------------------------------------------------------------------------------
// JSON: parse, mutate as a tree, serialise (own "__proto__" keys kept; raw text leaves for nesting JSON.stringify
// cannot even print)

const RAW = Symbol('raw JSON text');

function raw(text) {
  return { [RAW]: text };
}

/** Deepest bracket nesting in a JSON text (strings skipped), to avoid recursing over a pathological tree. */
function jsonDepth(text) {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

function parseJson(text) {
  if (jsonDepth(text) > 64) return undefined;
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

function setOwn(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function toJson(v, depth = 0) {
  if (depth > 200) return 'null';
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : v > 0 ? '1e309' : v < 0 ? '-1e309' : 'NaN';
    if (typeof v === 'bigint') return v.toString();
    if (v === undefined) return 'null';
    return JSON.stringify(v);
  }
  if (Object.prototype.hasOwnProperty.call(v, RAW)) return v[RAW];
  if (Array.isArray(v)) return `[${v.map((x) => toJson(x, depth + 1)).join(',')}]`;
  return `{${Object.keys(v)
    .map((k) => `${JSON.stringify(k)}:${toJson(v[k], depth + 1)}`)
    .join(',')}}`;
}

function clone(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Object.prototype.hasOwnProperty.call(v, RAW)) return raw(v[RAW]);
  if (Array.isArray(v)) return v.map(clone);
  const o = {};
  for (const k of Object.keys(v)) setOwn(o, k, clone(v[k]));
  return o;
}

/** Every (container, key) slot of a tree, root as (null, null), at most `limit`. */
function slots(root, limit = 4000) {
  const out = [{ parent: null, key: null, value: root }];
  for (let i = 0; i < out.length && out.length < limit; i++) {
    const v = out[i].value;
    if (v === null || typeof v !== 'object' || Object.prototype.hasOwnProperty.call(v, RAW)) continue;
    const keys = Array.isArray(v) ? v.map((_, j) => j) : Object.keys(v);
    for (const k of keys) {
      if (out.length >= limit) break;
      out.push({ parent: v, key: k, value: v[k] });
    }
  }
  return out;
}

function interestingJsonValue(rng, ctx) {
  switch (rng.below(12)) {
    case 0:
    case 1:
      return rng.pick(INTERESTING_INTS);
    case 2:
      return rng.pick(INTERESTING_FLOATS);
    case 3:
      return rng.pick(JUNK_STRINGS);
    case 4:
      return rng.pick([null, true, false, [], {}, [0], [-1], [2 ** 53 - 1, 2 ** 53 - 1, 0], ['1'], [1.5]]);
    case 5: {
      // nested junk, up to depths that overflow a recursive printer (JSON.stringify)
      const d = rng.chance(0.9) ? rng.pick([8, 100, 3000, 12000]) : 60000;
      return raw(rng.chance(0.5) ? nestedText(d) : `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`);
    }
    case 6:
      return raw(rng.pick(JSON_LITERALS));
    case 7:
      return Array.from({ length: rng.pick([3, 100, 5000]) }, () => rng.pick(INTERESTING_INTS));
    case 8:
      return ctx && ctx.dictionary && ctx.dictionary.length ? rng.pick(ctx.dictionary) : 'x';
    case 9:
      return rng.int(-4, 64);
    default:
      return rng.pick(INTERESTING_INTS) + rng.int(-2, 2);
  }
}

function tweakNumber(n, rng) {
  switch (rng.below(9)) {
    case 0:
      return n + 1;
    case 1:
      return n - 1;
    case 2:
      return -n;
    case 3:
      return n * 2;
    case 4:
      return n * 2 ** rng.int(8, 40);
    case 5:
      return n / 2;
    case 6:
      return n + 0.5;
    case 7:
      return n + 2 ** 32;
    default:
      return n === 0 ? 1 : 0;
  }
}

/**
 * One structural change to a parsed JSON tree (mutates in place where it can; returns the new root).
 * ctx.dictionary: words of the format (keys, enum values); ctx.others: other parsed trees to copy subtrees from.
 */
function mutateTree(root, rng, ctx = {}) {
  const all = slots(root);
  const s = rng.pick(all);
  const set = (value) => {
    if (s.parent === null) root = value;
    else if (Array.isArray(s.parent)) s.parent[s.key] = value;
    else setOwn(s.parent, s.key, value);
  };
  const v = s.value;
  const op = rng.below(10);
  if (op <= 2) {
    set(interestingJsonValue(rng, ctx));
  } else if (op === 3 && typeof v === 'number') {
    set(tweakNumber(v, rng));
  } else if (op === 3 && typeof v === 'string' && ctx.dictionary && ctx.dictionary.length) {
    set(rng.pick(ctx.dictionary));
  } else if (op === 4) {
    // copy a subtree from elsewhere (this tree or another seed)
    const donor = ctx.others && ctx.others.length && rng.chance(0.5) ? rng.pick(ctx.others) : root;
    set(clone(rng.pick(slots(donor)).value));
  } else if (op === 5 && v && typeof v === 'object' && !Array.isArray(v) && !Object.prototype.hasOwnProperty.call(v, RAW)) {
    const keys = Object.keys(v);
    const r = rng.below(3);
    if (r === 0 && keys.length) delete v[rng.pick(keys)];
    else if (r === 1) {
      const key = ctx.dictionary && ctx.dictionary.length && rng.chance(0.6) ? rng.pick(ctx.dictionary) : rng.pick(JUNK_KEYS);
      setOwn(v, String(key), interestingJsonValue(rng, ctx));
    } else if (keys.length) {
      // rename a key (keeps the value)
      const k = rng.pick(keys);
      const val = v[k];
      delete v[k];
      const key = ctx.dictionary && ctx.dictionary.length && rng.chance(0.5) ? rng.pick(ctx.dictionary) : rng.pick(JUNK_KEYS);
      setOwn(v, String(key), val);
    }
  } else if (op === 6 && Array.isArray(v)) {
    const r = rng.below(4);
    if (r === 0 && v.length) v.splice(rng.below(v.length), 1);
    else if (r === 1 && v.length) v.splice(rng.below(v.length), 0, clone(v[rng.below(v.length)]));
    else if (r === 2) v.splice(rng.below(v.length + 1), 0, interestingJsonValue(rng, ctx));
    else v.reverse();
  } else if (op === 7 && v && typeof v === 'object' && !Object.prototype.hasOwnProperty.call(v, RAW)) {
    // wrap in a container / replace a container by a scalar
    set(rng.chance(0.5) ? [v] : { [rng.pick(JUNK_KEYS)]: v });
  } else {
    set(interestingJsonValue(rng, ctx));
  }
  return root;
}

/** Text-level JSON mutation: replace a number or string token by an odd literal. */
function mutateJsonText(text, rng, ctx = {}) {
  const tokens = [];
  const re = /-?\d+(\.\d+)?([eE][+-]?\d+)?|"(?:[^"\\]|\\.)*"/g;
  let m;
  while ((m = re.exec(text)) !== null && tokens.length < 5000) tokens.push([m.index, m[0].length]);
  if (!tokens.length) return text;
  const [at, len] = rng.pick(tokens);
  let lit;
  const r = rng.below(4);
  if (r === 0 && ctx.dictionary && ctx.dictionary.length) lit = JSON.stringify(String(rng.pick(ctx.dictionary)));
  else if (r === 1) lit = String(rng.pick(INTERESTING_INTS));
  else if (r === 2) lit = nestedText(rng.pick([5, 500, 12000]));
  else lit = rng.pick(JSON_LITERALS);
  return text.slice(0, at) + lit + text.slice(at + len);
}

/** A mutated JSON text (tree mutation when the text parses, text mutation otherwise). */
function mutateJson(bytes, rng, ctx = {}) {
  const text = bytes.toString('utf8');
  const parsed = rng.chance(0.8) ? parseJson(text) : undefined;
  if (parsed === undefined) return Buffer.from(mutateJsonText(text, rng, ctx), 'utf8');
  let root = parsed.value;
  const n = rng.small(4);
  for (let i = 0; i < n; i++) root = mutateTree(root, rng, ctx);
  const pretty = rng.chance(0.1);
  return Buffer.from(pretty ? toJson(root).replace(/,/g, ',\n  ') : toJson(root), 'utf8');
}

// ---------------------------------------------------------------------------------------------------------------
// Byte mutations

function randomBytes(rng, n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.below(256);
  return b;
}

function writeInteresting(buf, rng) {
  if (buf.length === 0) return buf;
  const b = Buffer.from(buf);
  const width = rng.pick([1, 2, 4, 8]);
  if (b.length < width) return b;
  const at = rng.below(b.length - width + 1);
  if (width === 8) b.writeBigUInt64LE(rng.pick(INTERESTING_U64), at);
  else if (width === 4) b.writeUInt32LE(rng.pick(INTERESTING_U32), at);
  else if (width === 2) b.writeUInt16LE(rng.pick([0, 1, 0x7fff, 0x8000, 0xffff]), at);
  else b[at] = rng.pick([0, 1, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x5b, 0x7b]);
  return b;
}

/** One byte-level mutation (libFuzzer's menu, roughly). `others`: corpus entries to splice with. */
function mutateBytes(buf, rng, others = [], maxLen = 1 << 20) {
  const n = buf.length;
  let out;
  switch (rng.below(11)) {
    case 0: {
      // flip bits
      out = Buffer.from(buf);
      const k = rng.small(8);
      for (let i = 0; i < k && n; i++) out[rng.below(n)] ^= 1 << rng.below(8);
      break;
    }
    case 1: {
      out = Buffer.from(buf);
      if (n) out[rng.below(n)] = rng.below(256);
      break;
    }
    case 2: {
      // insert random bytes
      const at = rng.below(n + 1);
      out = Buffer.concat([buf.subarray(0, at), randomBytes(rng, rng.small(16)), buf.subarray(at)]);
      break;
    }
    case 3: {
      // insert a repeated byte (a long run)
      const at = rng.below(n + 1);
      out = Buffer.concat([buf.subarray(0, at), Buffer.alloc(rng.pick([1, 7, 64, 4096]), rng.below(256)), buf.subarray(at)]);
      break;
    }
    case 4: {
      // delete a range
      if (!n) return buf;
      const at = rng.below(n);
      const len = Math.min(n - at, rng.small(64));
      out = Buffer.concat([buf.subarray(0, at), buf.subarray(at + len)]);
      break;
    }
    case 5:
      // truncate
      out = buf.subarray(0, rng.below(n + 1));
      break;
    case 6: {
      // duplicate a chunk in place
      if (!n) return buf;
      const at = rng.below(n);
      const len = Math.min(n - at, rng.small(256));
      const to = rng.below(n + 1);
      out = Buffer.concat([buf.subarray(0, to), buf.subarray(at, at + len), buf.subarray(to)]);
      break;
    }
    case 7: {
      // splice: head of this, tail of another
      if (!others.length) return buf;
      const o = rng.pick(others);
      out = Buffer.concat([buf.subarray(0, rng.below(n + 1)), o.subarray(rng.below(o.length + 1))]);
      break;
    }
    case 8: {
      // overwrite a chunk with a chunk of another input
      if (!others.length || !n) return buf;
      const o = rng.pick(others);
      if (!o.length) return buf;
      const from = rng.below(o.length);
      const len = Math.min(o.length - from, rng.small(64));
      out = Buffer.from(buf);
      o.copy(out, rng.below(n), from, from + len);
      break;
    }
    case 9:
      out = writeInteresting(buf, rng);
      break;
    default: {
      // swap two chunks
      if (n < 4) return buf;
      const len = rng.int(1, Math.max(1, n >> 2));
      const a = rng.below(n - len + 1);
      const b = rng.below(n - len + 1);
      out = Buffer.from(buf);
      buf.copy(out, a, b, b + len);
      buf.copy(out, b, a, a + len);
    }
  }
  return out.length > maxLen ? out.subarray(0, maxLen) : out;
}

// ---------------------------------------------------------------------------------------------------------------
// Safetensors-aware mutation

function splitSafetensors(buf) {
  if (buf.length < 8) return null;
  const len = buf.readBigUInt64LE(0);
  if (len > BigInt(buf.length - 8)) return null;
  const n = Number(len);
  return { header: buf.subarray(8, 8 + n).toString('utf8'), data: buf.subarray(8 + n) };
}

function joinSafetensors(headerText, data, lenOverride) {
  const json = Buffer.from(headerText, 'utf8');
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
  return Buffer.concat([head, json, data]);
}

const SAFETENSORS_WORDS = ['__metadata__', 'dtype', 'shape', 'data_offsets', 'F32', 'F64', 'I32', 'F16', 'format', 'pt'];

function mutateSafetensors(buf, rng, ctx = {}) {
  const parts = splitSafetensors(buf);
  const r = rng.below(10);
  if (!parts || r === 0) {
    // rewrite the header-length field
    const b = Buffer.from(buf.length >= 8 ? buf : Buffer.concat([buf, Buffer.alloc(8 - buf.length)]));
    const actual = parts ? BigInt(Buffer.byteLength(parts.header)) : 0n;
    const choice = rng.below(3);
    const v =
      choice === 0
        ? rng.pick(INTERESTING_U64)
        : choice === 1
          ? actual + BigInt(rng.int(-9, 9))
          : BigInt(b.length - 8 + rng.int(-1, 1));
    b.writeBigUInt64LE(BigInt.asUintN(64, v < 0n ? 0n : v), 0);
    return b;
  }
  const parsed = parseJson(parts.header);
  if (r <= 5 && parsed && parsed.value && typeof parsed.value === 'object' && !Array.isArray(parsed.value)) {
    const header = parsed.value;
    const names = Object.keys(header).filter((k) => k !== '__metadata__' && header[k] && typeof header[k] === 'object');
    if (names.length && rng.chance(0.7)) {
      // field-targeted rewrites: shape, data_offsets, dtype of one tensor
      const e = header[rng.pick(names)];
      const f = rng.below(7);
      if (f === 0 && Array.isArray(e.shape) && e.shape.length) e.shape[rng.below(e.shape.length)] = rng.pick(INTERESTING_INTS);
      else if (f === 1 && Array.isArray(e.data_offsets) && e.data_offsets.length) {
        const i = rng.below(e.data_offsets.length);
        e.data_offsets[i] = rng.chance(0.5) ? rng.pick(INTERESTING_INTS) : e.data_offsets[i] + rng.int(-8, 8);
      } else if (f === 2) e.dtype = rng.pick(JUNK_STRINGS.slice(0, 11));
      else if (f === 3) {
        // huge dimensions whose product is still 0, or a product that is just past 2^53
        e.shape = rng.chance(0.5) ? [0, 2 ** 53 - 1, 2 ** 53 - 1] : [2 ** 53 - 1, 2 ** 53 - 1, 0];
        if (Array.isArray(e.data_offsets)) e.data_offsets = [e.data_offsets[0], e.data_offsets[0]];
      } else if (f === 4 && names.length > 1) {
        // overlapping or swapped offsets between two tensors
        const o = header[rng.pick(names)];
        const t = e.data_offsets;
        e.data_offsets = o.data_offsets;
        if (rng.chance(0.5)) o.data_offsets = t;
      } else if (f === 5 && Array.isArray(e.shape)) {
        // a shape whose element count matches the bytes but with more, odd dimensions
        e.shape = rng.chance(0.5) ? [...e.shape, 1, 1] : e.shape.length ? [e.shape.reduce((a, b) => a * b, 1)] : [];
      } else e.shape = interestingJsonValue(rng, ctx);
    } else {
      mutateTree(header, rng, { dictionary: [...SAFETENSORS_WORDS, ...(ctx.dictionary || [])], others: ctx.others });
    }
    const text = toJson(header) + (rng.chance(0.3) ? ' '.repeat(rng.below(8)) : '');
    const lenOverride = rng.chance(0.1) ? BigInt(Buffer.byteLength(text) + rng.int(-3, 3)) : undefined;
    return joinSafetensors(text, parts.data, lenOverride !== undefined && lenOverride < 0n ? 0n : lenOverride);
  }
  if (r <= 7) {
    // the header text itself
    const text = rng.chance(0.5) ? mutateJsonText(parts.header, rng, { dictionary: SAFETENSORS_WORDS }) : mutateBytes(Buffer.from(parts.header), rng).toString('latin1');
    return joinSafetensors(text, parts.data);
  }
  // the data section: truncate, extend, change
  const d = parts.data;
  const choice = rng.below(3);
  const data = choice === 0 ? d.subarray(0, rng.below(d.length + 1)) : choice === 1 ? Buffer.concat([d, Buffer.alloc(rng.pick([1, 4, 8, 1024]))]) : mutateBytes(d, rng);
  return joinSafetensors(parts.header, data);
}

// ---------------------------------------------------------------------------------------------------------------
// Token cache-aware mutation (magic u32 | version u32 | reserved u32 | count u64 | ids i32...)

function mutateTokenFile(buf, rng) {
  if (buf.length < 20) return mutateBytes(buf, rng);
  const b = Buffer.from(buf);
  const ids = (b.length - 20) >> 2;
  switch (rng.below(6)) {
    case 0: {
      const choice = rng.below(3);
      const v = choice === 0 ? rng.pick(INTERESTING_U64) : choice === 1 ? BigInt(ids + rng.int(-2, 2)) : BigInt(ids) + (1n << BigInt(rng.pick([30, 32, 62, 63])));
      b.writeBigUInt64LE(BigInt.asUintN(64, v < 0n ? 0n : v), 12);
      return b;
    }
    case 1:
      b.writeUInt32LE(rng.pick(INTERESTING_U32), rng.pick([0, 4, 8]));
      return b;
    case 2:
      if (ids) b.writeInt32LE(rng.pick([-1, -(2 ** 31), 2 ** 31 - 1, 999, 1000, 1001, 0, 65536]), 20 + 4 * rng.below(ids));
      return b;
    case 3:
      return b.subarray(0, 20 + rng.below(b.length - 20 + 1));
    case 4: {
      // add or drop ids while keeping the header consistent (valid files of other lengths)
      const more = rng.chance(0.5) ? randomBytes(rng, 4 * rng.small(32)).map((x, i) => (i % 4 === 0 ? x : 0)) : Buffer.alloc(0);
      const out = Buffer.concat([b.subarray(0, 20 + 4 * rng.below(ids + 1)), more]);
      out.writeBigUInt64LE(BigInt((out.length - 20) >> 2), 12);
      return out;
    }
    default:
      return mutateBytes(b, rng);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Archives: several files as one input (a checkpoint directory). "WMFZ" then entries: u16 name length, name (utf8),
// u32 data length, data. A name ending in "/" is a directory. Decoding is lenient: a malformed tail is dropped.

const ARCHIVE_MAGIC = Buffer.from('WMFZ');
const SAFE_NAME = /^(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/?$/;

function encodeArchive(files) {
  const parts = [ARCHIVE_MAGIC];
  for (const [name, data] of files) {
    const nb = Buffer.from(name, 'utf8');
    const h = Buffer.alloc(2);
    h.writeUInt16LE(nb.length);
    const l = Buffer.alloc(4);
    l.writeUInt32LE(data.length);
    parts.push(h, nb, l, data);
  }
  return Buffer.concat(parts);
}

function decodeArchive(buf) {
  const files = [];
  if (buf.length < 4 || !buf.subarray(0, 4).equals(ARCHIVE_MAGIC)) return files;
  let at = 4;
  while (at + 2 <= buf.length) {
    const nl = buf.readUInt16LE(at);
    at += 2;
    if (at + nl + 4 > buf.length) break;
    const name = buf.subarray(at, at + nl).toString('utf8');
    at += nl;
    const dl = buf.readUInt32LE(at);
    at += 4;
    const data = buf.subarray(at, Math.min(buf.length, at + dl));
    at += dl;
    files.push([name, data]);
  }
  return files;
}

/** Writes an archive's files under `dir` (names that could escape it are skipped). */
function materializeArchive(files, dir) {
  for (const [name, data] of files) {
    if (!SAFE_NAME.test(name)) continue;
    const target = path.join(dir, name);
    try {
      if (name.endsWith('/')) fs.mkdirSync(target, { recursive: true });
      else {
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, data);
      }
    } catch {
      // a name used both as a file and as a directory: the first one wins
    }
  }
}

const LATEST_VARIANTS = [
  'checkpoint-000001', 'checkpoint-000003\n', 'checkpoint-1', 'checkpoint-000002', 'checkpoint-', '../checkpoint-000003',
  'checkpoint-000003/../..', '', '\n', 'checkpoint-99999999999999999999', 'x'.repeat(100000), 'checkpoint-000003\u0000',
  ' checkpoint-000003 ',
];

function mutateArchive(buf, rng, ctx = {}) {
  const files = decodeArchive(buf);
  if (!files.length || rng.chance(0.05)) return mutateBytes(buf, rng);
  const i = rng.below(files.length);
  const [name, data] = files[i];
  const r = rng.below(10);
  if (r === 0) files.splice(i, 1);
  else if (r === 1) files[i] = [`${name.replace(/\/$/, '')}/`, Buffer.alloc(0)]; // a directory where a file was
  else if (r === 2 && files.length > 1) {
    // swap the contents of two files (model <-> optimizer, config <-> trainer_state, ...)
    const j = rng.below(files.length);
    files[i] = [name, files[j][1]];
    files[j] = [files[j][0], data];
  } else if (r === 3) {
    // rename (another checkpoint step, the top level, an unexpected name)
    const renamed = rng.pick([
      name.replace(/checkpoint-\d+/, 'checkpoint-000002'),
      name.replace(/^checkpoint-\d+\//, ''),
      name.replace(/[^/]+$/, rng.pick(['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json', 'latest', 'x'])),
    ]);
    files[i] = [renamed, data];
  } else if (/(^|\/)latest$/.test(name) && rng.chance(0.6)) {
    files[i] = [name, Buffer.from(rng.pick(LATEST_VARIANTS))];
  } else if (name.endsWith('.safetensors')) {
    files[i] = [name, mutateSafetensors(data, rng, ctx)];
  } else if (name.endsWith('.json')) {
    files[i] = [name, mutateJson(data, rng, { dictionary: ctx.dictionary, others: ctx.jsonOthers })];
  } else files[i] = [name, mutateBytes(data, rng)];
  return encodeArchive(files);
}

// ---------------------------------------------------------------------------------------------------------------
// Generative arbitraries (fast-check)

const dimArb = fc.oneof({ weight: 4, arbitrary: fc.nat(8) }, { weight: 1, arbitrary: fc.constantFrom(...INTERESTING_INTS) });
const offArb = fc.oneof({ weight: 4, arbitrary: fc.nat(160) }, { weight: 1, arbitrary: fc.constantFrom(...INTERESTING_INTS) });
const bytesArb = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
const jsonTextArb = fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null', 'utf8'));

/**
 * Safetensors files: random headers (some entries consistent with the data, some not), metadata, data, and a header
 * length that is exact, off by a little, or any u64. `known`: [name, shape] pairs a loader expects.
 */
function safetensorsArb(known = []) {
  const nameArb = known.length
    ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known.map((k) => k[0])) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) })
    : fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__metadata__', '__proto__', 'toString', 'w'));
  const shapeArb = known.length
    ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...known.map((k) => k[1])) }, { weight: 1, arbitrary: fc.array(dimArb, { maxLength: 4 }) })
    : fc.oneof({ weight: 4, arbitrary: fc.array(dimArb, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) });
  const entryArb = fc.record({
    name: nameArb,
    dtype: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('F32', 'F64', 'I32') }, { weight: 1, arbitrary: fc.constantFrom('F16', 'BF16', 'I64', 'toString', '__proto__', '') }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    shape: shapeArb,
    offsets: fc.oneof(fc.tuple(offArb, offArb), fc.array(offArb, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
    consistent: fc.boolean(),
    omit: fc.constantFrom(null, null, null, 'dtype', 'shape', 'data_offsets'),
  });
  return fc
    .record({
      entries: fc.array(entryArb, { maxLength: known.length ? Math.min(known.length + 1, 16) : 4 }),
      metadata: fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 6 }) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }), { maxKeys: 3 })),
      extra: fc.uint8Array({ maxLength: 64 }),
      len: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: -8, max: 8 }) }, { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
      pad: fc.nat(9),
    })
    .map(({ entries, metadata, extra, len, pad }) => {
      const header = {};
      if (metadata) setOwn(header, '__metadata__', metadata);
      const chunks = [];
      let offset = 0;
      for (const e of entries) {
        const item = { dtype: e.dtype, shape: e.shape, data_offsets: e.offsets };
        if (e.consistent && Array.isArray(e.shape) && e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          const size = { F32: 4, F64: 8, I32: 4 }[typeof e.dtype === 'string' ? e.dtype : ''] || 4;
          const bytes = e.shape.reduce((a, b) => a * b, 1) * size;
          if (bytes <= 4096) {
            item.data_offsets = [offset, offset + bytes];
            const chunk = Buffer.alloc(bytes);
            for (let i = 0; i < bytes; i++) chunk[i] = (i * 37 + offset) & 0xff;
            chunks.push(chunk);
            offset += bytes;
          }
        }
        if (e.omit) delete item[e.omit];
        setOwn(header, String(e.name), item);
      }
      const text = toJson(header) + ' '.repeat(pad);
      const data = Buffer.concat([...chunks, Buffer.from(extra)]);
      const exact = BigInt(Buffer.byteLength(text));
      const l = len === null ? exact : typeof len === 'bigint' ? len : BigInt.asUintN(64, exact + BigInt(len));
      return joinSafetensors(text, data, l);
    });
}

function tokenFileArb(vocab) {
  return fc
    .record({
      magic: fc.oneof({ weight: 8, arbitrary: fc.constant(0x4b544d57) }, { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) }),
      version: fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(...INTERESTING_U32) }),
      reserved: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) }),
      ids: fc.array(fc.oneof({ weight: 10, arbitrary: fc.nat(vocab - 1) }, { weight: 1, arbitrary: fc.constantFrom(-1, vocab, 2 ** 31 - 1, -(2 ** 31)) }), { maxLength: 64 }),
      count: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: -3, max: 3 }) }, { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
      tail: fc.oneof({ weight: 6, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 7 }) }),
    })
    .map(({ magic, version, reserved, ids, count, tail }) => {
      const head = Buffer.alloc(20);
      head.writeUInt32LE(magic, 0);
      head.writeUInt32LE(version >>> 0, 4);
      head.writeUInt32LE(reserved, 8);
      const n = BigInt(ids.length);
      head.writeBigUInt64LE(count === null ? n : typeof count === 'bigint' ? count : BigInt.asUintN(64, n + BigInt(count)), 12);
      return Buffer.concat([head, Buffer.from(Int32Array.from(ids).buffer), Buffer.from(tail)]);
    });
}

/** Any JSON value, or a config-like object: a seed config with some keys replaced, removed or added. */
function configArb(seeds, knownKeys, optionWords) {
  const keyArb = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...knownKeys) }, { weight: 1, arbitrary: fc.constantFrom(...JUNK_KEYS.slice(0, 10)) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) });
  const waveletArb = fc.dictionary(
    fc.oneof(fc.constantFrom('raw_dim', 'haar_levels', 'bandwidth', 'center', 'scales', 'mode', 'seed'), fc.constantFrom('__proto__', 'toString', 'constructor', 'x')),
    fc.oneof(fc.constantFrom(...INTERESTING_INTS, ...INTERESTING_FLOATS), fc.nat(64), fc.constantFrom('frozen', 'raw', 'table'), fc.array(fc.oneof(fc.nat(4), fc.constantFrom(...INTERESTING_FLOATS)), { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
    { maxKeys: 4 },
  );
  const valueArb = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...INTERESTING_INTS, ...INTERESTING_FLOATS) },
    { weight: 2, arbitrary: fc.nat(70) },
    { weight: 2, arbitrary: fc.constantFrom(...optionWords) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    { weight: 1, arbitrary: waveletArb },
  );
  const objectArb = fc
    .record({
      seed: fc.constantFrom(...seeds),
      set: fc.array(fc.tuple(keyArb, valueArb), { maxLength: 4 }),
      drop: fc.array(fc.constantFrom(...knownKeys), { maxLength: 2 }),
    })
    .map(({ seed, set, drop }) => {
      const o = clone(seed);
      for (const k of drop) delete o[k];
      for (const [k, v] of set) setOwn(o, k, v);
      return Buffer.from(toJson(o), 'utf8');
    });
  return fc.oneof({ weight: 1, arbitrary: jsonTextArb }, { weight: 5, arbitrary: objectArb });
}

// ---------------------------------------------------------------------------------------------------------------
// The oracle

const INTERNAL = /Invalid typed array length|Array buffer allocation failed|Maximum call stack|out of memory|Cannot read propert|Cannot convert|is not a function|is not iterable|is not defined|Invalid array length|Invalid string length|offset is out of bounds|out of range|ERR_/;

function isError(e) {
  // Realm-independent (jest runs tests in a vm context; errors from node:fs come from the main realm).
  return Object.prototype.toString.call(e) === '[object Error]';
}

function clip(s, n = 300) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s;
}

/** A message's shape: paths, numbers and quoted strings abstracted (error kinds for feedback and crash dedup). */
function shapeOf(message, paths) {
  let m = String(message).slice(0, 2000);
  for (const p of paths) m = m.split(p).join('<path>');
  return m
    .replace(/'[^']*'|"[^"]*"/g, 'S')
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?n?/gi, 'N')
    .replace(/\[[^\]]*\]/g, '[..]')
    .slice(0, 160);
}

/** The first stack frame in the library (lib/ or dist/): 'function file' without line numbers. */
function librarySite(err) {
  const stack = String((err && err.stack) || '');
  for (const line of stack.split('\n').slice(1)) {
    const m = /at (?:(\S+) )?\(?(.*[\\/](?:lib|dist)[\\/][^:)]+)/.exec(line);
    if (m && !/node_modules/.test(m[2])) return `${m[1] || '<anonymous>'} ${m[2].split(/[\\/](?:lib|dist)[\\/]/).pop()}`;
  }
  return 'unknown site';
}

function nativePeak(harness) {
  return harness.allocStats ? harness.allocStats() : null;
}

/**
 * Runs one input through a harness and judges it.
 * Returns { outcome, ms, crash: null | { kind, message, signature } }.
 */
function execute(harness, bytes, opts = {}) {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const ext0 = v8.getHeapStatistics().external_memory;
  const nat0 = nativePeak(harness);
  const t0 = process.hrtime.bigint();
  let value;
  let error;
  let threw = false;
  try {
    value = harness.run(bytes);
  } catch (e) {
    threw = true;
    error = e;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const ext1 = v8.getHeapStatistics().external_memory;
  const nat1 = nativePeak(harness);
  const paths = harness.paths();
  // The signature groups crashes of one cause: the message's shape (its start only for an over-long message, whose
  // tail is the input), and for a JS-internal error the library function it came from.
  const crash = (kind, message, err) => ({
    kind,
    message: clip(message, 600),
    signature: kind === 'long-message' ? `${kind} @ ${librarySite(err)}` : `${kind}: ${shapeOf(message, paths).slice(0, 160)}${err ? ` @ ${librarySite(err)}` : ''}`,
  });
  let result;
  try {
    if (threw) {
      if (!isError(error)) {
        result = { outcome: 'crash', crash: crash('non-error-throw', `threw ${typeof error}: ${clip(safeString(error))}`) };
      } else {
        const name = String(error.name);
        const message = String(error.message);
        if (name !== 'Error' && name !== 'ConfigError') result = { outcome: 'crash', crash: crash('internal-error', `${name}: ${message}`, error) };
        else if (INTERNAL.test(message)) result = { outcome: 'crash', crash: crash('internal-error', message, error) };
        else if (!paths.some((p) => message.includes(p))) result = { outcome: 'crash', crash: crash('unnamed-file', message) };
        else if (message.length > MAX_MESSAGE) result = { outcome: 'crash', crash: crash('long-message', message, error) };
        else result = { outcome: `error: ${shapeOf(message, paths)}`, message, crash: null };
      }
    } else {
      const problem = harness.sanity(value, bytes);
      result = problem ? { outcome: 'crash', crash: crash('bad-value', problem) } : { outcome: 'ok', crash: null, value };
    }
  } finally {
    if (!threw && harness.release) harness.release(value);
  }
  if (!result.crash) {
    const budget = harness.budget ? harness.budget(bytes) : 16 * bytes.length + (16 << 20);
    const ext = ext1 - ext0;
    const nat = nat0 && nat1 && nat1.peakBytes > nat0.peakBytes ? nat1.peakBytes - nat0.liveBytes : 0;
    if (ext > budget || nat > budget) {
      result = { outcome: 'crash', crash: crash('huge-allocation', `allocated ${Math.max(ext, nat)} bytes (budget ${budget}) for a ${bytes.length}-byte input; outcome ${result.outcome}`) };
    }
  }
  if (!result.crash && ms > timeoutMs) {
    result = { outcome: 'crash', crash: crash('timeout', `took ${ms.toFixed(0)} ms (limit ${timeoutMs} ms); outcome ${result.outcome}`) };
  }
  result.ms = ms;
  return result;
}

function safeString(v) {
  try {
    return typeof v === 'symbol' ? v.toString() : String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Minimisation (best effort: keep the crash's signature while removing chunks)

/**
 * Removes what it can from a JSON text while `still(bytes)` holds: object keys and array elements, then subtrees
 * replaced by 0. Returns the input unchanged when it is not (shallow enough) JSON.
 */
function minimizeJsonText(bytes, still, deadline) {
  const parsed = parseJson(bytes.toString('utf8'));
  if (!parsed) return bytes;
  let root = parsed.value;
  let best = bytes;
  // paths of every slot below the root, breadth first (at most 2000)
  const pathsOf = (r) => {
    const out = [];
    const queue = [[r, []]];
    for (let i = 0; i < queue.length && out.length < 2000; i++) {
      const [v, p] = queue[i];
      if (v === null || typeof v !== 'object' || Object.prototype.hasOwnProperty.call(v, RAW)) continue;
      for (const k of Array.isArray(v) ? v.map((_, j) => j) : Object.keys(v)) {
        out.push([...p, k]);
        queue.push([v[k], [...p, k]]);
      }
    }
    return out;
  };
  let changed = true;
  while (changed && Date.now() < deadline) {
    changed = false;
    for (const p of pathsOf(root)) {
      if (Date.now() >= deadline) break;
      for (const how of ['delete', 'zero']) {
        const t = clone(root);
        let c = t;
        for (const k of p.slice(0, -1)) c = c[k];
        const key = p[p.length - 1];
        if (how === 'delete') {
          if (Array.isArray(c)) c.splice(key, 1);
          else delete c[key];
        } else if (c[key] !== null && (typeof c[key] === 'object' || typeof c[key] === 'string')) setOwn(c, key, 0);
        else continue;
        const cand = Buffer.from(toJson(t), 'utf8');
        if (cand.length < best.length && still(cand)) {
          best = cand;
          root = t;
          changed = true;
          break;
        }
      }
      if (changed) break;
    }
  }
  return best;
}

/** The safetensors header by JSON minimisation (the length field kept exact), then the data section's tail. */
function minimizeSafetensors(bytes, still, deadline) {
  const parts = splitSafetensors(bytes);
  if (!parts) return bytes;
  let data = parts.data;
  const header = minimizeJsonText(Buffer.from(parts.header, 'utf8'), (h) => still(joinSafetensors(h.toString('utf8'), data)), deadline).toString('utf8');
  let best = joinSafetensors(header, data);
  for (let cut = data.length >> 1; cut >= 1 && Date.now() < deadline; cut >>= 1) {
    while (cut <= data.length && Date.now() < deadline) {
      const cand = joinSafetensors(header, data.subarray(0, data.length - cut));
      if (!still(cand)) break;
      data = data.subarray(0, data.length - cut);
      best = cand;
    }
  }
  return best;
}

/** Archive members dropped, then each JSON / safetensors member minimised. */
function minimizeArchive(bytes, still, deadline) {
  let files = decodeArchive(bytes);
  if (!files.length) return bytes;
  for (let i = files.length - 1; i >= 0 && Date.now() < deadline; i--) {
    const cand = files.filter((_, j) => j !== i);
    if (still(encodeArchive(cand))) files = cand;
  }
  for (let i = 0; i < files.length && Date.now() < deadline; i++) {
    const [name, data] = files[i];
    const withMember = (d) => encodeArchive(files.map((f, j) => (j === i ? [name, d] : f)));
    const test = (d) => still(withMember(d));
    const small = name.endsWith('.json') ? minimizeJsonText(data, test, deadline) : name.endsWith('.safetensors') ? minimizeSafetensors(data, test, deadline) : data;
    files[i] = [name, small];
  }
  return encodeArchive(files);
}

function minimize(harness, bytes, signature, opts = {}) {
  const deadline = Date.now() + (opts.ms ?? 2000);
  const still = (b) => {
    opts.onInput?.(b);
    const r = execute(harness, b, opts);
    return r.crash !== null && r.crash.signature === signature;
  };
  let best = bytes;
  if (harness.minimize) return harness.minimize(best, still, deadline);
  for (let chunk = best.length >> 1; chunk >= 1 && Date.now() < deadline; chunk >>= 1) {
    for (let at = best.length - chunk; at >= 0 && Date.now() < deadline; at -= chunk) {
      const cand = Buffer.concat([best.subarray(0, at), best.subarray(at + chunk)]);
      if (still(cand)) best = cand;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------------
// The loop

function crashFileName(harness, bytes) {
  return `${harness.name}-${crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`;
}

/**
 * Fuzzes one harness until `deadline` (ms since epoch) or `runs` executions. Rounds alternate a mutation batch (400
 * inputs) and a fast-check batch (150); everything derives from `seed`, so a run with `runs` is reproducible exactly
 * and a timed run executes a prefix of the same input sequence (only crash minimisation is timed).
 * opts: { seed, corpus: Buffer[], deadline?, runs?, timeoutMs, crashDir?, onInput?(bytes), log?(line), knownSignatures?,
 *         skip?: crashFileName()s of inputs not to run }
 */
function fuzzHarness(harness, opts) {
  const rng = new Rng(`${opts.seed}/${harness.name}`);
  const corpus = opts.corpus.length ? opts.corpus.slice() : [Buffer.alloc(0)];
  const maxLen = harness.maxLen ?? 1 << 20;
  const seenOutcomes = new Map();
  const known = new Set(opts.knownSignatures ?? []);
  const crashes = [];
  let execs = 0;
  let generated = 0;
  const runs = opts.runs ?? Infinity;
  const deadline = opts.deadline ?? Infinity;
  const done = () => execs >= runs || Date.now() >= deadline;
  const log = opts.log ?? (() => {});
  // inputs not to run again (ones that hung or killed an earlier process of this campaign), by crashFileName
  const skip = new Set(opts.skip ?? []);
  const skipped = (bytes) => skip.size > 0 && skip.has(crashFileName(harness, bytes));

  const record = (bytes, r, source) => {
    execs++;
    const count = seenOutcomes.get(r.outcome) ?? 0;
    seenOutcomes.set(r.outcome, count + 1);
    if (r.crash) return;
    // feedback: an input reaching an outcome seen fewer than twice joins the corpus
    if (count < 2 && corpus.length < 5000 && bytes.length <= maxLen) corpus.push(bytes);
    void source;
  };
  const report = (bytes, r, source) => {
    if (known.has(r.crash.signature)) return;
    known.add(r.crash.signature);
    const small = source === 'mutation' ? minimize(harness, bytes, r.crash.signature, { timeoutMs: opts.timeoutMs, onInput: opts.onInput }) : bytes;
    const name = crashFileName(harness, small);
    if (opts.crashDir) {
      fs.mkdirSync(opts.crashDir, { recursive: true });
      fs.writeFileSync(path.join(opts.crashDir, name), small);
    }
    const c = { harness: harness.name, file: name, kind: r.crash.kind, message: r.crash.message, signature: r.crash.signature, bytes: small.length, source };
    crashes.push(c);
    log(`CRASH ${harness.name} [${c.kind}] ${clip(c.message, 300)} -> ${opts.crashDir ? path.join(opts.crashDir, name) : name} (${small.length} bytes, ${source})`);
  };

  // 1. the seed corpus as is
  for (const seedInput of corpus.slice()) {
    if (done()) break;
    if (skipped(seedInput)) continue;
    opts.onInput?.(seedInput);
    const r = execute(harness, seedInput, opts);
    record(seedInput, r, 'corpus');
    if (r.crash) report(seedInput, r, 'corpus');
  }
  const arb = harness.arbitrary ? harness.arbitrary(opts.corpus) : bytesArb;
  let round = 0;
  while (!done()) {
    round++;
    // 2. mutation batch
    for (let i = 0; i < 400 && !done(); i++) {
      let input = rng.pick(corpus);
      const depth = rng.small(5);
      for (let k = 0; k < depth; k++) {
        input = harness.mutate && rng.chance(0.6) ? harness.mutate(input, rng, corpus) : mutateBytes(input, rng, corpus, maxLen);
      }
      if (input.length > maxLen) input = input.subarray(0, maxLen);
      if (skipped(input)) continue;
      opts.onInput?.(input);
      const r = execute(harness, input, opts);
      record(input, r, 'mutation');
      if (r.crash) report(input, r, 'mutation');
    }
    if (done()) break;
    // 3. generative batch through fast-check (a failure is shrunk before it comes back)
    const fcSeed = rng.u32() | 0;
    const numRuns = Math.max(1, Math.min(150, runs - execs));
    let target = null;
    const frozen = new Set(known);
    const out = fc.check(
      fc.property(arb, (input) => {
        if ((done() || skipped(input)) && target === null) return true;
        opts.onInput?.(input);
        const r = execute(harness, input, opts);
        if (target === null) {
          generated++;
          record(input, r, 'fast-check');
        }
        if (!r.crash || frozen.has(r.crash.signature)) return true;
        if (target === null) target = r.crash.signature;
        return r.crash.signature !== target;
      }),
      // fixed batch sizes (400 mutations, 150 generated): the input sequence depends on the seed only, so a timed run
      // is a prefix of the --runs sequence; shrinking a failure found near the deadline still gets a few seconds
      Number.isFinite(deadline)
        ? { seed: fcSeed, numRuns, interruptAfterTimeLimit: Math.max(3000, deadline - Date.now() + 3000), markInterruptAsFailure: false }
        : { seed: fcSeed, numRuns },
    );
    if (out.failed && out.counterexample) {
      const input = out.counterexample[0];
      const r = execute(harness, input, opts);
      if (r.crash) report(input, r, `fast-check seed ${fcSeed}`);
    }
  }
  return { harness: harness.name, execs, generated, rounds: round, corpusSize: corpus.length, crashes, outcomes: [...seenOutcomes.entries()].sort((a, b) => b[1] - a[1]) };
}

function loadCorpus(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f)));
}

/** A scratch directory for harness files: tmpfs when there is one (rewriting a file on ext4 costs milliseconds). */
function scratchDir(prefix) {
  const os = require('node:os');
  let base = os.tmpdir();
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    base = '/dev/shm';
  } catch {
    // no tmpfs
  }
  return fs.mkdtempSync(path.join(base, prefix));
}

module.exports = {
  MAX_MESSAGE,
  Rng,
  hash32,
  INTERESTING_INTS,
  INTERESTING_U64,
  JUNK_KEYS,
  raw,
  setOwn,
  toJson,
  clone,
  parseJson,
  nestedText,
  mutateTree,
  mutateJson,
  mutateJsonText,
  mutateBytes,
  mutateSafetensors,
  mutateTokenFile,
  mutateArchive,
  splitSafetensors,
  joinSafetensors,
  encodeArchive,
  decodeArchive,
  materializeArchive,
  bytesArb,
  jsonTextArb,
  safetensorsArb,
  tokenFileArb,
  configArb,
  isError,
  clip,
  shapeOf,
  execute,
  minimize,
  minimizeJsonText,
  minimizeSafetensors,
  minimizeArchive,
  crashFileName,
  fuzzHarness,
  loadCorpus,
  scratchDir,
};
