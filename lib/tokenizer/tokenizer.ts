/**
 * The GPT-NeoX-20B byte-level BPE tokenizer, run by @huggingface/tokenizers (a maintained, pure-JS implementation of
 * Hugging Face tokenizer.json files). Token ids are kept below the model's vocabulary size: at the base vocabulary
 * of 50254 the added whitespace-run tokens (ids 50254..50276) are dropped, so their text is encoded by the BPE.
 */
import * as fs from 'node:fs';
import { errorMessage } from '../io/preview';
import { resolveTokenizerFile, type TokenizerFileOptions } from './tokenizer_file';

interface TokenizerJson {
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  model?: { vocab?: Record<string, number> };
}

interface HfTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
}

export interface TokenizerOptions extends TokenizerFileOptions {
  /** Ids at or above this are never produced (default 50254, the base vocabulary). */
  vocabSize?: number;
}

export class Tokenizer {
  /** `<|endoftext|>`: separates documents in training data. */
  readonly eosId: number;

  private constructor(
    private readonly impl: HfTokenizer,
    readonly vocabSize: number,
    readonly file: string,
  ) {
    this.eosId = 0;
  }

  static async load(opts: TokenizerOptions = {}): Promise<Tokenizer> {
    const file = await resolveTokenizerFile(opts);
    return Tokenizer.fromFile(file, opts.vocabSize ?? 50254);
  }

  static fromFile(file: string, vocabSize = 50254): Tokenizer {
    if (!Number.isSafeInteger(vocabSize) || vocabSize < 2) {
      throw new RangeError(`Tokenizer: vocabSize must be an integer >= 2, got ${vocabSize}`);
    }
    let json: TokenizerJson;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8')) as TokenizerJson;
    } catch (err) {
      throw new Error(`cannot read tokenizer ${file}: ${errorMessage(err)}`);
    }
    if (typeof json.model?.vocab !== 'object' || json.model.vocab === null) {
      throw new Error(`tokenizer ${file} has no BPE vocabulary (model.vocab)`);
    }
    const maxBase = Math.max(...Object.values(json.model.vocab));
    if (maxBase >= vocabSize) {
      throw new RangeError(`tokenizer ${file} has base ids up to ${maxBase}, which do not fit vocabSize ${vocabSize}`);
    }
    json.added_tokens = (json.added_tokens ?? []).filter((t) => t.id < vocabSize);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Tokenizer: Hf } = require('@huggingface/tokenizers') as {
      Tokenizer: new (tokenizer: object, config: object) => HfTokenizer;
    };
    return new Tokenizer(new Hf(json, {}), vocabSize, file);
  }

  /** Text to ids (no special tokens added). Every id is < vocabSize. */
  encode(text: string): Int32Array {
    if (typeof text !== 'string') throw new TypeError('Tokenizer.encode: text must be a string');
    return Int32Array.from(this.impl.encode(text, { add_special_tokens: false }).ids);
  }

  /** Ids back to text, exactly (no clean-up of spaces). */
  decode(ids: ArrayLike<number>): string {
    const list = Array.from(ids);
    list.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`Tokenizer.decode: ids[${i}] = ${id} is outside [0, ${this.vocabSize})`);
      }
    });
    return this.impl.decode(list, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}
