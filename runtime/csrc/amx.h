// What the AMX code of the runtime's C++ shares (grouped.cpp's kernel, peak.cpp's probe): the
// tile configuration's layout and the request for AMX's tile state.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace archc {

// ldtilecfg's 64-byte operand, palette 1: each tile's rows and bytes per row.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Linux lends a process AMX's tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA): true once granted (the request is process-wide and may be repeated).
inline bool request_amx() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#else
  return false;
#endif
}

}  // namespace archc
