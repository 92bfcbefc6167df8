#include "digest.h"

#include <openssl/evp.h>

#include <string>

namespace minivisor {
namespace {

// Marks the objects this class made: napi_unwrap would hand out another class's native pointer.
constexpr napi_type_tag kDigestTag = {0x6d696e6976697330ull, 0x6469676573740001ull};

class NativeDigest : public Napi::ObjectWrap<NativeDigest> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeDigest", {
      InstanceMethod<&NativeDigest::Update>("update"),
      InstanceMethod<&NativeDigest::Digest>("digest"),
    });
  }

  explicit NativeDigest(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeDigest>(info), ctx_(EVP_MD_CTX_new()) {
    Napi::Env env = info.Env();
    if (!ctx_) { Napi::Error::New(env, "out of memory for a digest").ThrowAsJavaScriptException(); return; }
    info.This().As<Napi::Object>().TypeTag(&kDigestTag);
    if (info.Length() >= 1 && info[0].IsString()) {
      std::string name = info[0].As<Napi::String>().Utf8Value();
      const EVP_MD* md = name == "sha256" ? EVP_sha256() : name == "sha384" ? EVP_sha384() : nullptr;
      if (!md) { Napi::TypeError::New(env, "digest algorithm must be 'sha256' or 'sha384'").ThrowAsJavaScriptException(); return; }
      if (EVP_DigestInit_ex(ctx_, md, nullptr) != 1) { Napi::Error::New(env, "EVP_DigestInit_ex failed").ThrowAsJavaScriptException(); return; }
      live_ = true;
      return;
    }
    NativeDigest* from = nullptr;
    if (info.Length() >= 1 && info[0].IsObject() && info[0].As<Napi::Object>().CheckTypeTag(&kDigestTag)) {
      from = Unwrap(info[0].As<Napi::Object>());
    }
    if (!from) { Napi::TypeError::New(env, "expected an algorithm name or a NativeDigest to copy").ThrowAsJavaScriptException(); return; }
    if (!from->live_) { Napi::Error::New(env, "cannot copy a digest that has ended").ThrowAsJavaScriptException(); return; }
    if (EVP_MD_CTX_copy_ex(ctx_, from->ctx_) != 1) { Napi::Error::New(env, "EVP_MD_CTX_copy_ex failed").ThrowAsJavaScriptException(); return; }
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
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
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
  bool live_ = false;
};

}  // namespace

Napi::Function DefineNativeDigest(Napi::Env env) { return NativeDigest::Define(env); }

}  // namespace minivisor
