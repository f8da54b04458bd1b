// Which instruction-set variant of the hot micro-kernels runs. Chosen once from cpuid (default_isa: the widest the CPU
// runs, except AVX2 rather than AVX-512 on CPUs that split 512-bit operations); WAVEMOE_ISA=generic|avx2|avx512
// (read when the addon loads) or set_isa() forces a path, which is how tests exercise every variant.
#pragma once
#include <string>

namespace wavemoe {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // the CPU (and OS) can run it
Isa best_isa();     // the widest variant the CPU runs
Isa default_isa();  // the one used unless forced: best_isa(), or avx2 where 512-bit operations are split (AMD Zen 3/4)
Isa current_isa();
// Throws wavemoe::Error naming the ISA if this CPU cannot run it.
void set_isa(Isa isa);
// Parses a name; throws for an unknown one.
Isa isa_from_name(const std::string& name);

}  // namespace wavemoe
