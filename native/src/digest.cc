#include "digest.h"

#include <openssl/evp.h>

#include <string>

namespace minivisor {
namespace {

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
    std::string name = info.Length() >= 1 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    const EVP_MD* md = name == "sha256" ? EVP_sha256() : name == "sha384" ? EVP_sha384() : nullptr;
    if (!md) { Napi::TypeError::New(env, "digest algorithm must be 'sha256' or 'sha384'").ThrowAsJavaScriptException(); return; }
    if (EVP_DigestInit_ex(ctx_, md, nullptr) != 1) { Napi::Error::New(env, "EVP_DigestInit_ex failed").ThrowAsJavaScriptException(); return; }
    algorithm_ = md == EVP_sha256() ? "sha256" : "sha384";
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

}  // namespace minivisor
