// See fake_device.cc: a host-memory stand-in for a CUDA device, for tests of the device plumbing without a GPU.
#pragma once

namespace wavemoe {

// Registers the fake backend when WAVEMOE_FAKE_CUDA is 1 or cpu-kernels and no CUDA backend is registered; true if
// it did.
bool install_fake_cuda_if_asked();

}  // namespace wavemoe
