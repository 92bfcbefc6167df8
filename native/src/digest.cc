#include "digest.h"

#include <openssl/evp.h>

#include <cstring>
#include <string>

namespace minivisor {
namespace {

// The algorithm JavaScript names ('sha256' or 'sha384'), else nullptr. Fetched once: an
// EVP_sha384() handed to each init makes OpenSSL 3 look the implementation up again (a lock and a
// name lookup per init).
const EVP_MD* DigestNamed(const std::string& name) {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static EVP_MD* const sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  return name == "sha256" ? sha256 : name == "sha384" ? sha384 : nullptr;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
}

bool IsUint8ArrayArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

class NativeDigest : public Napi::ObjectWrap<NativeDigest> {
 public:
  static Napi::Function Define(Napi::Env env) {
    // copy() makes its new digest through the class, which it finds in the method's data: this
    // environment's reference to it, dropped when the environment is torn down.
    auto* self_class = new Napi::FunctionReference();
    Napi::Function cls = DefineClass(env, "NativeDigest", {
      InstanceMethod<&NativeDigest::Update>("update"),
      InstanceMethod<&NativeDigest::Copy>("copy", napi_default, self_class),
      InstanceMethod<&NativeDigest::Digest>("digest"),
    });
    *self_class = Napi::Persistent(cls);
    env.AddCleanupHook([self_class] { delete self_class; });
    return cls;
  }

  explicit NativeDigest(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeDigest>(info), ctx_(EVP_MD_CTX_new()) {
    Napi::Env env = info.Env();
    if (!ctx_) { Napi::Error::New(env, "out of memory for a digest").ThrowAsJavaScriptException(); return; }
    const std::string name = StringArg(info, 0);
    const EVP_MD* md = DigestNamed(name);
    if (!md) { Napi::TypeError::New(env, "digest algorithm must be 'sha256' or 'sha384'").ThrowAsJavaScriptException(); return; }
    if (EVP_DigestInit_ex(ctx_, md, nullptr) != 1) { Napi::Error::New(env, "EVP_DigestInit_ex failed").ThrowAsJavaScriptException(); return; }
    algorithm_ = name == "sha256" ? "sha256" : "sha384";
    live_ = true;
  }

  ~NativeDigest() override { EVP_MD_CTX_free(ctx_); }

 private:
  bool Live(const Napi::CallbackInfo& info) {
    if (live_) return true;
    Napi::Error::New(info.Env(), "the digest has ended").ThrowAsJavaScriptException();
    return false;
  }

  Napi::Value Update(const Napi::CallbackInfo& info) {
    if (!Live(info)) return info.Env().Undefined();
    if (!IsUint8ArrayArg(info, 0)) {
      Napi::TypeError::New(info.Env(), "update expects a Uint8Array").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    if (EVP_DigestUpdate(ctx_, data.Data(), data.ByteLength()) != 1) {
      Napi::Error::New(info.Env(), "EVP_DigestUpdate failed").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    return info.This();
  }

  // A second digest that goes on from the same position: a new one of the same algorithm, then
  // this one's state.
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(info)) return env.Undefined();
    Napi::Object copy = static_cast<Napi::FunctionReference*>(info.Data())->New({Napi::String::New(env, algorithm_)});
    if (env.IsExceptionPending()) return env.Undefined();
    if (EVP_MD_CTX_copy_ex(Unwrap(copy)->ctx_, ctx_) != 1) {
      Napi::Error::New(env, "EVP_MD_CTX_copy_ex failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return copy;
  }

  Napi::Value Digest(const Napi::CallbackInfo& info) {
    if (!Live(info)) return info.Env().Undefined();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    live_ = false;
    if (EVP_DigestFinal_ex(ctx_, out, &n) != 1) {
      Napi::Error::New(info.Env(), "EVP_DigestFinal_ex failed").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    return Napi::Buffer<unsigned char>::Copy(info.Env(), out, n);
  }

  EVP_MD_CTX* ctx_;
  const char* algorithm_ = nullptr;
  bool live_ = false;
};

}  // namespace

Napi::Function DefineNativeDigest(Napi::Env env) { return NativeDigest::Define(env); }

Napi::Value ChainDigest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const EVP_MD* md = DigestNamed(StringArg(info, 0));
  if (!md || !IsUint8ArrayArg(info, 1) || !IsUint8ArrayArg(info, 2) || info.Length() < 4 || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "chainDigest(algorithm 'sha256' | 'sha384', initial: Uint8Array, records: Uint8Array, recordBytes: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t digest_bytes = EVP_MD_get_size(md);
  Napi::Uint8Array initial = info[1].As<Napi::Uint8Array>(), records = info[2].As<Napi::Uint8Array>();
  const double record_arg = info[3].As<Napi::Number>().DoubleValue();
  constexpr size_t kMaxRecordBytes = 4096;
  const size_t record_bytes = record_arg >= 0 && record_arg <= kMaxRecordBytes ? static_cast<size_t>(record_arg) : 0;
  if (initial.ByteLength() != digest_bytes || record_bytes < digest_bytes || record_bytes != record_arg || records.ByteLength() % record_bytes != 0) {
    Napi::RangeError::New(env, "chainDigest: the initial digest must be the algorithm's size, and the records whole records of at least that size (at most 4096 bytes)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) { Napi::Error::New(env, "out of memory for a digest").ThrowAsJavaScriptException(); return env.Undefined(); }
  unsigned char digest[EVP_MAX_MD_SIZE];
  std::memcpy(digest, initial.Data(), digest_bytes);
  const uint8_t* record = records.Data();
  bool ok = true;
  for (size_t at = 0; ok && at < records.ByteLength(); at += record_bytes) {
    unsigned int n = 0;
    ok = EVP_DigestInit_ex2(ctx, md, nullptr) == 1 && EVP_DigestUpdate(ctx, digest, digest_bytes) == 1 &&
         EVP_DigestUpdate(ctx, record + at + digest_bytes, record_bytes - digest_bytes) == 1 && EVP_DigestFinal_ex(ctx, digest, &n) == 1;
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) { Napi::Error::New(env, "chainDigest: OpenSSL failed").ThrowAsJavaScriptException(); return env.Undefined(); }
  return Napi::Buffer<unsigned char>::Copy(env, digest, digest_bytes);
}

}  // namespace minivisor
