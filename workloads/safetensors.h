#pragma once
// Safetensors files (Hugging Face format): 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, raw
// little-endian tensor bytes. The reader mmaps the file and checks every offset against
// the file size, so it never reads past the end.
#include "core/errors.h"

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace attnsim {

// Any problem with a trace file; the message names the file and, where one is at fault,
// the tensor: "t.safetensors: layers.0.k: expected rank 3, got 2".
// Class trace, or io for a file that cannot be opened, mapped or written (core/errors.h).
class TraceError : public Error {
 public:
  explicit TraceError(const std::string& message, ErrorClass c = ErrorClass::trace) : Error(c, message) {}
};

// I32 is written only (token ids of `attnsim run --masks`): the reader accepts I8, U8,
// F16, BF16 and F32, so a trace holding an I32 tensor is rejected as it always was.
enum class DType { I8, U8, F16, BF16, F32, I32 };
const char* dtype_name(DType t);   // "I8", "U8", "F16", "BF16", "F32", "I32"
size_t dtype_size(DType t);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  uint64_t elements() const;
};

class SafetensorsFile {
 public:
  // Maps `path` and validates the header (length, JSON, dtypes, shapes, offsets within
  // the file, sizes matching shape x dtype). Throws TraceError; any dtype other than I8,
  // U8, F16, BF16 and F32 is "unsupported".
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws TraceError if absent

  // The tensor's values converted to float (I8/U8 as their integer values). Throws
  // TraceError naming the tensor when a float value is NaN or Inf.
  std::vector<float> read_float(const std::string& name) const;
  // Elements [first, first + count) of `t` converted into `out` (same checks as
  // read_float); lets a caller fill its own buffers, e.g. one head at a time.
  void read_float_into(const TensorInfo& t, uint64_t first, uint64_t count, float* out) const;
  // Raw bytes of a tensor (valid while this object lives).
  const uint8_t* raw(const TensorInfo& t) const;

  // SHA-256 of the whole file, lowercase hex. Hashed a chunk at a time, each chunk's
  // pages released after it (release_pages), so hashing does not map the whole file in.
  std::string sha256() const;

  // Gives the pages of elements [first, first + count) of a tensor (or of the file's bytes
  // [offset, offset + length)) back
  // to the kernel: the mapping is private and never written, so a later read maps them
  // in again from the page cache, with the same bytes. Only whole pages inside the range
  // go. A run reads each layer's tensors once, so its resident set holds about one
  // layer of the trace rather than all of it.
  void release_pages(const TensorInfo& t, uint64_t first, uint64_t count) const;
  void release_pages(uint64_t offset, uint64_t length) const;

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Builds a safetensors file in memory and writes it atomically (temporary file, then
// rename), so a failed write leaves no partial file.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
           std::vector<uint8_t> bytes);
  // Converts float values to `dtype` (F32, F16, BF16 with round-to-nearest-even; I8, U8
  // and I32 require integral values in range).
  void add_float(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                 const std::vector<float>& values);
  // I32 values as they are (token ids; add_float would round those above 2^24).
  void add_i32(const std::string& name, const std::vector<int64_t>& shape, const std::vector<int32_t>& values);
  void set_metadata(const std::string& key, const std::string& value);
  void write(const std::string& path) const;  // throws TraceError

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// SHA-256 of a byte range, lowercase hex (FIPS 180-4).
std::string sha256_hex(const uint8_t* data, size_t size);

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);     // round to nearest even
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);     // round to nearest even

}  // namespace attnsim
