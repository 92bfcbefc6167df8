#include "trace_encoding.h"

#include <cmath>
#include <cstring>
#include <string>

// The trace hash's binary encoding of one event (src/shared/trace.ts, EventHasher), written by the
// addon: a default boot records ~330 events, too few for V8 to make the TypeScript encoder fast.
// Run in its interpreter, with the background compiles its calls set off, it cost ~35M
// instructions (~5 ms of CPU) a boot; here an event is a few dozen N-API calls (issue 11).
// The bytes are those of EventHasher.event: the tests compare the two (test/unit/trace-native-encoding.test.ts).

namespace minivisor {
namespace {

// src/shared/trace.ts, Tag.
enum Tag : uint8_t { kNull, kFalse, kTrue, kNumber, kString, kU64, kBigHex, kArray, kObject, kKey, kEnd = 0xff };

// Results besides the new position (TraceEncoding in src/shared/trace.ts).
constexpr double kNoRoom = -1;
constexpr double kShadowsHeader = -2;
constexpr double kNotEncoded = -3;
// Deeper values (or cycles) are left to the TypeScript encoder, which recurses as it always did.
constexpr int kMaxDepth = 64;

enum class Status { kOk, kNoRoom, kShadowsHeader, kNotEncoded, kException };

class Writer {
 public:
  Writer(napi_env env, uint8_t* data, size_t cap, size_t pos) : env_(env), data_(data), cap_(cap), pos_(pos) {}

  size_t pos() const { return pos_; }

  Status Byte(uint8_t b) {
    if (pos_ + 1 > cap_) return Status::kNoRoom;
    data_[pos_++] = b;
    return Status::kOk;
  }

  Status Number(double v) {
    if (!std::isfinite(v)) return Byte(kNull);  // JSON writes null
    if (v == 0) v = 0;  // -0 as 0, as JSON writes it
    return Word(kNumber, &v);
  }

  Status U64(uint64_t v) { return Word(kU64, &v); }

  // Tag, u32 length, then `n` bytes.
  Status Text(uint8_t tag, const char* s, size_t n) {
    if (pos_ + 5 + n > cap_) return Status::kNoRoom;
    data_[pos_] = tag;
    uint32_t len = static_cast<uint32_t>(n);
    std::memcpy(data_ + pos_ + 1, &len, 4);
    std::memcpy(data_ + pos_ + 5, s, n);
    pos_ += 5 + n;
    return Status::kOk;
  }

  // A JS string as tag, u32 length, UTF-8 (lone surrogates as U+FFFD, as Buffer's writer does).
  // `bytes` (if not null) receives where its UTF-8 went and its length.
  Status String(uint8_t tag, napi_value s, const uint8_t** bytes = nullptr, size_t* length = nullptr) {
    if (pos_ + 5 >= cap_) return Status::kNoRoom;
    size_t room = cap_ - pos_ - 5;
    size_t written = 0;
    // napi writes at most room - 1 bytes and a NUL, and never part of a character (at most four
    // bytes): with fewer than four of those bytes left, the string may have been cut.
    if (napi_get_value_string_utf8(env_, s, reinterpret_cast<char*>(data_ + pos_ + 5), room, &written) != napi_ok) return Status::kException;
    if (written + 5 > room) return Status::kNoRoom;
    data_[pos_] = tag;
    uint32_t len = static_cast<uint32_t>(written);
    std::memcpy(data_ + pos_ + 1, &len, 4);
    if (bytes) *bytes = data_ + pos_ + 5;
    if (length) *length = written;
    pos_ += 5 + written;
    return Status::kOk;
  }

  // Drops the last `n` bytes written.
  void Unwrite(size_t n) { pos_ -= n; }

 private:
  // Tag, then the 8 bytes at `v` as they lie in memory: little-endian hosts only (binding.gyp
  // builds for x86-64 and arm64).
  Status Word(uint8_t tag, const void* v) {
    if (pos_ + 9 > cap_) return Status::kNoRoom;
    data_[pos_] = tag;
    std::memcpy(data_ + pos_ + 1, v, 8);
    pos_ += 9;
    return Status::kOk;
  }

  napi_env env_;
  uint8_t* data_;
  size_t cap_;
  size_t pos_;
};

#define TRY(expr)                              \
  do {                                         \
    Status status_ = (expr);                   \
    if (status_ != Status::kOk) return status_; \
  } while (0)

bool IsHexDigit(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
uint64_t HexValue(uint8_t c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// A "0x…" string hashes as the bigint it names (EventHasher.value): a non-negative one, so U64
// below 2^64 and otherwise its hex digits without leading zeros (BigHex), as BigInt(v).toString(16).
Status HexAsBigint(Writer& w, const uint8_t* digits, size_t n) {
  while (n > 1 && digits[0] == '0') { digits++; n--; }
  if (n <= 16) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 4) | HexValue(digits[i]);
    return w.U64(v);
  }
  std::string copy(reinterpret_cast<const char*>(digits), n);  // digits lie in the bytes being replaced
  return w.Text(kBigHex, copy.data(), copy.size());
}

Status BigintValue(napi_env env, Writer& w, napi_value v) {
  // One word asked for: `count` comes back as the number the bigint has (0 for 0n).
  int sign = 0;
  size_t count = 1;
  uint64_t word = 0;
  if (napi_get_value_bigint_words(env, v, &sign, &count, &word) != napi_ok) return Status::kException;
  if (count <= 1 && sign == 0) return w.U64(word);
  if (count == 0) count = 1;  // -0n does not exist, but a sign with no words would print as 0
  std::string words(count * 8, '\0');
  if (napi_get_value_bigint_words(env, v, &sign, &count, reinterpret_cast<uint64_t*>(words.data())) != napi_ok) return Status::kException;
  // v.toString(16): the magnitude's hex digits, most significant first, no leading zeros.
  std::string hex;
  static const char kDigits[] = "0123456789abcdef";
  const uint64_t* w64 = reinterpret_cast<const uint64_t*>(words.data());
  for (size_t i = count; i-- > 0;) {
    for (int shift = 60; shift >= 0; shift -= 4) {
      int d = static_cast<int>((w64[i] >> shift) & 0xf);
      if (hex.empty() && d == 0) continue;
      hex.push_back(kDigits[d]);
    }
  }
  if (hex.empty()) hex = "0";
  if (sign == 0) return w.Text(kBigHex, hex.data(), hex.size());
  std::string text = "0x-" + hex;  // what the JSON file holds for a negative bigint
  return w.Text(kString, text.data(), text.size());
}

Status Fields(napi_env env, Writer& w, napi_value obj, int depth, bool top, bool envelope);

Status Value(napi_env env, Writer& w, napi_value v, int depth) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return Status::kException;
  switch (type) {
    case napi_bigint: return BigintValue(env, w, v);
    case napi_number: {
      double d = 0;
      if (napi_get_value_double(env, v, &d) != napi_ok) return Status::kException;
      return w.Number(d);
    }
    case napi_string: {
      size_t start = w.pos();
      const uint8_t* bytes = nullptr;
      size_t n = 0;
      TRY(w.String(kString, v, &bytes, &n));
      if (n > 2 && bytes[0] == '0' && bytes[1] == 'x') {
        bool hex = true;
        for (size_t i = 2; i < n && hex; i++) hex = IsHexDigit(bytes[i]);
        if (hex) {
          w.Unwrite(w.pos() - start);
          return HexAsBigint(w, bytes + 2, n - 2);
        }
      }
      return Status::kOk;
    }
    case napi_boolean: {
      bool b = false;
      if (napi_get_value_bool(env, v, &b) != napi_ok) return Status::kException;
      return w.Byte(b ? kTrue : kFalse);
    }
    case napi_object: {
      if (depth >= kMaxDepth) return Status::kNotEncoded;
      bool array = false;
      if (napi_is_array(env, v, &array) != napi_ok) return Status::kException;
      if (!array) {
        TRY(w.Byte(kObject));
        TRY(Fields(env, w, v, depth + 1, false, false));
        return w.Byte(kEnd);
      }
      uint32_t length = 0;
      if (napi_get_array_length(env, v, &length) != napi_ok) return Status::kException;
      TRY(w.Byte(kArray));
      for (uint32_t i = 0; i < length; i++) {
        napi_value item;
        if (napi_get_element(env, v, i, &item) != napi_ok) return Status::kException;
        TRY(Value(env, w, item, depth + 1));  // a hole is undefined: null, as JSON writes it
      }
      return w.Byte(kEnd);
    }
    default:
      return w.Byte(kNull);  // null, and undefined or anything JSON cannot hold in an array
  }
}

bool IsHeaderKey(const uint8_t* key, size_t n, bool envelope) {
  auto is = [&](const char* name) { return n == std::strlen(name) && std::memcmp(key, name, n) == 0; };
  return is("seq") || is("source") || is("type") || (envelope && (is("icount") || is("stage")));
}

// The keys a for-in loop visits, in its order, each with its value; a key whose value is
// undefined is left out, as JSON leaves it out.
Status Fields(napi_env env, Writer& w, napi_value obj, int depth, bool top, bool envelope) {
  napi_value keys;
  if (napi_get_property_names(env, obj, &keys) != napi_ok) return Status::kException;
  uint32_t count = 0;
  if (napi_get_array_length(env, keys, &count) != napi_ok) return Status::kException;
  for (uint32_t i = 0; i < count; i++) {
    napi_value key, value;
    if (napi_get_element(env, keys, i, &key) != napi_ok) return Status::kException;
    size_t start = w.pos();
    const uint8_t* bytes = nullptr;
    size_t n = 0;
    TRY(w.String(kKey, key, &bytes, &n));
    if (top && IsHeaderKey(bytes, n, envelope)) return Status::kShadowsHeader;
    if (napi_get_property(env, obj, key, &value) != napi_ok) return Status::kException;
    napi_valuetype type;
    if (napi_typeof(env, value, &type) != napi_ok) return Status::kException;
    if (type == napi_undefined) {
      w.Unwrite(w.pos() - start);
      continue;
    }
    TRY(Value(env, w, value, depth));
  }
  return Status::kOk;
}

// encodeTraceEvent(buf, pos, seq, source, type, fields, icount, stage): writes the event's
// encoding into `buf` from `pos` and returns where it ends; kNoRoom if it does not fit there,
// kShadowsHeader if a field has the name of a header key (the caller hashes the event object
// instead), kNotEncoded for what it leaves to the TypeScript encoder.
napi_value EncodeTraceEvent(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_value result = nullptr;
  auto answer = [&](double v) {
    napi_create_double(env, v, &result);
    return result;
  };
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 8) return answer(kNotEncoded);
  napi_typedarray_type array_type;
  size_t length = 0;
  void* data = nullptr;
  double pos = 0, seq = 0;
  if (napi_get_typedarray_info(env, argv[0], &array_type, &length, &data, nullptr, nullptr) != napi_ok || array_type != napi_uint8_array ||
      napi_get_value_double(env, argv[1], &pos) != napi_ok || napi_get_value_double(env, argv[2], &seq) != napi_ok ||
      !(pos >= 0 && pos <= static_cast<double>(length))) {
    return answer(kNotEncoded);
  }
  napi_valuetype icount_type;
  if (napi_typeof(env, argv[6], &icount_type) != napi_ok) return answer(kNotEncoded);
  bool envelope = icount_type != napi_undefined;
  Writer w(env, static_cast<uint8_t*>(data), length, static_cast<size_t>(pos));
  auto encode = [&]() -> Status {
    TRY(w.Byte(kObject));
    TRY(w.Text(kKey, "seq", 3));
    TRY(w.Number(seq));
    TRY(w.Text(kKey, "source", 6));
    TRY(w.String(kString, argv[3]));
    TRY(w.Text(kKey, "type", 4));
    TRY(Value(env, w, argv[4], 0));
    if (envelope) {
      TRY(w.Text(kKey, "icount", 6));
      TRY(Value(env, w, argv[6], 0));
      TRY(w.Text(kKey, "stage", 5));
      TRY(Value(env, w, argv[7], 0));
    }
    TRY(Fields(env, w, argv[5], 0, true, envelope));
    return w.Byte(kEnd);
  };
  switch (encode()) {
    case Status::kOk: return answer(static_cast<double>(w.pos()));
    case Status::kNoRoom: return answer(kNoRoom);
    case Status::kShadowsHeader: return answer(kShadowsHeader);
    case Status::kNotEncoded: return answer(kNotEncoded);
    case Status::kException: break;
  }
  // A getter that threw: the call throws that. A value N-API would not read: the TypeScript encoder's.
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  return pending ? nullptr : answer(kNotEncoded);
}

}  // namespace

Napi::Function DefineEncodeTraceEvent(Napi::Env env) {
  napi_value fn;
  napi_create_function(env, "encodeTraceEvent", NAPI_AUTO_LENGTH, EncodeTraceEvent, nullptr, &fn);
  return Napi::Function(env, fn);
}

}  // namespace minivisor
