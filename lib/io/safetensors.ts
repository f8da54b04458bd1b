/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N
 * bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`, then the
 * raw little-endian data. Files written here load in PyTorch (`safetensors.torch.load_file`) and back.
 *
 * The reader trusts nothing in the header: sizes and offsets are checked against the file's real length before any
 * allocation, so a corrupt or hostile file gives a clear error naming the file, never a huge allocation or an
 * out-of-bounds read.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from './atomic_write';
import { clip, preview } from './preview';

export type SafetensorsDType = 'F32' | 'F64' | 'I32';
export type SafetensorsArray = Float32Array | Float64Array | Int32Array;

export interface SafetensorsTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: SafetensorsArray;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F64: 8, I32: 4 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024; // the reference implementation's limit

// By tag, not instanceof: typed arrays made in another realm (a vm context, a test runner) are not instances here.
function dtypeOf(data: SafetensorsArray): SafetensorsDType {
  switch (data[Symbol.toStringTag]) {
    case 'Float32Array':
      return 'F32';
    case 'Float64Array':
      return 'F64';
    case 'Int32Array':
      return 'I32';
  }
  throw new TypeError('writeSafetensors: data must be a Float32Array, Float64Array or Int32Array');
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Element count of a header's shape, or NaN when a partial product is not an exact integer (fuzzing, issue #14:
 * [2^53-1, 2^53-1, 0] multiplied to 0 and was accepted; native code multiplies dimensions in 64 bits, and the
 * reference implementation rejects such shapes with a checked multiplication).
 */
function checkedNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return Number.NaN;
  }
  return n;
}

/** Serialises tensors (in the given order, data aligned to 8 bytes) and writes the file atomically. */
export function writeSafetensors(
  file: string,
  tensors: ReadonlyArray<[string, { shape: number[]; data: SafetensorsArray }]>,
  metadata: Record<string, string> = {},
): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const [name, t] of tensors) {
    if (seen.has(name)) throw new Error(`writeSafetensors: duplicate tensor name '${name}'`);
    seen.add(name);
    if (numel(t.shape) !== t.data.length) {
      throw new Error(`writeSafetensors: '${name}' has shape [${t.shape.join(', ')}] but ${t.data.length} elements`);
    }
    header[name] = { dtype: dtypeOf(t.data), shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // data starts 8-byte aligned
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const parts: Uint8Array[] = [head, Buffer.from(json, 'utf8')];
  for (const [, t] of tensors) parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  writeFileAtomic(file, parts);
}

/** Reads and validates a safetensors file. */
export function readSafetensors(file: string): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new Error(`invalid safetensors file ${file}: ${msg}`);
  };
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (buf.length < 8) fail(`${buf.length} bytes is too short for the 8-byte header length`);
  const headerLen = buf.readBigUInt64LE(0);
  if (headerLen > BigInt(Math.min(MAX_HEADER_BYTES, buf.length - 8))) {
    fail(`header length ${headerLen} exceeds the file (${buf.length} bytes)`);
  }
  const n = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (err) {
    fail(`header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${clip(k)} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const label = clip(name);
    if (typeof raw !== 'object' || raw === null) fail(`entry '${label}' is not an object`);
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    // Own keys only: 'toString' in BYTES is true.
    if (typeof e.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(BYTES, e.dtype)) {
      fail(`'${label}' has unsupported dtype ${preview(e.dtype)} (supported: F32, F64, I32)`);
    }
    const dtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`'${label}' has an invalid shape ${preview(e.shape)}`);
    }
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`'${label}' has invalid data_offsets ${preview(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      fail(`'${label}' data_offsets [${begin}, ${end}] lie outside the ${dataLen} data bytes`);
    }
    const count = checkedNumel(shape);
    if (Number.isNaN(count)) fail(`'${label}' shape [${clip(shape.join(', '))}] has more than 2^53 elements`);
    if (count * BYTES[dtype] !== end - begin) {
      fail(`'${label}' shape [${clip(shape.join(', '))}] (${dtype}) does not match its ${end - begin} data bytes`);
    }
    ranges.push([begin, end, name]);
    // Copy out: the typed array must own aligned memory independent of the file buffer.
    const bytes = new Uint8Array(end - begin);
    bytes.set(buf.subarray(dataStart + begin, dataStart + end));
    const data =
      dtype === 'F32'
        ? new Float32Array(bytes.buffer, 0, count)
        : dtype === 'F64'
          ? new Float64Array(bytes.buffer, 0, count)
          : new Int32Array(bytes.buffer, 0, count);
    tensors.set(name, { dtype, shape, data });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] < ranges[i - 1]![1]) fail(`tensors '${clip(ranges[i - 1]![2])}' and '${clip(ranges[i]![2])}' overlap`);
  }
  return { tensors, metadata };
}
