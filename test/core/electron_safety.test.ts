/**
 * Electron's V8 memory cage forbids ArrayBuffers that point into memory V8 did not allocate. The addon is built with
 * NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED, so it must not even import the N-API functions that make such buffers; the
 * binary's dynamic symbol table (its import names are plain strings in .dynstr) tells.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };

test('the addon imports no N-API function that creates external (native-memory) buffers', () => {
  const addon = nodeGypBuild.resolve(path.resolve(__dirname, '../..'));
  const binary = fs.readFileSync(addon).toString('latin1');
  // The control: the copying constructor is imported, so the search itself works.
  expect(binary).toContain('napi_create_arraybuffer\0');
  for (const forbidden of ['napi_create_external_arraybuffer', 'napi_create_external_buffer', 'node_api_create_external']) {
    expect(binary).not.toContain(forbidden);
  }
});
