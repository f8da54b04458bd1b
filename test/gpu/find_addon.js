/**
 * Finds the CUDA-enabled addon for the GPU suites and says whether a GPU can be used:
 * $WAVEMOE_CUDA_ADDON, else build-cuda/Release/wavemoe.node (npm run build:cuda). Returns {addon, skip}: skip is
 * the reason the GPU comparisons cannot run here (no CUDA build, no driver, no GPU), or null.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function findCudaAddon() {
  const file = process.env.WAVEMOE_CUDA_ADDON || path.resolve(__dirname, '..', '..', 'build-cuda', 'Release', 'wavemoe.node');
  if (!fs.existsSync(file)) {
    return { addon: null, file, skip: `no CUDA-enabled addon at ${file} (npm run build:cuda builds it where nvcc is present)` };
  }
  const addon = require(file);
  const info = addon.cudaInfo();
  if (!info.built) return { addon, file, skip: `${file} is a CPU-only build` };
  if (!info.available) return { addon, file, skip: `no usable GPU: ${info.reason}` };
  return { addon, file, skip: null };
}

module.exports = { findCudaAddon };
