/** Types of harnesses.js (plain CommonJS, shared by scripts/fuzz.js and the jest tests). */
import type { Harness } from './engine';

/** The library functions the harnesses call (from lib/ in jest, from dist/ in scripts/fuzz.js). */
export interface FuzzLib {
  readSafetensors: (file: string) => unknown;
  writeSafetensors: (...args: any[]) => void;
  readTokenFile: (file: string, vocabSize: number) => Int32Array;
  writeTokenFile: (file: string, ids: Int32Array) => void;
  validateConfig: (raw: unknown, where?: string) => unknown;
  readConfig: (dir: string) => unknown;
  resolveCheckpointDir: (dir: string) => string;
  loadModel: (...args: any[]) => any;
  loadOptimizerState: (...args: any[]) => void;
  saveCheckpoint: (...args: any[]) => string;
  Transformer: new (...args: any[]) => any;
  AdamW: new (...args: any[]) => any;
  allocStats?: () => { liveBytes: number; peakBytes: number };
}

export function createHarnesses(lib: FuzzLib, workDir: string): Harness[];
export function makeCorpus(lib: FuzzLib, corpusRoot: string, repoRoot: string): Record<string, number>;
export const TINY_CONFIGS: Record<'dense' | 'moe' | 'wavelet' | 'seq2seq', Record<string, unknown>>;
export const VOCAB: number;
