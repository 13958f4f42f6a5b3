// Data cache detection for the block sizes of the packed products (cache.hpp).

#include "fastrnn/runtime/cache.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FASTRNN_HAVE_CPUID 1
#endif

namespace fastrnn {

namespace {

constexpr std::size_t kMinCache = std::size_t(1) << 10, kMaxCache = std::size_t(1) << 30;

// "48K", "1024K", "32M", "65536": bytes, or 0 when it is not a size.
std::size_t parse_size(const char* s, const char** end) {
  char* stop = nullptr;
  const unsigned long long n = std::strtoull(s, &stop, 10);
  if (stop == s) return 0;
  std::size_t bytes = static_cast<std::size_t>(n);
  if (*stop == 'K' || *stop == 'k')
    bytes <<= 10, ++stop;
  else if (*stop == 'M' || *stop == 'm')
    bytes <<= 20, ++stop;
  if (end) *end = stop;
  return bytes;
}

bool read_line(const std::string& path, std::string* out) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  char buf[256];
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok) return false;
  *out = buf;
  while (!out->empty() && (out->back() == '\n' || out->back() == ' ')) out->pop_back();
  return true;
}

// How many CPUs a sysfs cpu list ("0-7,16-23") names.
int count_cpus(const std::string& list) {
  int count = 0;
  const char* s = list.c_str();
  while (*s) {
    char* stop = nullptr;
    const long a = std::strtol(s, &stop, 10);
    if (stop == s) return 0;
    long b = a;
    if (*stop == '-') {
      s = stop + 1;
      b = std::strtol(s, &stop, 10);
      if (stop == s) return 0;
    }
    count += static_cast<int>(b - a + 1);
    s = *stop == ',' ? stop + 1 : stop;
    if (*stop && *stop != ',') return 0;
  }
  return count;
}

bool from_sysfs(CacheSizes* out) {
  CacheSizes c{0, 0, 0, "sysfs"};
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::string level, type, size, shared;
    if (!read_line(dir + "level", &level)) break;
    if (!read_line(dir + "type", &type) || !read_line(dir + "size", &size)) continue;
    if (type == "Instruction") continue;
    std::size_t bytes = parse_size(size.c_str(), nullptr);
    if (level == "1") c.l1d = bytes;
    if (level == "2") c.l2 = bytes;
    if (level == "3") {
      const int sharing = read_line(dir + "shared_cpu_list", &shared) ? count_cpus(shared) : 1;
      c.l3 = bytes / static_cast<std::size_t>(sharing > 0 ? sharing : 1);
    }
  }
  if (c.l1d < kMinCache || c.l2 < kMinCache) return false;
  if (c.l3 < c.l2) c.l3 = c.l2;  // no L3 (or a tiny share): block for L2 alone
  *out = c;
  return true;
}

bool from_cpuid(CacheSizes* out) {
#ifdef FASTRNN_HAVE_CPUID
  // Intel's leaf 4 and AMD's 0x8000001D describe the caches the same way, one subleaf each.
  unsigned a, b, c, d;
  unsigned leaf = 4;
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x8000001D &&
      __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541 /* "Auth"enticAMD */)
    leaf = 0x8000001D;
  CacheSizes sizes{0, 0, 0, "cpuid"};
  for (unsigned sub = 0; sub < 16; ++sub) {
    __cpuid_count(leaf, sub, a, b, c, d);
    const unsigned type = a & 31;  // 0: no more caches, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    if (type == 2) continue;
    const unsigned level = (a >> 5) & 7, sharing = ((a >> 14) & 0xfff) + 1;
    const std::size_t bytes = std::size_t((b >> 22) + 1) * (((b >> 12) & 0x3ff) + 1) *
                              ((b & 0xfff) + 1) * (std::size_t(c) + 1);
    if (level == 1) sizes.l1d = bytes;
    if (level == 2) sizes.l2 = bytes;
    // Logical processors sharing it: per core with 2-way SMT, an estimate that errs small.
    if (level == 3) sizes.l3 = bytes / std::max<unsigned>(1, sharing / 2);
  }
  if (sizes.l1d < kMinCache || sizes.l2 < kMinCache) return false;
  if (sizes.l3 < sizes.l2) sizes.l3 = sizes.l2;
  *out = sizes;
  return true;
#else
  (void)out;
  return false;
#endif
}

CacheSizes detect() {
  CacheSizes c{};
  const char* env = std::getenv("FASTRNN_CACHE_SIZES");
  if (env && parse_cache_sizes(env, &c)) return c;
  if (from_sysfs(&c) || from_cpuid(&c)) return c;
  return CacheSizes{std::size_t(32) << 10, std::size_t(512) << 10, std::size_t(2) << 20, "default"};
}

}  // namespace

bool parse_cache_sizes(const char* text, CacheSizes* out) {
  std::size_t v[3];
  const char* s = text;
  for (int i = 0; i < 3; ++i) {
    const char* end = s;
    v[i] = parse_size(s, &end);
    if (v[i] < kMinCache || v[i] > kMaxCache) return false;
    if (i < 2 && *end != ',') return false;
    if (i == 2 && *end != '\0') return false;
    s = end + 1;
  }
  if (!(v[0] <= v[1] && v[1] <= v[2])) return false;
  *out = CacheSizes{v[0], v[1], v[2], "FASTRNN_CACHE_SIZES"};
  return true;
}

const CacheSizes& cache_sizes() {
  static const CacheSizes sizes = detect();
  return sizes;
}

}  // namespace fastrnn
