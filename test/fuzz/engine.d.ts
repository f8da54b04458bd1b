/** Types of engine.js (plain CommonJS, shared by scripts/fuzz.js and the jest tests). */
import type { Arbitrary } from 'fast-check';

export interface Rng {
  u32(): number;
  below(n: number): number;
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(arr: readonly T[]): T;
  small(max: number): number;
}
export const Rng: new (seed: string | number) => Rng;

export interface Harness {
  name: string;
  maxLen?: number;
  run(bytes: Buffer): unknown;
  sanity(value: unknown, bytes: Buffer): string | null;
  paths(): string[];
  release?(value: unknown): void;
  budget?(bytes: Buffer): number;
  mutate?(bytes: Buffer, rng: Rng, corpus: Buffer[]): Buffer;
  minimize?(bytes: Buffer, still: (b: Buffer) => boolean, deadline: number): Buffer;
  arbitrary?(corpus: Buffer[]): Arbitrary<Buffer>;
  dispose?(): void;
}

export interface Crash {
  kind: string;
  message: string;
  signature: string;
}

export interface Execution {
  outcome: string;
  message?: string;
  crash: Crash | null;
  ms: number;
}

export interface FoundCrash {
  harness: string;
  file: string;
  kind: string;
  message: string;
  signature: string;
  bytes: number;
  source: string;
}

export interface FuzzResult {
  harness: string;
  execs: number;
  generated: number;
  rounds: number;
  corpusSize: number;
  crashes: FoundCrash[];
  outcomes: Array<[string, number]>;
}

export interface FuzzOptions {
  seed: string | number;
  corpus: Buffer[];
  deadline?: number;
  runs?: number;
  timeoutMs?: number;
  crashDir?: string;
  onInput?(bytes: Buffer): void;
  log?(line: string): void;
  knownSignatures?: string[];
  skip?: string[];
}

export const MAX_MESSAGE: number;
export function execute(harness: Harness, bytes: Buffer, opts?: { timeoutMs?: number }): Execution;
export function fuzzHarness(harness: Harness, opts: FuzzOptions): FuzzResult;
export function loadCorpus(dir: string): Buffer[];
export function scratchDir(prefix: string): string;
export function crashFileName(harness: { name: string }, bytes: Buffer): string;
export function encodeArchive(files: Array<[string, Buffer]>): Buffer;
export function decodeArchive(bytes: Buffer): Array<[string, Buffer]>;
export function joinSafetensors(headerText: string, data: Buffer, lenOverride?: bigint): Buffer;
export function clip(s: unknown, n?: number): string;
