/**
 * test/cuda-emulation/transform.js: the rewrite of CUDA's launch syntax and dynamic shared memory for the CPU
 * emulation keeps line numbers, skips launches in comments, gives template kernels called without their arguments
 * a null id, and refuses what it cannot rewrite. (The emulated build of every cuda/*.cu exercises it in full.)
 */
const { transform } = require('./transform.js') as { transform: (src: string, file: string) => string };

const body = (out: string) => out.split('\n').slice(1).join('\n'); // without the #line directive

test('a launch becomes a call of emu::launch with the kernel, its name, a closure and the configuration', () => {
  const out = transform('  rmsnorm_kernel<T><<<blocks, 256, 0, stream>>>(out, x,\n      n);\nnext();\n', '/r/cuda/a.cu');
  expect(out.split('\n')[0]).toBe('#line 1 "/r/cuda/a.cu"');
  expect(body(out)).toBe(
    '  ::emu::launch(::emu::kernel_id(rmsnorm_kernel<T>), "rmsnorm_kernel<T>", [&] { rmsnorm_kernel<T>(out, x,\n' +
      '      n); }, blocks, 256, 0, stream);\nnext();\n',
  );
  expect(body(out).split('\n').length).toBe(4); // the same lines as the source
});

test('a template kernel launched without template arguments gets a null id; a plain kernel its address', () => {
  const src = 'template <typename F>\n__global__ void __launch_bounds__(64) sum_kernel(F f) {}\n' +
    '__global__ void plain_kernel(int n) {}\nvoid go() {\n  sum_kernel<<<1, 64>>>(f);\n  plain_kernel<<<1, 32>>>(3);\n}\n';
  const out = body(transform(src, 'x.cu'));
  expect(out).toContain('::emu::launch(nullptr, "sum_kernel", [&] { sum_kernel(f); }, 1, 64);');
  expect(out).toContain('::emu::launch(::emu::kernel_id(plain_kernel), "plain_kernel", [&] { plain_kernel(3); }, 1, 32);');
});

test('launches in comments are left alone', () => {
  const src = '//   kernel<<<grid, block, 0, stream>>>(...);\nint a;\n';
  expect(body(transform(src, 'x.h'))).toBe(src);
});

test('extern __shared__ arrays point at the block\'s dynamic shared memory', () => {
  const src = '  extern __shared__ __align__(128) unsigned char smem_raw[];\n  extern __shared__ float tile[];\n';
  expect(body(transform(src, 'x.cu'))).toBe(
    '  unsigned char* smem_raw = reinterpret_cast<unsigned char*>(::emu::dynamic_smem());\n' +
      '  float* tile = reinterpret_cast<float*>(::emu::dynamic_smem());\n',
  );
});

test('a launch that does not start its line, or lacks its semicolon, is refused with the file named', () => {
  expect(() => transform('  if (x) k<<<1, 32>>>(a);\n', 'bad.cu')).toThrow(/bad\.cu: a launch must start its line/);
  expect(() => transform('  k<<<1, 32>>>(a)\n', 'bad.cu')).toThrow(/bad\.cu: expected ; after the launch of k/);
  expect(() => transform('  k<<<1, 32>>>(a;\n', 'bad.cu')).toThrow(/unbalanced parentheses/);
});
