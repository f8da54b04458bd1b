/** The presets shipped with the package (lib/models/presets/*.json), validated on load. */
import { validateConfig, type ModelConfig } from './config';
import moeBase from './presets/moe-base.json';
import moeSmall from './presets/moe-small.json';
import seedWaveletTiny from './presets/seed-wavelet-tiny.json';
import seq2seqSmall from './presets/seq2seq-small.json';

const PRESETS: Record<string, unknown> = {
  'moe-small': moeSmall,
  // Sized for one GPU: about 0.56 B parameters (8 SwiGLU experts of 2048 in each of 12 layers), trained at 16 × 1024.
  'moe-base': moeBase,
  'seed-wavelet-tiny': seedWaveletTiny,
  'seq2seq-small': seq2seqSmall,
};

export const PRESET_NAMES = Object.keys(PRESETS);

export function preset(name: string): ModelConfig {
  const raw = PRESETS[name];
  if (raw === undefined) {
    throw new Error(`unknown preset '${name}' (available: ${PRESET_NAMES.join(', ')})`);
  }
  return validateConfig(structuredClone(raw), `preset '${name}'`);
}
