#!/usr/bin/env node
// Rewrites the CUDA sources for the CPU emulation (test/cuda-emulation/README.md): the two constructs of CUDA that
// are not C++. Everything else compiles unchanged against include/ (fake cuda_runtime.h, mma.h, cub/).
//
//   KERNEL<<<grid, block[, smem[, stream]]>>>(ARGS);
//     -> ::emu::launch(::emu::kernel_id(KERNEL), "KERNEL", [&] { KERNEL(ARGS); }, grid, block[, smem[, stream]]);
//   extern __shared__ [__align__(N)] TYPE NAME[];
//     -> TYPE* NAME = reinterpret_cast<TYPE*>(::emu::dynamic_smem());
//
// Line numbers are kept (a #line directive names the original file), so compiler errors and __FILE__:__LINE__ in
// error messages point into cuda/. Usage: node transform.js <cuda dir> <output dir>; writes every file of the
// directory (.cu as .cu.cc), and only rewrites an output whose text changed, so that make rebuilds what changed.
'use strict';
const fs = require('fs');
const path = require('path');

function matchingParen(src, open) {
  let depth = 0;
  for (let p = open; p < src.length; ++p) {
    if (src[p] === '(') depth++;
    else if (src[p] === ')' && --depth === 0) return p;
  }
  throw new Error(`unbalanced parentheses after offset ${open}`);
}

function rewriteLaunches(src, file) {
  let out = '';
  let i = 0;
  for (;;) {
    const j = src.indexOf('<<<', i);
    if (j < 0) return out + src.slice(i);
    let start = src.lastIndexOf('\n', j) + 1;
    if (src.slice(start, j).includes('//')) {  // a launch in a comment
      out += src.slice(i, j + 3);
      i = j + 3;
      continue;
    }
    while (src[start] === ' ' || src[start] === '\t') start++;
    const kernel = src.slice(start, j);
    const close = src.indexOf('>>>', j);
    if (close < 0) throw new Error(`${file}: <<< without >>>`);
    const config = src.slice(j + 3, close);
    if (src[close + 3] !== '(') throw new Error(`${file}: expected ( after >>> at ${kernel}`);
    const end = matchingParen(src, close + 3);
    if (src[end + 1] !== ';') throw new Error(`${file}: expected ; after the launch of ${kernel}`);
    if (!/^[\w:<>, ]+$/.test(kernel)) throw new Error(`${file}: a launch must start its line: '${kernel}'`);
    const args = src.slice(close + 4, end);
    out += src.slice(i, start);
    // A template kernel called without its template arguments has no address to take: its id is null (the
    // dynamic shared memory limit then stays 48 KiB, which only cudaFuncSetAttribute on its address could raise).
    const bare = kernel.includes('<') ? null : kernel.trim();
    const isTemplate = bare !== null &&
      new RegExp(`template\\s*<[^;{]*>\\s*__global__[^;{]*?\\b${bare}\\s*\\(`).test(src);
    const id = isTemplate ? 'nullptr' : `::emu::kernel_id(${kernel})`;
    out += `::emu::launch(${id}, ${JSON.stringify(kernel)}, [&] { ${kernel}(${args}); }, ${config});`;
    i = end + 2;
  }
}

function rewriteDynamicShared(src) {
  return src.replace(/extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w:\s]+?)\s+(\w+)\s*\[\s*\]\s*;/g,
    (_, type, name) => `${type}* ${name} = reinterpret_cast<${type}*>(::emu::dynamic_smem());`);
}

function transform(src, file) {
  return `#line 1 ${JSON.stringify(file)}\n` + rewriteDynamicShared(rewriteLaunches(src, file));
}

function main() {
  const [inDir, outDir] = process.argv.slice(2);
  if (!inDir || !outDir) {
    console.error('usage: node transform.js <cuda dir> <output dir>');
    process.exit(2);
  }
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of fs.readdirSync(inDir).sort()) {
    if (!/\.(cu|cuh|h)$/.test(name)) continue;
    const file = path.resolve(inDir, name);
    const text = transform(fs.readFileSync(file, 'utf8'), file);
    const target = path.join(outDir, name.endsWith('.cu') ? `${name}.cc` : name);
    if (!fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== text) fs.writeFileSync(target, text);
  }
}

if (require.main === module) main();
module.exports = { transform };
