// The addon's entry point: the whole export list, one registration call per op family.
#include <napi.h>

#include <memory>

#ifdef WAVEMOE_CUDA
#include "../../cuda/backend.h"
#endif

#include "../core/device.h"
#include "addon_data.h"
#include "fake_device.h"
#include "ops.h"
#include "tensor_wrap.h"

namespace wavemoe {

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  // The environment owns the instance data from the first line on: any later step may throw (a worker_thread
  // terminated while it loads the addon makes N-API calls fail), and the data must not leak then.
  auto owned = std::make_unique<AddonData>();
  env.SetInstanceData<AddonData>(owned.get());  // freed by node-addon-api when this environment exits
  AddonData* data = owned.release();
  Napi::Function tensor_class = TensorWrap::Init(env);
  data->tensor_base = Napi::Persistent(tensor_class);
  data->tensor_constructor = Napi::Persistent(tensor_class);
  exports.Set("Tensor", tensor_class);
  // The TypeScript layer subclasses Tensor; tensors made natively (views) are then created from that subclass.
  exports.Set("setTensorClass", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                Napi::Env env = info.Env();
                AddonData* d = env.GetInstanceData<AddonData>();
                if (info.Length() < 1 || !info[0].IsFunction()) {
                  throw Napi::TypeError::New(env, "setTensorClass: expected a subclass of Tensor");
                }
                Napi::Function cls = info[0].As<Napi::Function>();
                Napi::Value proto = cls.Get("prototype");
                if (!proto.IsObject() || !proto.As<Napi::Object>().InstanceOf(d->tensor_base.Value())) {
                  throw Napi::TypeError::New(env, "setTensorClass: expected a subclass of Tensor");
                }
                d->tensor_constructor = Napi::Persistent(cls);
                return env.Undefined();
              }));
#ifdef WAVEMOE_CUDA
  gpu::install_backend();  // device tensors on "cuda:N" (process-wide; installing again is harmless)
  exports.Set("cuda", Napi::Boolean::New(env, true));
#else
  exports.Set("cuda", Napi::Boolean::New(env, false));
  install_fake_cuda_if_asked();  // tests only: WAVEMOE_FAKE_CUDA=1
  exports.Set("fakeCuda", Napi::Boolean::New(env, device_backend(Device::cuda) != nullptr));
#endif

  register_core_ops(env, exports);
  register_elementwise_ops(env, exports);
  register_matmul_ops(env, exports);
  register_embedding_ops(env, exports);
  register_norm_ops(env, exports);
  register_activation_ops(env, exports);
  register_softmax_ops(env, exports);
  register_rope_ops(env, exports);
  register_cross_entropy_ops(env, exports);
  register_optimizer_ops(env, exports);
  register_attention_ops(env, exports);
  register_moe_ops(env, exports);
  register_wavelet_ops(env, exports);
  register_sampling_ops(env, exports);
  register_recording(env, exports);
  register_cuda_info(env, exports);
  return exports;
}

NODE_API_MODULE(wavemoe, InitAll)

}  // namespace wavemoe
