#include "device_run.h"

#include <cstring>

#include "error.h"

namespace wavemoe {
namespace {

thread_local DeviceRun* t_current = nullptr;

}  // namespace

DeviceRun::~DeviceRun() {
  for (auto& [device, blocks] : blocks_) {
    DeviceBackend* backend = device_backend(device.type);
    if (backend == nullptr) continue;  // cannot happen: a block exists only through a usable backend
    for (const Block& b : blocks) backend->free(b.device, kWordsPerBlock * sizeof(uint64_t), device.index);
  }
}

DeviceRun* DeviceRun::current() { return t_current; }

DeviceRun::Scope::Scope(DeviceRun* run) : previous_(t_current) { t_current = run; }
DeviceRun::Scope::~Scope() { t_current = previous_; }

void DeviceRun::begin_step(const std::string& name, size_t step, size_t steps, int64_t scalar_slot) {
  step_ = name + " (recorded step " + std::to_string(step) + " of " + std::to_string(steps) + ")";
  step_slot_ = scalar_slot;
}

void* DeviceRun::next_word(const DeviceRef& d, size_t* block, size_t* word) {
  std::vector<Block>& blocks = blocks_[d];
  if (blocks.empty() || blocks.back().used == kWordsPerBlock) {
    Block b;
    b.device = usable_backend(d).allocate(kWordsPerBlock * sizeof(uint64_t), d.index);  // zero-filled
    blocks.push_back(b);
  }
  Block& b = blocks.back();
  *block = blocks.size() - 1;
  *word = b.used++;
  return static_cast<uint64_t*>(b.device) + *word;
}

double* DeviceRun::number(const DeviceRef& d) {
  if (step_slot_ < 0) throw Error("DeviceRun::number: " + step_ + " has no number result");
  NumberUse use{d, 0, 0, step_slot_};
  void* p = next_word(d, &use.block, &use.word);
  numbers_.push_back(use);
  return static_cast<double*>(p);
}

uint64_t* DeviceRun::index_check(const DeviceRef& d, Describe describe) {
  CheckUse use{d, 0, 0, step_, std::move(describe)};
  void* p = next_word(d, &use.block, &use.word);
  checks_.push_back(std::move(use));
  return static_cast<uint64_t*>(p);
}

bool DeviceRun::number_deferred(int64_t scalar_slot) const {
  return !numbers_.empty() && numbers_.back().slot == scalar_slot;
}

void DeviceRun::finish(std::vector<double>* scalars) {
  // One copy per device: its blocks are copied one after another, and only the first copy has anything to wait for.
  std::map<DeviceRef, std::vector<std::vector<uint64_t>>, DeviceKey> host;
  for (const auto& [device, blocks] : blocks_) {
    DeviceBackend& backend = usable_backend(device);
    auto& copies = host[device];
    for (const Block& b : blocks) {
      copies.emplace_back(b.used);
      backend.copy_to_host(copies.back().data(), b.device, b.used * sizeof(uint64_t), device.index);
    }
  }
  for (const NumberUse& n : numbers_) {
    double v;
    std::memcpy(&v, &host[n.device][n.block][n.word], sizeof v);
    (*scalars)[static_cast<size_t>(n.slot)] = v;
  }
  for (const CheckUse& c : checks_) {
    const uint64_t w = host[c.device][c.block][c.word];
    if (w == 0) continue;
    const int64_t index = static_cast<int64_t>(0xFFFFFFFFu - static_cast<uint32_t>(w >> 32));
    const int32_t value = static_cast<int32_t>(static_cast<uint32_t>(w & 0xFFFFFFFFu));
    throw Error(c.step + ": " + c.describe(index, value));
  }
}

}  // namespace wavemoe
