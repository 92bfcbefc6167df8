// A saved VM state (Machine::TakeSnapshot): the CPU context, the RAM pages that may hold data and
// the opened pages of the gate bitmaps.
//
// Page contents live in stores that snapshots share. A snapshot taken while another is the base
// of dirty tracking refers to the base's copy of every page (and gate-bitmap page) not written
// since, and copies only the rest into a store of its own. Taking one then costs the pages the
// guest dirtied, not every page it ever wrote: copying those into fresh memory (a page fault each
// on this host, ~10 us) made the cost of a snapshot swing from 0.1 to 10 ms (issue 11).
#pragma once
#include <unicorn/unicorn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "content_watch.h"
#include "guest_ram.h"
#include "machine.h"

namespace minivisor {

// A RAM page as a snapshot holds it: all its bytes, or only its non-zero qwords when there are
// few. A kernel-stage fuzz snapshot is mostly such pages (the workload tags only the first and last
// qword of each page, guest/kernel/main.c: 518 of the 522 pages an execution dirties), and
// restoring one is then a clear of 4 KiB plus a few stores instead of a copy that must also read
// 4 KiB of snapshot: restore was ~7% of an execution, mostly those copies (issue 10).
struct SnapshotPage {
  static constexpr uint32_t kWhole = ~0u;
  uint32_t store;  // index into the snapshot's stores
  uint32_t first;  // kWhole pages: index into the store's `whole`; sparse pages: first entry in `words`
  uint32_t count;  // kWhole, or how many non-zero qwords (0: a page of zeros)
};
struct SnapshotWord {
  uint64_t value;
  uint32_t index;  // qword index in the page
};
// One opened page of each gate bitmap of a space, as a snapshot holds it.
struct SnapshotGatePage {
  uint32_t store;
  uint32_t slot;  // index of its kGateBitmaps pages in the store's `gate`
};

// Contents copied by one TakeSnapshot. Written only while that snapshot is taken, read-only after,
// when later snapshots may share it.
struct SnapshotStore {
  std::vector<uint8_t> whole;        // kPageSize bytes for each page held whole
  std::vector<SnapshotWord> words;   // the non-zero qwords of the sparse pages
  std::vector<uint8_t> gate;         // kGateBitmaps * kPageSize bytes for each gate-bitmap page
  uint64_t Bytes() const { return whole.size() + words.size() * sizeof(SnapshotWord) + gate.size(); }
  uint64_t CapacityBytes() const { return whole.capacity() + words.capacity() * sizeof(SnapshotWord) + gate.capacity(); }
  void Clear() {
    whole.clear();
    words.clear();
    gate.clear();
  }
};

class Snapshot {
 public:
  // Pages with at most this many non-zero qwords are held sparse.
  static constexpr uint32_t kMaxSparseWords = 32;
  // A snapshot refers to at most this many stores: one taken from a base that refers to as many
  // copies everything into its own, so a long chain of snapshots does not keep a long chain of
  // mostly superseded stores alive.
  static constexpr size_t kMaxStores = 8;
  // A gate-bitmap page as held: its page of each bitmap.
  static constexpr uint64_t kGatePageBytes = kGateBitmaps * kPageSize;
  uc_context* context = nullptr;
  std::vector<uint64_t> pages;          // sorted RAM page numbers held
  std::vector<SnapshotPage> content;    // one for each of `pages`
  std::vector<uint64_t> gate_pages[2];  // opened bitmap pages (by bitmap page number), of every bitmap alike
  std::vector<SnapshotGatePage> gate_content[2];  // one for each of `gate_pages`
  std::vector<std::shared_ptr<SnapshotStore>> stores;  // stores[0]: its own (Add, AddGatePage)
  uint64_t instructions = 0;
  uint64_t charged = 0;
  uint64_t instruction_limit = 0;
  uint64_t budget_limit = 0;
  ContentWatch content_watch;

  // A spare (Machine::RecycleSnapshot) keeps at most this much of the buffers below (64 MiB).
  static constexpr uint64_t kMaxSpareBytes = 64ull << 20;

  Snapshot() { stores.push_back(std::make_shared<SnapshotStore>()); }

  uint64_t CapacityBytes() const {
    uint64_t n = pages.capacity() * sizeof(uint64_t) + content.capacity() * sizeof(SnapshotPage);
    for (int sp = 0; sp < 2; sp++) n += gate_pages[sp].capacity() * sizeof(uint64_t) + gate_content[sp].capacity() * sizeof(SnapshotGatePage);
    // Its own store's buffers are kept only when no other snapshot shares them (Clear).
    if (stores[0].use_count() == 1) n += stores[0]->CapacityBytes();
    return n;
  }

  // Empties it for another TakeSnapshot, keeping its buffers and emulator context; returns CapacityBytes().
  uint64_t Clear() {
    pages.clear();
    content.clear();
    for (int sp = 0; sp < 2; sp++) {
      gate_pages[sp].clear();
      gate_content[sp].clear();
    }
    if (stores[0].use_count() == 1) {
      stores[0]->Clear();
      stores.resize(1);
    } else {
      stores.assign(1, std::make_shared<SnapshotStore>());
    }
    instructions = charged = instruction_limit = budget_limit = 0;
    content_watch = ContentWatch();
    return CapacityBytes();
  }

  // Appends `page` (after every page appended so far) with the bytes at `src`, copied into its own store.
  void Add(uint64_t page, const uint8_t* src) {
    SnapshotStore& own = *stores[0];
    pages.push_back(page);
    // Sparse as long as the non-zero qwords fit: a page with more is held whole as soon as that
    // shows, without counting the rest or copying the page first (a launch's snapshot holds
    // thousands of pages, issue 10).
    const uint32_t first = static_cast<uint32_t>(own.words.size());
    for (uint32_t i = 0; i < kPageSize / 8; i++) {
      uint64_t q;
      std::memcpy(&q, src + i * 8, 8);
      if (!q) continue;
      if (own.words.size() - first == kMaxSparseWords) {
        own.words.resize(first);
        content.push_back({0, static_cast<uint32_t>(own.whole.size() / kPageSize), SnapshotPage::kWhole});
        own.whole.insert(own.whole.end(), src, src + kPageSize);
        return;
      }
      own.words.push_back({q, i});
    }
    content.push_back({0, first, static_cast<uint32_t>(own.words.size() - first)});
  }

  // Room for `pages` RAM pages and `gate_copies` gate-bitmap pages copied into its own store: a
  // store grown one doubling at a time faults in fresh memory for each copy it makes on the way.
  void Reserve(size_t ram_pages, size_t gate_copies) {
    pages.reserve(ram_pages);
    content.reserve(ram_pages);
    stores[0]->gate.reserve(gate_copies * kGatePageBytes);
  }

  // Appends gate-bitmap page `index` of space `sp` (after every one appended so far): `bitmaps[bm]`
  // is its page of bitmap bm.
  void AddGatePage(int sp, uint64_t index, const uint8_t* const (&bitmaps)[kGateBitmaps]) {
    SnapshotStore& own = *stores[0];
    const uint32_t slot = static_cast<uint32_t>(own.gate.size() / kGatePageBytes);
    own.gate.resize(own.gate.size() + kGatePageBytes);
    for (int bm = 0; bm < kGateBitmaps; bm++) std::memcpy(&own.gate[(slot * kGateBitmaps + bm) * kPageSize], bitmaps[bm], kPageSize);
    gate_pages[sp].push_back(index);
    gate_content[sp].push_back({0, slot});
  }

  // Where Share puts each store of `from`: Snapshot::kNotShared until its first page is shared.
  static constexpr uint32_t kNotShared = ~0u;
  // Appends `page` with the content `c` that `from` holds for it (the page is unchanged since
  // `from` was taken or restored), without copying it. `placed`: one entry per store of `from`,
  // kNotShared to begin with.
  void Share(uint64_t page, const Snapshot& from, const SnapshotPage& c, std::vector<uint32_t>* placed) {
    pages.push_back(page);
    content.push_back({Place(from, c.store, placed), c.first, c.count});
  }
  void ShareGatePage(int sp, uint64_t index, const Snapshot& from, const SnapshotGatePage& c, std::vector<uint32_t>* placed) {
    gate_pages[sp].push_back(index);
    gate_content[sp].push_back({Place(from, c.store, placed), c.slot});
  }

  // How many bytes of a store `c` refers to.
  static uint64_t BytesOf(const SnapshotPage& c) { return c.count == SnapshotPage::kWhole ? kPageSize : c.count * sizeof(SnapshotWord); }

  // The held content of `page`, or nullptr. `from`: where to start looking in `pages` (callers
  // visiting pages in ascending order pass the position the last call returned in it, so the
  // searches shrink as they go).
  const SnapshotPage* Find(uint64_t page, size_t* from = nullptr) const {
    auto it = std::lower_bound(pages.begin() + (from ? *from : 0), pages.end(), page);
    if (from) *from = it - pages.begin();
    if (it == pages.end() || *it != page) return nullptr;
    return &content[it - pages.begin()];
  }
  // The held gate-bitmap page `index` of space `sp`, or nullptr; `from` as for Find.
  const SnapshotGatePage* FindGatePage(int sp, uint64_t index, size_t* from = nullptr) const {
    const auto& held = gate_pages[sp];
    auto it = std::lower_bound(held.begin() + (from ? *from : 0), held.end(), index);
    if (from) *from = it - held.begin();
    if (it == held.end() || *it != index) return nullptr;
    return &gate_content[sp][it - held.begin()];
  }
  // Bitmap bm's page of a held gate-bitmap page.
  const uint8_t* GateBitmapPage(const SnapshotGatePage& c, int bm) const {
    return &stores[c.store]->gate[(static_cast<uint64_t>(c.slot) * kGateBitmaps + bm) * kPageSize];
  }

  // Writes the held bytes of `page` to `dst`; false (and nothing written) if the page is not held.
  // `dst_is_zero`: the page reads as zeros already, so a sparse page needs only its words.
  bool Put(uint64_t page, uint8_t* dst, size_t* from = nullptr, bool dst_is_zero = false) const {
    const SnapshotPage* c = Find(page, from);
    if (!c) return false;
    const SnapshotStore& store = *stores[c->store];
    if (c->count == SnapshotPage::kWhole) {
      std::memcpy(dst, &store.whole[static_cast<uint64_t>(c->first) * kPageSize], kPageSize);
      return true;
    }
    if (!dst_is_zero) std::memset(dst, 0, kPageSize);
    for (uint32_t i = c->first; i < c->first + c->count; i++) std::memcpy(dst + store.words[i].index * 8, &store.words[i].value, 8);
    return true;
  }

  // Zeroes `dst`, which holds exactly this snapshot's content of `page`: a sparse page has
  // non-zero bytes only in its words, a page not held none at all.
  void ZeroHeld(uint64_t page, uint8_t* dst, size_t* from) const {
    const SnapshotPage* c = Find(page, from);
    if (!c) return;
    if (c->count == SnapshotPage::kWhole) {
      std::memset(dst, 0, kPageSize);
      return;
    }
    const SnapshotStore& store = *stores[c->store];
    for (uint32_t i = c->first; i < c->first + c->count; i++) std::memset(dst + store.words[i].index * 8, 0, 8);
  }

 private:
  uint32_t Place(const Snapshot& from, uint32_t store, std::vector<uint32_t>* placed) {
    uint32_t& at = (*placed)[store];
    if (at == kNotShared) {
      at = static_cast<uint32_t>(stores.size());
      stores.push_back(from.stores[store]);
    }
    return at;
  }
};

}  // namespace minivisor
