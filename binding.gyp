{
  # CPU-only source build of the addon (npm install). The CUDA build goes through CMakeLists.txt (npm run build:cuda).
  # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: in a worker being terminated every N-API call fails; without it the
  # failure to throw that error becomes a C++ exception that aborts the whole process.
  # Global flags stay at baseline x86-64; the AVX2 and AVX-512 micro-kernels are static libraries with their own
  # flags, chosen at run time from cpuid (csrc/core/cpu_features.cc).
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags!": ["-fno-exceptions"],
    "defines": ["NAPI_VERSION=8", "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"],
    "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"]}
  },
  "targets": [
    {
      "target_name": "wavemoe_avx2",
      "type": "static_library",
      "sources": ["<!@(ls -1 csrc/kernels/isa/*_avx2.cc)"],
      "conditions": [["target_arch=='x64'", {"cflags_cc": ["-mavx2", "-mfma", "-mf16c"]}]]
    },
    {
      "target_name": "wavemoe_avx512",
      "type": "static_library",
      "sources": ["<!@(ls -1 csrc/kernels/isa/*_avx512.cc)"],
      "conditions": [["target_arch=='x64'", {
        "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-Wno-uninitialized"]
      }]]
    },
    {
      "target_name": "wavemoe",
      "dependencies": ["wavemoe_avx2", "wavemoe_avx512"],
      "sources": [
        "<!@(ls -1 csrc/core/*.cc)",
        "<!@(ls -1 csrc/kernels/*.cc)",
        "<!@(ls -1 csrc/kernels/isa/*_generic.cc)",
        "<!@(ls -1 csrc/binding/*.cc)"
      ]
    }
  ]
}
