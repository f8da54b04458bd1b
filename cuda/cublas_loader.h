// cuBLAS, loaded at run time with dlopen: the build machines and CI have no cuBLAS headers or libraries, so the few
// entry points used are declared here, with the C signatures and enum values of the public cuBLAS API
// (cublas_api.h, CUDA 11-13; docs.nvidia.com/cuda/cublas). Nothing here links against cuBLAS.
//
// Search order (the first library that opens and has every symbol wins):
//   1. $WAVEMOE_CUBLAS: a path to libcublas.so.* (or a folder holding one);
//   2. the system's CUDA library folders: $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64,
//      /usr/local/cuda/targets/x86_64-linux/lib, /usr/lib/x86_64-linux-gnu, then the plain sonames through the
//      loader's own path (LD_LIBRARY_PATH, ld.so.cache);
//   3. the cuBLAS in PyTorch's Python packages: <site-packages>/nvidia/cublas/lib and <site-packages>/nvidia/cu13/lib
//      under $VIRTUAL_ENV, $CONDA_PREFIX, /opt/conda, /usr/local/lib/python3.*, /usr/lib/python3*, ~/.local/lib/python3.*.
// Sonames tried: libcublas.so.13, libcublas.so.12, libcublas.so. libcublasLt from the same folder is opened first
// (RTLD_GLOBAL) so that libcublas finds it.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace wavemoe {
namespace gpu {

// --- Declarations copied from the public cuBLAS API (cublas_api.h) --------------------------------------------
extern "C" {
struct cublasContext;
typedef struct cublasContext* cublasHandle_t;

typedef enum {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum {
  CUBLAS_DEFAULT_MATH = 0,
  CUBLAS_TENSOR_OP_MATH = 1,  // deprecated
  CUBLAS_PEDANTIC_MATH = 2,
  CUBLAS_TF32_TENSOR_OP_MATH = 3,
  CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
} cublasMath_t;

// cudaDataType and cublasComputeType_t values used with cublasGemmStridedBatchedEx (library_types.h, cublas_api.h).
constexpr int kCudaR32F = 0;
typedef enum {
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,  // float in and out, inputs down-converted to bfloat16 on tensor cores
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77   // float in and out, inputs down-converted to TF32 on tensor cores
} cublasComputeType_t;
constexpr int kCublasGemmDefault = -1;

typedef cublasStatus_t (*cublasCreate_v2_fn)(cublasHandle_t* handle);
typedef cublasStatus_t (*cublasDestroy_v2_fn)(cublasHandle_t handle);
typedef cublasStatus_t (*cublasSetStream_v2_fn)(cublasHandle_t handle, cudaStream_t streamId);
typedef cublasStatus_t (*cublasSetMathMode_fn)(cublasHandle_t handle, cublasMath_t mode);
typedef cublasStatus_t (*cublasGetVersion_v2_fn)(cublasHandle_t handle, int* version);
typedef cublasStatus_t (*cublasSgemmStridedBatched_fn)(cublasHandle_t handle, cublasOperation_t transa,
                                                        cublasOperation_t transb, int m, int n, int k,
                                                        const float* alpha, const float* A, int lda,
                                                        long long int strideA, const float* B, int ldb,
                                                        long long int strideB, const float* beta, float* C, int ldc,
                                                        long long int strideC, int batchCount);
typedef cublasStatus_t (*cublasGemmStridedBatchedEx_fn)(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha,
    const void* A, int Atype, int lda, long long int strideA, const void* B, int Btype, int ldb, long long int strideB,
    const void* beta, void* C, int Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, int algo);
}  // extern "C"
// -----------------------------------------------------------------------------------------------------------

struct CublasApi {
  bool loaded = false;
  std::string path;   // the library that was loaded
  std::string error;  // why none was loaded: every place tried and what failed
  cublasCreate_v2_fn create = nullptr;
  cublasDestroy_v2_fn destroy = nullptr;
  cublasSetStream_v2_fn set_stream = nullptr;
  cublasSetMathMode_fn set_math_mode = nullptr;
  cublasGetVersion_v2_fn get_version = nullptr;
  cublasSgemmStridedBatched_fn sgemm_strided_batched = nullptr;
  // Optional: the tf32 and bf16 matmul precisions (absent: those precisions use the own kernel's emulation).
  cublasGemmStridedBatchedEx_fn gemm_strided_batched_ex = nullptr;
};

// Loads cuBLAS once (thread-safe) and returns what was found; never throws. WAVEMOE_CUBLAS=0 disables the search
// (own kernels only).
const CublasApi& cublas_api();
bool cublas_loaded();
// cublasGetVersion (e.g. 130100), known once a handle has been created; 0 before.
int cublas_version();
// "cuBLAS 13.0.2 from /path/libcublas.so.13" or "own tiled kernel (cuBLAS not loaded: ...)".
std::string matmul_backend_description();
const char* cublas_status_string(cublasStatus_t status);

// The handle for the current device (created on first use, kept for the process), bound to `stream`, in the
// math mode chosen by set_allow_tf32. Throws if cuBLAS is not loaded or a call fails.
cublasHandle_t cublas_handle(cudaStream_t stream);
// float32 matmul through TF32 tensor cores (10-bit mantissa products): off by default, opt-in only.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace gpu
}  // namespace wavemoe
