#include "cublas_loader.h"

#include <dlfcn.h>
#include <glob.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "csrc/kernels/matmul_precision.h"

namespace wavemoe {
namespace gpu {
namespace {

const char* const kSonames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
const char* const kLtSonames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};

std::string dirname_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::vector<std::string> glob_paths(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g;
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  }
  globfree(&g);
  return out;
}

// Candidate folders in search order (after $WAVEMOE_CUBLAS).
std::vector<std::string> candidate_dirs() {
  std::vector<std::string> dirs;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
    if (const char* v = std::getenv(var)) dirs.push_back(std::string(v) + "/lib64");
  }
  for (const char* d : {"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
                        "/usr/local/cuda/targets/sbsa-linux/lib", "/usr/lib/x86_64-linux-gnu",
                        "/usr/lib/aarch64-linux-gnu"}) {
    dirs.push_back(d);
  }
  dirs.push_back("");  // plain sonames: LD_LIBRARY_PATH and ld.so.cache
  std::vector<std::string> site_globs;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    if (const char* v = std::getenv(var)) site_globs.push_back(std::string(v) + "/lib/python3*/site-packages");
  }
  if (const char* home = std::getenv("HOME")) site_globs.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  for (const char* g : {"/opt/conda/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
                        "/usr/local/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
                        "/usr/lib/python3*/site-packages"}) {
    site_globs.push_back(g);
  }
  for (const std::string& sg : site_globs) {
    for (const std::string& site : glob_paths(sg)) {
      dirs.push_back(site + "/nvidia/cublas/lib");
      dirs.push_back(site + "/nvidia/cu13/lib");
    }
  }
  return dirs;
}

// Opens `path` and resolves every symbol; on failure appends the reason to *why and returns false.
bool try_load(const std::string& path, CublasApi* api, std::string* why) {
  // libcublas needs libcublasLt; from a pip wheel folder the loader may not find it by itself.
  const std::string dir = dirname_of(path);
  if (!dir.empty()) {
    for (const char* lt : kLtSonames) {
      if (dlopen((dir + "/" + lt).c_str(), RTLD_NOW | RTLD_GLOBAL)) break;
    }
  }
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    // "cannot open shared object file" for absent files: keep the list short, report only real failures.
    const std::string msg = e ? e : "dlopen failed";
    if (msg.find("No such file") == std::string::npos) *why += "\n  " + path + ": " + msg;
    return false;
  }
  CublasApi a;
  a.create = reinterpret_cast<cublasCreate_v2_fn>(dlsym(h, "cublasCreate_v2"));
  a.destroy = reinterpret_cast<cublasDestroy_v2_fn>(dlsym(h, "cublasDestroy_v2"));
  a.set_stream = reinterpret_cast<cublasSetStream_v2_fn>(dlsym(h, "cublasSetStream_v2"));
  a.set_math_mode = reinterpret_cast<cublasSetMathMode_fn>(dlsym(h, "cublasSetMathMode"));
  a.get_version = reinterpret_cast<cublasGetVersion_v2_fn>(dlsym(h, "cublasGetVersion_v2"));
  a.sgemm_strided_batched = reinterpret_cast<cublasSgemmStridedBatched_fn>(dlsym(h, "cublasSgemmStridedBatched"));
  a.gemm_strided_batched_ex =
      reinterpret_cast<cublasGemmStridedBatchedEx_fn>(dlsym(h, "cublasGemmStridedBatchedEx"));
  if (!a.create || !a.destroy || !a.set_stream || !a.set_math_mode || !a.sgemm_strided_batched) {
    *why += "\n  " + path + ": missing a cuBLAS entry point";
    dlclose(h);
    return false;
  }
  a.loaded = true;
  a.path = path;
  *api = a;
  return true;
}

CublasApi load() {
  CublasApi api;
  std::string why;
#ifdef WAVEMOE_CUDA_EMULATION  // test/cuda-emulation: "device" pointers are host memory, which cuBLAS cannot read
  api.error = "the CPU emulation of CUDA has no cuBLAS";
  return api;
#endif
  const char* env = std::getenv("WAVEMOE_CUBLAS");
  if (env && std::string(env) == "0") {
    api.error = "disabled by WAVEMOE_CUBLAS=0";
    return api;
  }
  if (env && *env) {
    const std::string p = env;
    if (try_load(p, &api, &why)) return api;
    for (const char* so : kSonames) {
      if (try_load(p + "/" + so, &api, &why)) return api;
    }
    why += "\n  WAVEMOE_CUBLAS=" + p + " did not load";
  }
  for (const std::string& dir : candidate_dirs()) {
    for (const char* so : kSonames) {
      if (try_load(dir.empty() ? std::string(so) : dir + "/" + so, &api, &why)) return api;
    }
  }
  api.error = "no libcublas.so.{13,12} found (set WAVEMOE_CUBLAS to its path, e.g. PyTorch's "
              "site-packages/nvidia/cublas/lib)" + why;
  return api;
}

std::atomic<int> g_cublas_version{0};  // from cublasGetVersion, once a handle exists

}  // namespace

const CublasApi& cublas_api() {
  static const CublasApi api = load();
  return api;
}

bool cublas_loaded() { return cublas_api().loaded; }
int cublas_version() { return g_cublas_version; }

const char* cublas_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cuBLAS status";
}

std::string matmul_backend_description() {
  const CublasApi& api = cublas_api();
  if (!api.loaded) return "own tiled kernel (cuBLAS not loaded: " + api.error + ")";
  // cublasGetVersion needs a handle: the version is known after the first cublas_handle().
  const int version = cublas_version();
  const std::string v = version ? " " + std::to_string(version) : "";
  const MatmulPrecision p = matmul_precision();
  return "cuBLAS" + v + " from " + api.path +
         (p == MatmulPrecision::fp32 ? "" : std::string(" (matmul precision ") + matmul_precision_name(p) + ")");
}

// The TF32 switch of earlier versions is the process-wide matmul precision (csrc/kernels/matmul_precision.h).
void set_allow_tf32(bool allow) { set_matmul_precision(allow ? MatmulPrecision::tf32 : MatmulPrecision::fp32); }
bool allow_tf32() { return matmul_precision() == MatmulPrecision::tf32; }

cublasHandle_t cublas_handle(cudaStream_t stream) {
  const CublasApi& api = cublas_api();
  if (!api.loaded) throw std::runtime_error("cuBLAS is not loaded: " + api.error);
  static std::mutex mutex;
  static std::map<int, cublasHandle_t> handles;  // per device, kept for the process
  int device = 0;
  WAVEMOE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  cublasHandle_t& h = handles[device];
  if (!h) {
    const cublasStatus_t s = api.create(&h);
    if (s != CUBLAS_STATUS_SUCCESS) {
      h = nullptr;
      throw std::runtime_error(std::string("cublasCreate_v2 failed: ") + cublas_status_string(s));
    }
    if (api.get_version) {
      int v = 0;
      if (api.get_version(h, &v) == CUBLAS_STATUS_SUCCESS) g_cublas_version = v;
    }
  }
  cublasStatus_t s = api.set_stream(h, stream);
  if (s == CUBLAS_STATUS_SUCCESS) {
    // Reduced precisions go through cublasGemmStridedBatchedEx's compute type; plain SGEMM stays exact float32
    // (TF32 math mode only when tf32 is asked for and the Ex entry point is missing).
    const bool tf32_by_mode = allow_tf32() && api.gemm_strided_batched_ex == nullptr;
    s = api.set_math_mode(h, tf32_by_mode ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
  }
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("cublasSetStream/SetMathMode failed: ") + cublas_status_string(s));
  }
  return h;
}

}  // namespace gpu
}  // namespace wavemoe
