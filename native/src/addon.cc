// The JavaScript face of Machine: argument checks, typed errors, no policy. Policy and friendly
// argument handling live in src/cpu/ (TypeScript); this layer only refuses what would be unsafe.
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "digest.h"
#include "machine.h"
#include "mapped_file.h"
#include "stop_signal_cleanup.h"
#include "trace_encoding.h"

namespace minivisor {
namespace {

constexpr uint64_t kMaxMemoryBytes = 1ull << 46;  // 64 TiB of guest-physical address space
constexpr uint64_t kMaxWindowBytes = 1ull << 30;
constexpr uint64_t kRamViewBytes = 1ull << 16;

class NativeMachine;

// The live NativeMachines of one env, by slot: what the data of a hot method names (HotMethod).
// Shared with each machine, so that whichever of the env's data and a machine is finalized last
// still finds it.
struct HotSlots {
  struct Slot {
    NativeMachine* machine = nullptr;
    uint32_t generation = 0;  // bumped when the slot is let go: an older method of it finds no machine
  };
  std::vector<Slot> slots;
  std::vector<uint32_t> free;
};

struct AddonData {
  Napi::FunctionReference unicorn_error;
  std::shared_ptr<HotSlots> hot = std::make_shared<HotSlots>();
};

Napi::Value ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowUnicorn(Napi::Env env, uc_err code, const std::string& msg) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data && !data->unicorn_error.IsEmpty()) {
    Napi::Object err = data->unicorn_error.New({Napi::String::New(env, msg), Napi::Number::New(env, code)});
    if (!env.IsExceptionPending()) Napi::Error(env, err).ThrowAsJavaScriptException();
  } else {
    Napi::Error e = Napi::Error::New(env, msg);
    e.Set("ucCode", Napi::Number::New(env, code));
    e.ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// A caller that broke Vcpu.tryInjectRepeating's contract (after a held run, the next call is
// run()): minivisor's own bug, reported as one rather than run on a state it has not seen.
Napi::Value ThrowHeldRun(Napi::Env env, const char* what) {
  Napi::Error::New(env, std::string(what) + " while a fault storm's last run is held: the next call must be run()")
      .ThrowAsJavaScriptException();
  return env.Undefined();
}

// GetU64 and GetU32 let the N-API getter check the type (it answers bigint_expected or
// number_expected): asking napi_typeof first was a second call per argument, on every exit.
bool GetU64(const Napi::CallbackInfo& info, size_t i, const char* name, uint64_t* out) {
  bool lossless = false;
  if (info.Length() <= i || napi_get_value_bigint_uint64(info.Env(), info[i], out, &lossless) != napi_ok) {
    ThrowType(info.Env(), std::string(name) + " must be a bigint");
    return false;
  }
  if (!lossless) {
    ThrowRange(info.Env(), std::string(name) + " must be an unsigned 64-bit integer");
    return false;
  }
  return true;
}

bool GetU32(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t max, uint32_t* out) {
  double d = 0;
  if (info.Length() <= i || napi_get_value_double(info.Env(), info[i], &d) != napi_ok) {
    ThrowType(info.Env(), std::string(name) + " must be a number");
    return false;
  }
  if (!(d >= 0 && d <= max) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    ThrowRange(info.Env(), std::string(name) + " must be an integer from 0 to " + std::to_string(max));
    return false;
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

bool ReadMarker(Napi::Env env, Napi::Value v, MarkerConfig* m) {
  if (!v.IsObject()) { ThrowType(env, "marker must be an object"); return false; }
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value bit = o.Get("bit"), max_phys = o.Get("maxPhysBits");
  if (!bit.IsNumber() || !max_phys.IsNumber()) { ThrowType(env, "marker.bit and marker.maxPhysBits must be numbers"); return false; }
  int b = bit.As<Napi::Number>().Int32Value();
  int p = max_phys.As<Napi::Number>().Int32Value();
  if (b < -1 || b > 51 || (b >= 0 && b < 12)) { ThrowRange(env, "marker.bit must be -1 or 12..51"); return false; }
  if (p < 32 || p > 52) { ThrowRange(env, "marker.maxPhysBits must be 32..52"); return false; }
  m->bit = b;
  m->max_phys_bits = p;
  m->set_means_private = o.Get("setMeansPrivate").ToBoolean();
  m->private_when_paging_off = o.Get("privateWhenPagingOff").ToBoolean();
  m->fetch_always_private = o.Get("fetchAlwaysPrivate").ToBoolean();
  return true;
}

class NativeMachine : public Napi::ObjectWrap<NativeMachine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeMachine", {
      InstanceMethod<&NativeMachine::Run>("run"),
      InstanceMethod<&NativeMachine::Close>("close"),
      InstanceMethod<&NativeMachine::SetGate>("setGate"),
      InstanceMethod<&NativeMachine::GetGate>("getGate"),
      InstanceMethod<&NativeMachine::GetGateFetch>("getGateFetch"),
      InstanceMethod<&NativeMachine::WriteShadow>("writeShadow"),
      InstanceMethod<&NativeMachine::CountGate>("countGate"),
      InstanceMethod<&NativeMachine::ReadSpecial>("readSpecial"),
      InstanceMethod<&NativeMachine::WriteSpecial>("writeSpecial"),
      InstanceMethod<&NativeMachine::ReadMsr>("readMsr"),
      InstanceMethod<&NativeMachine::WriteMsr>("writeMsr"),
      InstanceMethod<&NativeMachine::ReadInto>("readInto"),
      InstanceMethod<&NativeMachine::Write>("write"),
      InstanceMethod<&NativeMachine::Fill>("fill"),
      InstanceMethod<&NativeMachine::Window>("window"),
      InstanceMethod<&NativeMachine::RamView>("ramView"),
      InstanceMethod<&NativeMachine::NoteHostWrite>("noteHostWrite"),
      InstanceMethod<&NativeMachine::Translate>("translate"),
      InstanceMethod<&NativeMachine::Inject>("inject"),
      InstanceMethod<&NativeMachine::InjectRepeating>("injectRepeating"),
      InstanceMethod<&NativeMachine::SetEntryState>("setEntryState"),
      InstanceMethod<&NativeMachine::EnterInnerPrivilege>("enterInnerPrivilege"),
      InstanceMethod<&NativeMachine::WriteXcr0>("writeXcr0"),
      InstanceMethod<&NativeMachine::CodeSegmentInfo>("codeSegment"),
      InstanceMethod<&NativeMachine::Snapshot>("snapshot"),
      InstanceMethod<&NativeMachine::Restore>("restore"),
      InstanceMethod<&NativeMachine::ForgetSnapshot>("forgetSnapshot"),
      InstanceMethod<&NativeMachine::SaveCpuState>("saveCpuState"),
      InstanceMethod<&NativeMachine::LoadCpuState>("loadCpuState"),
      InstanceMethod<&NativeMachine::SetPauseExits>("setPauseExits"),
      InstanceMethod<&NativeMachine::SetXsetbvAllowed>("setXsetbvAllowed"),
      InstanceMethod<&NativeMachine::SetDebugRegisterIntercepts>("setDebugRegisterIntercepts"),
      InstanceMethod<&NativeMachine::SetMarker>("setMarker"),
      InstanceMethod<&NativeMachine::DirtyPages>("dirtyPages"),
      InstanceMethod<&NativeMachine::MemoryCounters>("memoryCounters"),
      InstanceMethod<&NativeMachine::SetEdgeMap>("setEdgeMap"),
      InstanceMethod<&NativeMachine::ResetEdges>("resetEdges"),
      InstanceMethod<&NativeMachine::WatchExecution>("watchExecution"),
      InstanceMethod<&NativeMachine::WatchContent>("watchContent"),
      InstanceMethod<&NativeMachine::CountWatchedContent>("countWatchedContent"),
      InstanceMethod<&NativeMachine::TakeForeignReads>("takeForeignReads"),
    });
  }

  // new NativeMachine(memoryBytes: bigint, countInstructions: boolean, runArea: BigUint64Array, marker)
  explicit NativeMachine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeMachine>(info) {
    Napi::Env env = info.Env();
    MachineConfig config;
    if (!GetU64(info, 0, "memoryBytes", &config.memory_bytes)) return;
    if (config.memory_bytes == 0 || config.memory_bytes % kPageSize || config.memory_bytes > kMaxMemoryBytes) {
      ThrowRange(env, "memoryBytes must be a non-zero multiple of 4096 and at most 64 TiB");
      return;
    }
    if (info.Length() < 4 || !info[1].IsBoolean()) { ThrowType(env, "countInstructions must be a boolean"); return; }
    config.count_instructions = info[1].As<Napi::Boolean>().Value();
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
        info[2].As<Napi::TypedArray>().ElementLength() < static_cast<size_t>(kRunAreaSlots)) {
      ThrowType(env, "runArea must be a BigUint64Array of at least 32 elements");
      return;
    }
    if (!ReadMarker(env, info[3], &config.marker)) return;
    if (info.Length() > 4 && info[4].IsObject()) {
      Napi::Object options = info[4].As<Napi::Object>();
      config.page_gate = options.Get("pageGate").ToBoolean();
      Napi::Value paging = options.Get("ramPaging");
      if (paging.IsString()) {
        std::string p = paging.As<Napi::String>().Utf8Value();
        if (p == "on-touch") config.ram_paging = MachineConfig::RamPaging::kOnTouch;
        else if (p == "fault-around") config.ram_paging = MachineConfig::RamPaging::kFaultAround;
        else if (p == "huge-pages") config.ram_paging = MachineConfig::RamPaging::kHugePages;
        else { ThrowRange(env, "ramPaging must be on-touch, fault-around or huge-pages"); return; }
      }
      Napi::Value timeout = options.Get("timeoutMs");
      if (timeout.IsNumber()) {
        double ms = timeout.As<Napi::Number>().DoubleValue();
        if (!(ms >= 0 && ms <= 86400e3)) { ThrowRange(env, "timeoutMs must be 0..86400000"); return; }
        config.timeout_us = static_cast<uint64_t>(ms * 1000);
      }
    }
    Napi::TypedArrayOf<uint64_t> area = info[2].As<Napi::TypedArrayOf<uint64_t>>();
    area_ref_ = Napi::Persistent(area.As<Napi::Object>());
    std::string error;
    uc_err uc_error;
    machine_ = Machine::Create(config, area.Data(), &error, &uc_error);
    if (!machine_) {
      if (uc_error != UC_ERR_OK) ThrowUnicorn(env, uc_error, error);
      else Napi::Error::New(env, error).ThrowAsJavaScriptException();
      return;
    }
    DefineHotMethods(info.This().As<Napi::Object>());
  }

  ~NativeMachine() override {
    if (!hot_) return;
    HotSlots::Slot& slot = hot_->slots[hot_index_];
    slot.machine = nullptr;
    slot.generation++;
    hot_->free.push_back(hot_index_);
  }

 private:
  // The methods called on every VM exit or several times per exit, as own properties of the
  // instance that shadow the prototype's: each a function whose data names this machine's slot,
  // so a call finds the machine without ObjectWrap::Unwrap, whose napi_unwrap (a private-symbol
  // property lookup) was ~800 instructions a call, 6-9% of a PVALIDATE or TDG.MEM.PAGE.ACCEPT
  // exit (issue 11). Same checks and results as the prototype's methods; the receiver is not
  // looked at (the data says which machine), and a method kept past its machine's collection
  // finds its slot let go and throws.
  void DefineHotMethods(Napi::Object self) {
    Napi::Env env = self.Env();
    hot_ = env.GetInstanceData<AddonData>()->hot;
    if (hot_->free.empty()) {
      hot_index_ = static_cast<uint32_t>(hot_->slots.size());
      hot_->slots.emplace_back();
    } else {
      hot_index_ = hot_->free.back();
      hot_->free.pop_back();
    }
    HotSlots::Slot& slot = hot_->slots[hot_index_];
    slot.machine = this;
    void* data = reinterpret_cast<void*>((static_cast<uintptr_t>(slot.generation) << 32) | hot_index_);
    const std::pair<const char*, napi_callback> methods[] = {
        {"run", HotMethod<&NativeMachine::Run>},
        {"setGate", HotMethod<&NativeMachine::SetGate>},
        {"getGate", HotMethod<&NativeMachine::GetGate>},
        {"writeShadow", HotMethod<&NativeMachine::WriteShadow>},
        {"readSpecial", HotMethod<&NativeMachine::ReadSpecial>},
        {"readInto", HotMethod<&NativeMachine::ReadInto>},
        {"write", HotMethod<&NativeMachine::Write>},
        {"fill", HotMethod<&NativeMachine::Fill>},
        {"noteHostWrite", HotMethod<&NativeMachine::NoteHostWrite>},
        {"translate", HotMethod<&NativeMachine::Translate>},
        {"inject", HotMethod<&NativeMachine::Inject>},
        {"injectRepeating", HotMethod<&NativeMachine::InjectRepeating>},
        {"codeSegment", HotMethod<&NativeMachine::CodeSegmentInfo>},
        {"watchContent", HotMethod<&NativeMachine::WatchContent>},
        {"takeForeignReads", HotMethod<&NativeMachine::TakeForeignReads>},
    };
    std::vector<napi_property_descriptor> props;
    for (const auto& [name, cb] : methods) {
      napi_value fn = nullptr;
      // Should one fail (no memory), the prototype's methods stay in use.
      if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, data, &fn) != napi_ok) return;
      props.push_back({name, nullptr, nullptr, nullptr, nullptr, fn, napi_default, nullptr});
    }
    napi_define_properties(env, self, props.size(), props.data());
  }

  template <Napi::Value (NativeMachine::*Method)(const Napi::CallbackInfo&)>
  static napi_value HotMethod(napi_env env, napi_callback_info cb_info) {
    Napi::CallbackInfo info(env, cb_info);
    uintptr_t data = reinterpret_cast<uintptr_t>(info.Data());
    AddonData* addon = info.Env().GetInstanceData<AddonData>();
    uint32_t index = static_cast<uint32_t>(data & 0xffffffffu), generation = static_cast<uint32_t>(data >> 32);
    NativeMachine* self = nullptr;
    if (addon && index < addon->hot->slots.size() && addon->hot->slots[index].generation == generation) {
      self = addon->hot->slots[index].machine;
    }
    if (!self) {
      Napi::Error::New(env, "the VM is gone").ThrowAsJavaScriptException();
      return nullptr;
    }
    return (self->*Method)(info);
  }

  std::shared_ptr<HotSlots> hot_;
  uint32_t hot_index_ = 0;

  Machine* Live(const Napi::CallbackInfo& info) {
    if (!machine_) Napi::Error::New(info.Env(), "the VM is closed").ThrowAsJavaScriptException();
    return machine_.get();
  }

  // Checks [gpa, gpa+length) lies in guest RAM.
  bool InRam(const Napi::CallbackInfo& info, uint64_t gpa, uint64_t length) {
    uint64_t size = machine_->memory_bytes();
    if (gpa > size || length > size - gpa) {
      ThrowRange(info.Env(), "guest-physical range is outside guest RAM");
      return false;
    }
    return true;
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    if (m->run_held() && m->run_area()[kSlotDirtyRegs] != 0) return ThrowHeldRun(info.Env(), "a register write");
    uc_err e = m->Run();
    if (e != UC_ERR_OK) return ThrowUnicorn(info.Env(), e, std::string("run: ") + uc_strerror(e));
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    // The RAM may go to the pool's next machine or be unmapped: the view reads nothing from now on.
    for (auto& [chunk, view] : ram_views_) view.Value().Detach();
    ram_views_.clear();
    Machine::Release(std::move(machine_));
    area_ref_.Reset();
    edge_map_ref_.Reset();
    edge_slots_ref_.Reset();
    return info.Env().Undefined();
  }

  bool GetSpaceRange(const Napi::CallbackInfo& info, Space* space, uint64_t* gpa, uint64_t* length) {
    uint32_t s;
    if (!GetU32(info, 0, "space", 1, &s) || !GetU64(info, 1, "gpa", gpa) || !GetU64(info, 2, "length", length)) return false;
    if (*gpa % kPageSize || *length % kPageSize) { ThrowRange(info.Env(), "gpa and length must be multiples of 4096"); return false; }
    if (!InRam(info, *gpa, *length)) return false;
    *space = static_cast<Space>(s);
    return true;
  }

  Napi::Value SetGate(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    Space space; uint64_t gpa, length; uint32_t access, fetch;
    if (!m || !GetSpaceRange(info, &space, &gpa, &length) || !GetU32(info, 3, "access", 3, &access) ||
        !GetU32(info, 4, "fetch", 3, &fetch)) {
      return info.Env().Undefined();
    }
    if (space == Space::kPrivate && static_cast<GateAccess>(access) == GateAccess::kCiphertext) {
      return ThrowRange(info.Env(), "only shared accesses can see ciphertext");
    }
    if (!m->SetGate(space, gpa >> kPageShift, length >> kPageShift, static_cast<GateAccess>(access), static_cast<GateFetch>(fetch))) {
      return ThrowRange(info.Env(), "the emulator cannot map this much more of a huge guest's RAM: the pages it opened lie in more GiB-sized chunks than its memory map holds (QEMU's limit of 4,096 sections)");
    }
    return info.Env().Undefined();
  }

  Napi::Value WriteShadow(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t gpa;
    if (!m || !GetU64(info, 0, "gpa", &gpa) || !InRam(info, gpa, kPageSize)) return info.Env().Undefined();
    if (gpa % kPageSize) return ThrowRange(info.Env(), "gpa must be a multiple of 4096");
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        info[1].As<Napi::Uint8Array>().ByteLength() != kPageSize) {
      return ThrowType(info.Env(), "data must be a Uint8Array of 4096 bytes");
    }
    if (!m->WriteShadow(gpa >> kPageShift, info[1].As<Napi::Uint8Array>().Data())) return ThrowRange(info.Env(), "cannot map the ciphertext shadow");
    return info.Env().Undefined();
  }

  Napi::Value GetGate(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t s; uint64_t gpa;
    if (!m || !GetU32(info, 0, "space", 1, &s) || !GetU64(info, 1, "gpa", &gpa) || !InRam(info, gpa, 1)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<int>(m->GetGate(static_cast<Space>(s), gpa >> kPageShift)));
  }

  Napi::Value GetGateFetch(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t s; uint64_t gpa;
    if (!m || !GetU32(info, 0, "space", 1, &s) || !GetU64(info, 1, "gpa", &gpa) || !InRam(info, gpa, 1)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<int>(m->GetGateFetch(static_cast<Space>(s), gpa >> kPageShift)));
  }

  Napi::Value CountGate(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    Space space; uint64_t gpa, length; uint32_t at_least;
    if (!m || !GetSpaceRange(info, &space, &gpa, &length) || !GetU32(info, 3, "atLeast", 3, &at_least)) return info.Env().Undefined();
    return Napi::BigInt::New(info.Env(), m->CountGate(space, gpa >> kPageShift, length >> kPageShift, static_cast<GateAccess>(at_least)));
  }

  Napi::Value ReadSpecial(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t id; uint64_t value;
    if (!m || !GetU32(info, 0, "register", 255, &id)) return info.Env().Undefined();
    if (!m->ReadSpecial(static_cast<int>(id), &value)) return ThrowRange(info.Env(), "unknown register id");
    return Napi::BigInt::New(info.Env(), value);
  }

  Napi::Value WriteSpecial(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t id; uint64_t value;
    if (!m || !GetU32(info, 0, "register", 255, &id) || !GetU64(info, 1, "value", &value)) return info.Env().Undefined();
    uc_err e = m->WriteSpecial(static_cast<int>(id), value);
    if (e == UC_ERR_ARG) return ThrowRange(info.Env(), "unknown register id or value refused");
    if (e != UC_ERR_OK) return ThrowUnicorn(info.Env(), e, std::string("register write: ") + uc_strerror(e));
    return info.Env().Undefined();
  }

  Napi::Value ReadMsr(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t index; uint64_t value;
    if (!m || !GetU32(info, 0, "msr", 0xffffffffu, &index)) return info.Env().Undefined();
    uc_err e = m->ReadMsr(index, &value);
    if (e != UC_ERR_OK) return ThrowUnicorn(info.Env(), e, std::string("rdmsr: ") + uc_strerror(e));
    return Napi::BigInt::New(info.Env(), value);
  }

  Napi::Value WriteMsr(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t index; uint64_t value;
    if (!m || !GetU32(info, 0, "msr", 0xffffffffu, &index) || !GetU64(info, 1, "value", &value)) return info.Env().Undefined();
    uc_err e = m->WriteMsr(index, value);
    if (e != UC_ERR_OK) return ThrowUnicorn(info.Env(), e, std::string("wrmsr: ") + uc_strerror(e));
    return info.Env().Undefined();
  }

  // Arguments (gpa: bigint, bytes: Uint8Array) of a host copy to or from [gpa, gpa+bytes.byteLength),
  // which must lie in guest RAM; false (with the error thrown) otherwise.
  // One napi_get_typedarray_info: Napi::Uint8Array asked for the type, then for it all again in
  // its constructor, ~900 instructions of every write (issue 10).
  bool GetRamBytes(const Napi::CallbackInfo& info, const char* name, uint64_t* gpa, uint8_t** data, size_t* length) {
    if (!GetU64(info, 0, "gpa", gpa)) return false;
    napi_typedarray_type type;
    void* bytes = nullptr;
    if (info.Length() < 2 || !info[1].IsTypedArray() ||
        napi_get_typedarray_info(info.Env(), info[1], &type, length, &bytes, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
      ThrowType(info.Env(), std::string(name) + " must be a Uint8Array");
      return false;
    }
    *data = static_cast<uint8_t*>(bytes);
    return InRam(info, *gpa, *length);
  }

  // readInto(gpa, target: Uint8Array): copies target.byteLength bytes from `gpa` into `target`.
  // The caller brings the bytes: making a Buffer here (N-API) cost more than the copy for the
  // small GHCB and PSC fields a VMM reads on every VMGEXIT (issue 10).
  Napi::Value ReadInto(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t gpa;
    uint8_t* target;
    size_t length;
    if (!m || !GetRamBytes(info, "target", &gpa, &target, &length)) return info.Env().Undefined();
    m->ram()->ForEachRun(gpa, length, [&](const uint8_t* host, uint64_t at, uint64_t n) { std::memcpy(target + (at - gpa), host, n); });
    return info.Env().Undefined();
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t gpa;
    uint8_t* data;
    size_t length;
    if (!m || !GetRamBytes(info, "data", &gpa, &data, &length)) return info.Env().Undefined();
    m->ram()->ForEachRun(gpa, length, [&](uint8_t* host, uint64_t at, uint64_t n) { std::memcpy(host, data + (at - gpa), n); });
    m->NoteHostWrite(gpa, length);
    return info.Env().Undefined();
  }

  Napi::Value Fill(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t gpa, length; uint32_t byte;
    if (!m || !GetU64(info, 0, "gpa", &gpa) || !GetU64(info, 1, "length", &length) || !GetU32(info, 2, "byte", 255, &byte) ||
        !InRam(info, gpa, length)) return info.Env().Undefined();
    m->Fill(gpa, length, static_cast<uint8_t>(byte));
    return info.Env().Undefined();
  }

  // A zero-copy ArrayBuffer over guest RAM. It keeps the mapping alive after close(); writes
  // through it bypass dirty tracking (call noteHostWrite) and code invalidation.
  Napi::Value Window(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t gpa; uint32_t length;
    if (!m || !GetU64(info, 0, "gpa", &gpa) || !GetU32(info, 1, "length", kMaxWindowBytes, &length) || !InRam(info, gpa, length)) return info.Env().Undefined();
    HostMapping* mapping = m->ram();
    if (length > 0 && mapping->ContiguousFrom(gpa) < length) {
      return ThrowRange(info.Env(), "a window must not cross a 1 GiB boundary of a guest RAM reserved in pieces");
    }
    mapping->Ref();
    return Napi::ArrayBuffer::New(info.Env(), mapping->At(gpa), length,
                                  [](Napi::Env, void*, HostMapping* hint) { hint->Unref(); }, mapping);
  }

  // ramView(chunk): guest RAM [chunk * 64 KiB, (chunk + 1) * 64 KiB) (less at the end of RAM) as an
  // ArrayBuffer, the same one each call. For GuestMemory's reads, which then make no native call
  // (readInto was ~2,000 instructions a call, ~60 calls per SNP fuzz execution, issue 10). Small:
  // V8 counts an ArrayBuffer's bytes as external memory, and 1 GiB views made it run a major GC
  // after major GC. A chunk is contiguous (pieces are 1 GiB or larger powers of two, HostMapping).
  // Unlike window() it does not keep the mapping alive, so the machine can still go back to the
  // pool: Close() detaches it.
  Napi::Value RamView(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t chunk;
    if (!m || !GetU32(info, 0, "chunk", 0xffffffffu, &chunk)) return info.Env().Undefined();
    HostMapping* mapping = m->ram();
    uint64_t start = static_cast<uint64_t>(chunk) * kRamViewBytes;
    if (start >= mapping->size()) return ThrowRange(info.Env(), "chunk is outside guest RAM");
    auto found = ram_views_.find(chunk);
    if (found != ram_views_.end()) return found->second.Value();
    uint64_t length = std::min<uint64_t>(kRamViewBytes, mapping->size() - start);
    if (mapping->ContiguousFrom(start) < length) return ThrowRange(info.Env(), "guest RAM is not contiguous there");
    Napi::ArrayBuffer view = Napi::ArrayBuffer::New(info.Env(), mapping->At(start), length);
    ram_views_.emplace(chunk, Napi::Persistent(view));
    return view;
  }

  Napi::Value NoteHostWrite(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t gpa, length;
    if (!m || !GetU64(info, 0, "gpa", &gpa) || !GetU64(info, 1, "length", &length) || !InRam(info, gpa, length)) return info.Env().Undefined();
    m->NoteHostWrite(gpa, length);
    return info.Env().Undefined();
  }

  // translate(va, access, user?) -> status | isPrivate << 2 | writable << 3 | executable << 4 |
  // level << 5 | pfError << 8 | userPage << 16, with the GPA (or the blocked table page) in the run
  // area's host-result slot. `user`: as a user-mode access (page_walk.h UserAccess), else a
  // supervisor-mode one. Packed: building an object property by property here cost more than the
  // page walk (issue 11); src/cpu/vcpu.ts unpacks it.
  Napi::Value Translate(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t va; uint32_t access;
    if (!m || !GetU64(info, 0, "va", &va) || !GetU32(info, 1, "access", 2, &access)) return info.Env().Undefined();
    if (info.Length() >= 3 && !info[2].IsBoolean() && !info[2].IsUndefined()) return ThrowType(info.Env(), "user must be a boolean");
    const bool user = info.Length() >= 3 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    Translation t = m->TranslateForHost(va, static_cast<Access>(access), user);
    m->run_area()[kSlotHostResult] = t.status == Translation::kTableBlocked ? t.blocked_gpa : t.gpa;
    uint64_t packed = static_cast<uint64_t>(t.status) | (t.is_private ? 4u : 0u) | (t.writable ? 8u : 0u) |
                      (t.executable ? 16u : 0u) | (static_cast<uint64_t>(t.level & 7) << 5) |
                      (static_cast<uint64_t>(t.pf_error & 0xff) << 8) | (t.user ? 1u << 16 : 0u);
    return Napi::Number::New(info.Env(), static_cast<double>(packed));
  }

  // inject(vector, errorCode?: bigint, cr2?: bigint, resume?: boolean) -> "" or the reason the
  // guest's tables are unusable; resume: the pushed RFLAGS has RF set (a fault, deliver.cc)
  Napi::Value Inject(const Napi::CallbackInfo& info) { return Deliver(info, false); }

  // injectRepeating(vector, errorCode?: bigint, cr2?: bigint) -> as inject; the run area's
  // hostResult slot = the deliveries of the same fault storm made after the first << 1 | whether
  // the run the storm ended on is held for the next run (deliver.cc)
  Napi::Value InjectRepeating(const Napi::CallbackInfo& info) { return Deliver(info, true); }

  Napi::Value Deliver(const Napi::CallbackInfo& info, bool repeating) {
    Machine* m = Live(info);
    uint32_t vector; uint64_t error_code = 0, cr2 = 0;
    if (!m || !GetU32(info, 0, "vector", 255, &vector)) return info.Env().Undefined();
    bool has_error = info.Length() > 1 && !info[1].IsUndefined();
    if (has_error && !GetU64(info, 1, "errorCode", &error_code)) return info.Env().Undefined();
    bool has_cr2 = info.Length() > 2 && !info[2].IsUndefined();
    if (has_cr2 && !GetU64(info, 2, "cr2", &cr2)) return info.Env().Undefined();
    const uint64_t* cr2_ptr = has_cr2 ? &cr2 : nullptr;
    const bool resume = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    if (m->run_held()) return ThrowHeldRun(info.Env(), repeating ? "injectRepeating()" : "inject()");
    return Napi::String::New(info.Env(), repeating ? m->InjectRepeating(static_cast<uint8_t>(vector), has_error, error_code, cr2_ptr, resume)
                                                   : m->Inject(static_cast<uint8_t>(vector), has_error, error_code, cr2_ptr, resume));
  }

  // setEntryState(mode, csSelector, csBase) -> "" or the reason the state cannot be entered
  Napi::Value SetEntryState(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t mode, selector; uint64_t base;
    if (!m || !GetU32(info, 0, "mode", 2, &mode) || !GetU32(info, 1, "csSelector", 0xffff, &selector) ||
        !GetU64(info, 2, "csBase", &base)) {
      return info.Env().Undefined();
    }
    return Napi::String::New(info.Env(), m->SetEntryState(static_cast<EntryMode>(mode), static_cast<uint16_t>(selector), base));
  }

  // enterInnerPrivilege(selector, descriptor: bigint) -> "" or the reason it cannot (guest_stub.cc)
  Napi::Value EnterInnerPrivilege(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t selector; uint64_t descriptor;
    if (!m || !GetU32(info, 0, "selector", 0xffff, &selector) || !GetU64(info, 1, "descriptor", &descriptor)) return info.Env().Undefined();
    if (m->run_held()) return ThrowHeldRun(info.Env(), "enterInnerPrivilege()");
    return Napi::String::New(info.Env(), m->EnterInnerPrivilege(static_cast<uint16_t>(selector), descriptor));
  }

  // writeXcr0(value: bigint) -> "" or the reason it cannot (guest_stub.cc)
  Napi::Value WriteXcr0(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t value;
    if (!m || !GetU64(info, 0, "value", &value)) return info.Env().Undefined();
    if (m->run_held()) return ThrowHeldRun(info.Env(), "writeXcr0()");
    return Napi::String::New(info.Env(), m->WriteXcr0(value));
  }

  // codeSegment() -> { bits, longMode, protectedMode, selector, base }
  Napi::Value CodeSegmentInfo(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    m->SyncRegsIn();
    CodeSegment cs = m->CurrentCodeSegment();
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("bits", cs.bits);
    o.Set("longMode", cs.long_mode);
    o.Set("protectedMode", cs.protected_mode);
    o.Set("selector", cs.selector);
    o.Set("base", Napi::BigInt::New(env, cs.base));
    return o;
  }

  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    if (m->run_held()) return ThrowHeldRun(info.Env(), "snapshot()");
    uint64_t id = m->TakeSnapshot();
    if (!id) return ThrowUnicorn(info.Env(), UC_ERR_NOMEM, "snapshot: cannot save the CPU context");
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  }

  Napi::Value Restore(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint32_t id;
    if (!m || !GetU32(info, 0, "snapshot", 0xffffffffu, &id)) return info.Env().Undefined();
    if (!m->RestoreSnapshot(id)) return ThrowRange(info.Env(), "no such snapshot in this VM");
    return info.Env().Undefined();
  }

  Napi::Value ForgetSnapshot(const Napi::CallbackInfo& info) {
    uint32_t id;
    if (!machine_ || !GetU32(info, 0, "snapshot", 0xffffffffu, &id)) return info.Env().Undefined();
    machine_->ForgetSnapshot(id);
    return info.Env().Undefined();
  }

  // saveCpuState() -> Buffer: the running vCPU's architectural state (Machine::SaveCpuState).
  Napi::Value SaveCpuState(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(info.Env(), m->CpuStateBytes());
    if (!m->SaveCpuState(out.Data())) return ThrowUnicorn(info.Env(), UC_ERR_NOMEM, "saveCpuState: cannot save the CPU context");
    return out;
  }

  // loadCpuState(state: Uint8Array): makes a state saveCpuState returned the running vCPU.
  Napi::Value LoadCpuState(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray()) return ThrowType(info.Env(), "state must be a Uint8Array");
    Napi::TypedArray array = info[0].As<Napi::TypedArray>();
    if (array.ByteLength() != m->CpuStateBytes()) return ThrowRange(info.Env(), "state is not a CPU state of this machine");
    const uint8_t* bytes = static_cast<const uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    if (!m->LoadCpuState(bytes)) return ThrowUnicorn(info.Env(), UC_ERR_NOMEM, "loadCpuState: cannot restore the CPU context");
    return info.Env().Undefined();
  }

  Napi::Value SetPauseExits(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    if (info.Length() < 1 || !info[0].IsBoolean()) return ThrowType(info.Env(), "on must be a boolean");
    m->SetPauseExits(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }

  Napi::Value SetXsetbvAllowed(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t mask;
    if (!m || !GetU64(info, 0, "mask", &mask)) return info.Env().Undefined();
    m->SetXsetbvAllowed(mask);
    return info.Env().Undefined();
  }

  Napi::Value SetDebugRegisterIntercepts(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    uint64_t mask;
    if (!m || !GetU64(info, 0, "mask", &mask)) return info.Env().Undefined();
    m->SetDebugRegisterIntercepts(static_cast<uint32_t>(mask));
    return info.Env().Undefined();
  }

  Napi::Value SetMarker(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    MarkerConfig marker;
    if (!m || info.Length() < 1 || !ReadMarker(info.Env(), info[0], &marker)) return info.Env().Undefined();
    m->set_marker(marker);
    return info.Env().Undefined();
  }

  Napi::Value DirtyPages(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<double>(m->dirty_pages()));
  }

  // memoryCounters(): [TLB fills, TLB flushes, restored pages, kept code pages, dropped code pages, kept code bits,
  // snapshot copied pages] since creation.
  Napi::Value MemoryCounters(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    const Machine::MemoryCounters& c = m->memory_counters();
    Napi::Array out = Napi::Array::New(info.Env());
    uint32_t i = 0;
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.tlb_fills)));
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.tlb_flushes)));
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.restored_pages)));
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.kept_code_pages)));
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.dropped_code_pages)));
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.kept_code_bits)));
    out.Set(i++, Napi::Number::New(info.Env(), static_cast<double>(c.snapshot_copied_pages)));
    return out;
  }

  // setEdgeMap(map: Uint8Array of 65536 bytes | null, slots?: Uint32Array of 65537 entries): the
  // block hook counts edges into `map` and lists the slots it hits in `slots` (Machine::SetEdgeMap).
  Napi::Value SetEdgeMap(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
      m->SetEdgeMap(nullptr);
      edge_map_ref_.Reset();
      edge_slots_ref_.Reset();
      return info.Env().Undefined();
    }
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        info[0].As<Napi::Uint8Array>().ElementLength() != Machine::kEdgeMapBytes) {
      return ThrowType(info.Env(), "the edge map must be a Uint8Array of 65536 bytes");
    }
    uint32_t* slots = nullptr;
    if (info.Length() >= 2 && !info[1].IsUndefined()) {
      if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
          info[1].As<Napi::Uint32Array>().ElementLength() != Machine::kEdgeMapBytes + 1) {
        return ThrowType(info.Env(), "the edge slot list must be a Uint32Array of 65537 entries");
      }
      slots = info[1].As<Napi::Uint32Array>().Data();
      slots[0] = 0;
    }
    Napi::Uint8Array map = info[0].As<Napi::Uint8Array>();
    // Keep the buffers alive while the hook writes into them.
    edge_map_ref_ = Napi::Persistent(map.As<Napi::Object>());
    if (slots) edge_slots_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
    else edge_slots_ref_.Reset();
    if (!m->SetEdgeMap(map.Data(), slots)) {
      edge_map_ref_.Reset();
      edge_slots_ref_.Reset();
      return ThrowType(info.Env(), "cannot add the edge-coverage block hook");
    }
    return info.Env().Undefined();
  }

  Napi::Value ResetEdges(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (m) m->ResetEdges();
    return info.Env().Undefined();
  }

  // watchExecution(armBegin, armEnd, stopBegin, stopEnd: bigint GPAs): see Machine::WatchExecution.
  Napi::Value WatchExecution(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    uint64_t v[4];
    const char* names[4] = {"armBegin", "armEnd", "stopBegin", "stopEnd"};
    for (size_t i = 0; i < 4; i++) if (!GetU64(info, i, names[i], &v[i])) return info.Env().Undefined();
    if (v[0] >= v[1] || v[2] >= v[3]) return ThrowRange(info.Env(), "watchExecution ranges must not be empty");
    // The watch sees fetches at TLB fills, one per page: a range boundary inside a page would let
    // a fetch from its other part fill the page for both, and later fetches pass unseen.
    for (size_t i = 0; i < 4; i++) {
      if ((v[i] & (kPageSize - 1)) != 0) return ThrowRange(info.Env(), std::string("watchExecution ranges must be page-aligned: ") + names[i] + " is not");
    }
    m->WatchExecution(v[0], v[1], v[2], v[3]);
    return info.Env().Undefined();
  }

  // watchContent(gpa, bytes: bigint, on: boolean, untilWrite?: boolean): see
  // Machine::WatchContent (whole pages, clipped to guest RAM).
  Napi::Value WatchContent(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    uint64_t first, pages;
    if (!PageRange(info, &first, &pages)) return info.Env().Undefined();
    if (info.Length() < 3 || !info[2].IsBoolean()) return ThrowType(info.Env(), "on must be a boolean");
    if (info.Length() >= 4 && !info[3].IsBoolean() && !info[3].IsUndefined()) return ThrowType(info.Env(), "untilWrite must be a boolean");
    bool until_write = info.Length() >= 4 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    m->WatchContent(first, pages, info[2].As<Napi::Boolean>().Value(), until_write);
    return info.Env().Undefined();
  }

  // countWatchedContent(gpa, bytes: bigint): how many pages of the range are watched.
  Napi::Value CountWatchedContent(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    uint64_t first, pages;
    if (!PageRange(info, &first, &pages)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<double>(m->CountWatchedContent(first, pages)));
  }

  // takeForeignReads(): BigUint64Array of (gpa, rip, instructions) triples, oldest first; forgets them.
  Napi::Value TakeForeignReads(const Napi::CallbackInfo& info) {
    Machine* m = Live(info);
    if (!m) return info.Env().Undefined();
    std::vector<ForeignRead> reads = m->TakeForeignReads();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(info.Env(), reads.size() * 3 * sizeof(uint64_t));
    uint64_t* out = static_cast<uint64_t*>(buf.Data());
    for (size_t i = 0; i < reads.size(); i++) {
      out[i * 3] = reads[i].gpa;
      out[i * 3 + 1] = reads[i].rip;
      out[i * 3 + 2] = reads[i].instructions;
    }
    return Napi::TypedArrayOf<uint64_t>::New(info.Env(), reads.size() * 3, buf, 0, napi_biguint64_array);
  }

  // (gpa, bytes) arguments 0 and 1 as whole pages: the pages the byte range touches.
  static bool PageRange(const Napi::CallbackInfo& info, uint64_t* first, uint64_t* pages) {
    uint64_t gpa, bytes;
    if (!GetU64(info, 0, "gpa", &gpa) || !GetU64(info, 1, "bytes", &bytes)) return false;
    uint64_t end = gpa + bytes < gpa ? ~0ull : gpa + bytes;
    *first = gpa >> kPageShift;
    *pages = bytes == 0 ? 0 : ((end - 1) >> kPageShift) - *first + 1;
    return true;
  }

  std::unique_ptr<Machine> machine_;
  Napi::ObjectReference area_ref_;
  // RamView()'s ArrayBuffers by chunk, detached when the machine closes.
  std::unordered_map<uint32_t, Napi::Reference<Napi::ArrayBuffer>> ram_views_;
  Napi::ObjectReference edge_map_ref_;
  Napi::ObjectReference edge_slots_ref_;
};

Napi::Value UnicornVersion(const Napi::CallbackInfo& info) {
  unsigned major = 0, minor = 0;
  unsigned packed = uc_version(&major, &minor);
  unsigned patch = (packed >> 8) & 0xff;
  return Napi::String::New(info.Env(), std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch));
}

Napi::Value SetUnicornErrorClass(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) return ThrowType(info.Env(), "expected a constructor");
  info.Env().GetInstanceData<AddonData>()->unicorn_error = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// Unicorn before 2.1.4 kills the process when its translation buffer fills (SIGSEGV in
// tb_set_jmp_target, reached by self-modifying or fuzzed guests; README "Unicorn"). The header
// is checked when building and the library actually loaded is checked again here, since an
// rpath or LD_LIBRARY_PATH can swap it under an unchanged build.
constexpr unsigned kMinUnicorn = UC_MAKE_VERSION(2, 1) | (4u << 8);
static_assert(((UC_API_MAJOR << 24) | (UC_API_MINOR << 16) | (UC_API_PATCH << 8)) >= kMinUnicorn,
              "unicorn.h is older than 2.1.4, which crashes when its translation buffer fills");

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  unsigned packed = uc_version(nullptr, nullptr);
  if ((packed & ~0xffu) < kMinUnicorn) {
    std::string loaded = std::to_string(packed >> 24) + "." + std::to_string((packed >> 16) & 0xff) + "." +
                         std::to_string((packed >> 8) & 0xff);
    Napi::Error::New(env, "the loaded libunicorn is " + loaded +
                              "; minivisor needs 2.1.4 or later, because older releases crash the process "
                              "when their translation buffer fills (run `npm install` to fetch 2.1.4)")
        .ThrowAsJavaScriptException();
    return exports;
  }
  env.SetInstanceData(new AddonData());
  exports.Set("NativeMachine", NativeMachine::Define(env));
  exports.Set("NativeDigest", DefineNativeDigest(env));
  exports.Set("chainDigest", Napi::Function::New(env, ChainDigest));
  exports.Set("encodeTraceEvent", DefineEncodeTraceEvent(env));
  exports.Set("unicornVersion", Napi::Function::New(env, UnicornVersion));
  exports.Set("setUnicornErrorClass", Napi::Function::New(env, SetUnicornErrorClass));
  exports.Set("removeOnStopSignal", Napi::Function::New(env, RemoveOnStopSignal));
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  return exports;
}

}  // namespace
}  // namespace minivisor

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return minivisor::Init(env, exports); }
NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitAddon)
