#include "workloads/safetensors.h"

#include <openssl/evp.h>

#include "core/file_io.h"
#include "core/json_input.h"
#include "core/json_text.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace attnsim {

namespace {

// SHA-256 (FIPS 180-4) of data[0, size), lowercase hex, by OpenSSL's libcrypto: it picks
// the CPU's SHA extensions (SHA-NI) or AVX2 code at run time, 5x faster here than the
// portable loop this replaced, and a trace is hashed on every run. after_chunk(offset,
// length) is called once each chunk of at most `chunk` bytes is hashed.
template <typename AfterChunk>
std::string sha256_of(const uint8_t* data, size_t size, size_t chunk, AfterChunk after_chunk) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: libcrypto's EVP_DigestInit_ex failed");
  for (size_t at = 0; at < size; at += chunk) {
    const size_t length = std::min(chunk, size - at);
    if (EVP_DigestUpdate(ctx.get(), data + at, length) != 1)
      throw std::runtime_error("sha256: libcrypto's EVP_DigestUpdate failed");
    after_chunk(at, length);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length != 32)
    throw std::runtime_error("sha256: libcrypto's EVP_DigestFinal_ex failed");
  static const char* kHex = "0123456789abcdef";
  std::string out(64, '0');
  for (int i = 0; i < 32; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

using nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw TraceError(path + ": " + what);
}

[[noreturn]] void fail(const std::string& path, const std::string& tensor,
                       const std::string& what) {
  throw TraceError(path + ": " + tensor + ": " + what);
}

// The dtypes a file may hold for the reader: not I32, which only the writer knows.
bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kNames[] = {
      {"I8", DType::I8}, {"U8", DType::U8}, {"F16", DType::F16},
      {"BF16", DType::BF16}, {"F32", DType::F32}};
  for (const auto& n : kNames) {
    if (s == n.first) {
      *out = n.second;
      return true;
    }
  }
  return false;
}

// Reads a non-negative JSON integer; false for floats, negatives and non-numbers.
bool json_to_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

// Element count with overflow detection (a hostile header must not wrap around).
bool checked_elements(const std::vector<int64_t>& shape, uint64_t* out) {
  uint64_t n = 1;
  for (int64_t dim : shape) {
    uint64_t u = static_cast<uint64_t>(dim);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return false;
    n *= u;
  }
  *out = n;
  return true;
}

TensorInfo parse_tensor_entry(const std::string& path, const std::string& name,
                              const json& entry, uint64_t data_size) {
  if (!entry.is_object()) fail(path, name, "header entry is not a JSON object");
  TensorInfo t;
  t.name = name;

  auto dt = entry.find("dtype");
  if (dt == entry.end() || !dt->is_string()) fail(path, name, "missing string field dtype");
  if (!parse_dtype(dt->get<std::string>(), &t.dtype))
    fail(path, name, "unsupported dtype " + dt->get<std::string>() +
                         " (supported: I8, U8, F16, BF16, F32)");

  auto sh = entry.find("shape");
  if (sh == entry.end() || !sh->is_array())
    fail(path, name, "missing field shape (a list of non-negative integers)");
  for (const json& dim : *sh) {
    uint64_t v = 0;
    if (!json_to_u64(dim, &v) || v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(path, name, "shape " + shown(*sh) + " is not a list of non-negative integers");
    t.shape.push_back(static_cast<int64_t>(v));
  }

  auto off = entry.find("data_offsets");
  if (off == entry.end() || !off->is_array() || off->size() != 2 ||
      !json_to_u64((*off)[0], &t.begin) || !json_to_u64((*off)[1], &t.end))
    fail(path, name, "data_offsets must be [begin, end] with non-negative integers");
  if (t.begin > t.end) fail(path, name, "data_offsets " + shown(*off) + " has begin > end");
  if (t.end > data_size)
    fail(path, name, "data_offsets " + shown(*off) + " reach past the end of the data section (" +
                         std::to_string(data_size) +
                         " bytes): file is shorter than its header says");

  uint64_t elements = 0;
  if (!checked_elements(t.shape, &elements) ||
      elements > std::numeric_limits<uint64_t>::max() / dtype_size(t.dtype))
    fail(path, name, "shape " + shown(*sh) + " is too large");
  const uint64_t expected = elements * dtype_size(t.dtype);
  if (t.end - t.begin != expected)
    fail(path, name, "data_offsets " + shown(*off) + " span " + std::to_string(t.end - t.begin) +
                         " bytes but shape " + shown(*sh) + " x " + dtype_name(t.dtype) +
                         " needs " + std::to_string(expected));
  return t;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& meta) {
  if (!meta.is_object()) fail(path, "__metadata__ is not a JSON object of strings");
  std::map<std::string, std::string> out;
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    if (!it->is_string())
      fail(path, "__metadata__." + it.key() + " is not a string (safetensors metadata maps strings to strings)");
    out[it.key()] = it->get<std::string>();
  }
  return out;
}

// The header as JSON: nesting bounded and keys unique (core/json_input.h), so that a
// hostile header fails here, naming the tensor, rather than later in a printer.
json parse_header(const std::string& path, std::string_view text) {
  try {
    return parse_json(text);
  } catch (const JsonInputError& e) {
    if (e.path().empty() && e.reason().rfind("not valid JSON", 0) == 0) fail(path, "header is not JSON");
    if (e.path().empty()) fail(path, "header: " + e.reason());
    fail(path, e.path(), e.reason());
  }
}

std::string offsets_text(const TensorInfo& t) {
  return "[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]";
}

// The safetensors format wants the tensors to tile the data section exactly: no two
// overlap (a write through one would change the other) and no byte belongs to none (a
// hole can smuggle a second file inside, the "polyglot" the format rules out). Checked in
// order of offsets, as Hugging Face's reader does.
void check_tiling(const std::string& path, const std::map<std::string, TensorInfo>& tensors, uint64_t data_size) {
  std::vector<const TensorInfo*> order;
  for (const auto& kv : tensors) order.push_back(&kv.second);
  std::stable_sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {  // ties: by name
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const TensorInfo* previous = nullptr;
  uint64_t covered = 0;  // bytes [0, covered) belong to the tensors so far
  for (const TensorInfo* t : order) {
    if (t->begin < covered)
      fail(path, t->name, "data_offsets " + offsets_text(*t) + " overlap those of " + previous->name + " (" +
                              offsets_text(*previous) + ")");
    if (t->begin > covered)
      fail(path, t->name, "data_offsets " + offsets_text(*t) + " leave bytes " + std::to_string(covered) + ".." +
                              std::to_string(t->begin) + " of the data section to no tensor");
    covered = t->end;
    previous = t;
  }
  if (covered < data_size)
    fail(path, "data section: bytes " + std::to_string(covered) + ".." + std::to_string(data_size) +
                   " belong to no tensor" +
                   (previous ? " (the last, " + previous->name + ", ends at " + std::to_string(covered) + ")" : ""));
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string index_text(const TensorInfo& t, uint64_t flat) {
  // "[h, i, t]" for the multi-dimensional position of element `flat`.
  std::vector<uint64_t> idx(t.shape.size());
  for (size_t k = t.shape.size(); k-- > 0;) {
    uint64_t dim = static_cast<uint64_t>(t.shape[k]);
    idx[k] = dim ? flat % dim : 0;
    flat = dim ? flat / dim : 0;
  }
  std::string s = "[";
  for (size_t k = 0; k < idx.size(); ++k) s += (k ? ", " : "") + std::to_string(idx[k]);
  return s + "]";
}

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE half -> float bits, exact. Normals are re-biased with one add; subnormals are
// normalised by the FPU (exact: the result has at most 11 significant bits); Inf/NaN
// get exponent 255. All three are computed and selected with masks so that the
// conversion loops have no branches and vectorize.
inline uint32_t half_to_float_bits(uint32_t h) {
  const uint32_t o = (h & 0x7fff) << 13;
  const uint32_t exp = o & 0x0f800000;
  const uint32_t normal = o + 0x38000000;                          // bias 15 -> 127
  const uint32_t inf_nan = o + 0x70000000;                         // exponent 31 -> 255
  const uint32_t subnormal =
      float_bits(bits_float(o + 0x38800000) - 6.103515625e-05f);  // (1 + m/1024 - 1) * 2^-14
  const uint32_t is_inf_nan = 0u - static_cast<uint32_t>(exp == 0x0f800000);
  const uint32_t is_subnormal = 0u - static_cast<uint32_t>(exp == 0);
  const uint32_t magnitude = (normal & ~(is_inf_nan | is_subnormal)) | (inf_nan & is_inf_nan) |
                             (subnormal & is_subnormal);
  return magnitude | ((h & 0x8000) << 16);
}

inline uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Converts `count` elements at `src` with `to_bits` (element pointer -> float bits);
// true when all are finite. The exponent test on bits keeps the loop branch-free.
template <size_t kSize, typename ToBits>
bool convert_float_bits(const uint8_t* src, uint64_t count, float* out, ToBits to_bits) {
  uint32_t non_finite = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t b = to_bits(src + i * kSize);
    non_finite |= static_cast<uint32_t>((b & 0x7f800000) == 0x7f800000);
    std::memcpy(out + i, &b, 4);
  }
  return non_finite == 0;
}

}  // namespace

const char* dtype_name(DType t) {
  switch (t) {
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F32: return "F32";
    case DType::I32: return "I32";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::I8:
    case DType::U8: return 1;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::F32:
    case DType::I32: return 4;
  }
  return 1;
}

uint64_t TensorInfo::elements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// ---------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer (it is refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw TraceError(path + ": cannot open: " + std::strerror(errno), ErrorClass::io);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw TraceError(path + ": not a regular file", ErrorClass::io);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(size_) +
                   " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (m == MAP_FAILED) throw TraceError(path + ": cannot mmap: " + std::strerror(map_errno), ErrorClass::io);
  map_ = static_cast<const uint8_t*>(m);

  try {
    const uint64_t header_len = read_le64(map_);
    if (header_len > size_ - 8)
      fail(path, "header length " + std::to_string(header_len) + " exceeds the file (" +
                     std::to_string(size_) + " bytes): file is shorter than its header says");
    data_start_ = 8 + header_len;
    const char* hb = reinterpret_cast<const char*>(map_ + 8);
    const json header = parse_header(path, std::string_view(hb, header_len));
    if (!header.is_object()) fail(path, "header is not a JSON object");

    const uint64_t data_size = size_ - data_start_;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        metadata_ = parse_metadata(path, *it);
      } else {
        tensors_[it.key()] = parse_tensor_entry(path, it.key(), *it, data_size);
      }
    }
    check_tiling(path, tensors_, data_size);
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, name, "no such tensor");
  return it->second;
}

const uint8_t* SafetensorsFile::raw(const TensorInfo& t) const {
  return map_ + data_start_ + t.begin;
}

std::vector<float> SafetensorsFile::read_float(const std::string& name) const {
  const TensorInfo& t = info(name);
  std::vector<float> out(t.elements());
  read_float_into(t, 0, out.size(), out.data());
  return out;
}

void SafetensorsFile::read_float_into(const TensorInfo& t, uint64_t first, uint64_t count,
                                      float* out) const {
  if (first > t.elements() || count > t.elements() - first)
    fail(path_, t.name, "element range [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") outside the tensor");
  const uint8_t* src = raw(t) + first * dtype_size(t.dtype);
  bool finite = true;
  switch (t.dtype) {
    case DType::I8:
      for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<int8_t>(src[i]);
      break;
    case DType::U8:
      for (uint64_t i = 0; i < count; ++i) out[i] = src[i];
      break;
    case DType::F16:
      finite = convert_float_bits<2>(src, count, out,
                                     [](const uint8_t* p) { return half_to_float_bits(load_u16(p)); });
      break;
    case DType::BF16:
      finite = convert_float_bits<2>(src, count, out,
                                     [](const uint8_t* p) { return uint32_t{load_u16(p)} << 16; });
      break;
    case DType::F32:
      // Data may be unaligned; memcpy is the portable load (the host is little-endian).
      finite = convert_float_bits<4>(src, count, out, [](const uint8_t* p) {
        uint32_t b;
        std::memcpy(&b, p, 4);
        return b;
      });
      break;
    case DType::I32:  // never in a file the reader accepted (parse_dtype)
      fail(path_, t.name, "unsupported dtype I32");
  }
  if (finite) return;
  // Slow path, only on failure: name the first bad element.
  for (uint64_t i = 0; i < count; ++i) {
    if (!std::isfinite(out[i]))
      fail(path_, t.name, std::string(std::isnan(out[i]) ? "NaN" : "Inf") + " at index " +
                              index_text(t, first + i));
  }
}

std::string SafetensorsFile::sha256() const {
  return sha256_of(map_, size_, size_t{16} << 20, [this](size_t at, size_t length) { release_pages(at, length); });
}

void SafetensorsFile::release_pages(const TensorInfo& t, uint64_t first, uint64_t count) const {
  const uint64_t size = dtype_size(t.dtype);
  release_pages(data_start_ + t.begin + first * size, count * size);
}

void SafetensorsFile::release_pages(uint64_t offset, uint64_t length) const {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t first = (offset + page - 1) / page * page;
  const uint64_t end = std::min<uint64_t>(offset + length, size_) / page * page;
  // Advice only: a failure leaves the pages mapped, which changes no result.
  if (end > first) (void)::madvise(const_cast<uint8_t*>(map_) + first, end - first, MADV_DONTNEED);
}

// ---------------------------------------------------------------------------
// SafetensorsWriter

void SafetensorsWriter::add(const std::string& name, DType dtype,
                            const std::vector<int64_t>& shape, std::vector<uint8_t> bytes) {
  if (name.empty() || name == "__metadata__")
    throw std::invalid_argument("safetensors: invalid tensor name '" + name + "'");
  uint64_t elements = 1;
  for (int64_t d : shape) {
    if (d < 0) throw std::invalid_argument(name + ": negative dimension in shape");
    elements *= static_cast<uint64_t>(d);
  }
  if (bytes.size() != elements * dtype_size(dtype))
    throw std::invalid_argument(name + ": " + std::to_string(bytes.size()) + " bytes for " +
                                std::to_string(elements) + " elements of " + dtype_name(dtype));
  entries_[name] = Entry{dtype, shape, std::move(bytes)};
}

void SafetensorsWriter::add_float(const std::string& name, DType dtype,
                                  const std::vector<int64_t>& shape,
                                  const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = values[i];
    switch (dtype) {
      case DType::I8:
      case DType::U8: {
        const float lo = dtype == DType::I8 ? -128.f : 0.f;
        const float hi = dtype == DType::I8 ? 127.f : 255.f;
        if (!(v >= lo && v <= hi) || std::nearbyint(v) != v)
          throw std::invalid_argument(name + ": value " + std::to_string(v) + " at index " +
                                      std::to_string(i) + " is not an integer in " +
                                      dtype_name(dtype) + " range");
        bytes[i] = static_cast<uint8_t>(static_cast<int>(v));
        break;
      }
      case DType::I32: {
        // -2^31 and 2^31 are exact floats; 2^31 - 1 is not, so the upper bound is strict.
        if (!(v >= -2147483648.f && v < 2147483648.f) || std::nearbyint(v) != v)
          throw std::invalid_argument(name + ": value " + std::to_string(v) + " at index " +
                                      std::to_string(i) + " is not an integer in I32 range");
        const int32_t x = static_cast<int32_t>(v);
        std::memcpy(&bytes[4 * i], &x, 4);  // little-endian host, as for F32
        break;
      }
      case DType::F16:
      case DType::BF16: {
        uint16_t h = dtype == DType::F16 ? float_to_half(v) : float_to_bf16(v);
        bytes[2 * i] = static_cast<uint8_t>(h & 0xff);
        bytes[2 * i + 1] = static_cast<uint8_t>(h >> 8);
        break;
      }
      case DType::F32:
        std::memcpy(&bytes[4 * i], &v, 4);
        break;
    }
  }
  add(name, dtype, shape, std::move(bytes));
}

void SafetensorsWriter::add_i32(const std::string& name, const std::vector<int64_t>& shape,
                                const std::vector<int32_t>& values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());  // little-endian host
  add(name, DType::I32, shape, std::move(bytes));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

void SafetensorsWriter::write(const std::string& path) const {
  // Header: tensors in name order (std::map), contiguous data in the same order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& kv : metadata_) meta[kv.first] = kv.second;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const auto& kv : entries_) {
    const Entry& e = kv.second;
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_name(e.dtype);
    entry["shape"] = e.shape;
    entry["data_offsets"] = {offset, offset + e.bytes.size()};
    header[kv.first] = entry;
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as Hugging Face does).
  text.append((8 - text.size() % 8) % 8, ' ');

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  const std::string tmp = temp_path_for(path);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw TraceError(path + ": cannot write: " + std::strerror(errno), ErrorClass::io);
  bool ok = std::fwrite(len, 1, 8, f) == 8 &&
            std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (auto it = entries_.begin(); ok && it != entries_.end(); ++it) {
    const auto& b = it->second.bytes;
    ok = b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size();
  }
  int err = ok ? 0 : errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    throw TraceError(path + ": cannot write: " + std::strerror(err), ErrorClass::io);
  }
  try {
    commit_file(tmp, path);
  } catch (const std::runtime_error& e) {
    throw TraceError(e.what(), ErrorClass::io);
  }
}

// ---------------------------------------------------------------------------
// SHA-256 of a byte range (sha256_of, at the top: one chunk, nothing after it)

std::string sha256_hex(const uint8_t* data, size_t size) {
  return sha256_of(data, size, std::max<size_t>(size, 1), [](size_t, size_t) {});
}

// ---------------------------------------------------------------------------
// Half and bfloat16 conversions

float half_to_float(uint16_t h) { return bits_float(half_to_float_bits(h)); }

uint16_t float_to_half(float f) {
  uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffff;
  if (x >= 0x7f800000) return sign | (x > 0x7f800000 ? 0x7e00 : 0x7c00);  // NaN / Inf
  if (x >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to Inf (tie goes to even)
  const uint32_t e = x >> 23;
  if (e >= 113) {
    // Normal half: keep 10 of 23 mantissa bits, round the 13 dropped bits to even.
    uint32_t h = ((e - 112) << 10) | ((x & 0x7fffff) >> 13);
    const uint32_t rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // carry may bump the exponent
    return sign | static_cast<uint16_t>(h);
  }
  // Subnormal half (or zero): value / 2^-24 = m * 2^(e-126), m the 24-bit significand.
  if (e < 102) return sign;  // below 2^-25: rounds to zero
  const uint32_t m = (x & 0x7fffff) | 0x800000;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  const uint32_t rounded = x + 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(rounded >> 16);
}

}  // namespace attnsim
