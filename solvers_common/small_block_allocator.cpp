// A caching CPU allocator for torch's small blocks (64 B to 256 KiB), built
// and installed by small_block_allocator.py.
//
// Why: torch's default CPU allocator asks glibc for every block with
// posix_memalign (64-byte alignment), which glibc 2.36 serves outside its
// per-thread caches, and every free goes back through the heap's bins. A
// compiled bilevel iteration allocates tens of such blocks per iteration
// (inductor's C++ wrapper allocates each intermediate at every turn of its
// while loop), and so does an eager one.
//
// Each size class (powers of two) owns one region of reserved address
// space, carved by a bump pointer; freed blocks go on the class's free list
// and are never returned to the system. The class of a pointer is the
// region it lies in, so the deleter needs no header and the data pointer is
// its own context (a "simple" data pointer, as the default allocator's).
// Larger blocks, and blocks past a full region, go to the allocator that was
// installed before (its deleter frees them).
#include <c10/core/CPUAllocator.h>
#include <pthread.h>
#include <sys/mman.h>

#include <atomic>
#include <cstddef>

namespace {

constexpr std::size_t kMinShift = 6;                     // 64 bytes
constexpr std::size_t kClasses = 13;                     // 64 B .. 256 KiB
constexpr std::size_t kRegion = std::size_t(32) << 20;   // per class

constexpr std::size_t class_size(std::size_t k) { return std::size_t(1) << (kMinShift + k); }

inline std::size_t class_of(std::size_t nbytes) {
  std::size_t bits = nbytes <= class_size(0) ? kMinShift : 64 - __builtin_clzll(nbytes - 1);
  return bits - kMinShift;
}

struct FreeBlock {
  FreeBlock* next;
};

struct SmallBlockAllocator final : at::Allocator {
  char* begin = nullptr;
  char* bump[kClasses] = {};
  FreeBlock* free_list[kClasses] = {};
  std::atomic_flag busy = ATOMIC_FLAG_INIT;
  at::Allocator* fallback;

  explicit SmallBlockAllocator(at::Allocator* previous) : fallback(previous) {
    // Address space only: pages are committed when a block is first used.
    void* region = mmap(nullptr, kRegion * kClasses, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED) return;
    begin = static_cast<char*>(region);
    for (std::size_t k = 0; k < kClasses; ++k) bump[k] = begin + k * kRegion;
  }

  bool owns(const void* pointer) const {
    const char* p = static_cast<const char*>(pointer);
    return begin != nullptr && p >= begin && p < begin + kRegion * kClasses;
  }

  // A spin lock: the critical sections are a few instructions, and torch
  // allocates from one thread at a time in these benchmarks.
  void lock() {
    while (busy.test_and_set(std::memory_order_acquire)) {
    }
  }
  void unlock() { busy.clear(std::memory_order_release); }

  static void release(void* pointer);

  at::DataPtr allocate(std::size_t nbytes) override {
    if (nbytes == 0 || nbytes > class_size(kClasses - 1) || begin == nullptr) {
      return fallback->allocate(nbytes);
    }
    std::size_t k = class_of(nbytes);
    void* block = nullptr;
    lock();
    if (free_list[k] != nullptr) {
      block = free_list[k];
      free_list[k] = free_list[k]->next;
    } else if (bump[k] + class_size(k) <= begin + (k + 1) * kRegion) {
      block = bump[k];
      bump[k] += class_size(k);
    }
    unlock();
    if (block == nullptr) return fallback->allocate(nbytes);
    return {block, block, &release, at::Device(at::DeviceType::CPU)};
  }

  at::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

SmallBlockAllocator* instance = nullptr;

void SmallBlockAllocator::release(void* pointer) {
  SmallBlockAllocator* self = instance;
  if (!self->owns(pointer)) {
    // Reached only through raw_deallocate: the fallback's own data
    // pointers carry its deleter.
    self->fallback->raw_deleter()(pointer);
    return;
  }
  std::size_t k = (static_cast<char*>(pointer) - self->begin) / kRegion;
  auto* block = static_cast<FreeBlock*>(pointer);
  self->lock();
  block->next = self->free_list[k];
  self->free_list[k] = block;
  self->unlock();
}

// A child forked while another thread holds the lock would wait forever.
void lock_before_fork() { instance->lock(); }
void unlock_after_fork() { instance->unlock(); }

}  // namespace

// 1 when the allocator is torch's CPU allocator (installed now or before),
// 0 when it could not be installed (no address space).
extern "C" int small_block_allocator_install() {
  if (instance != nullptr) return c10::GetCPUAllocator() == instance;
  auto* allocator = new SmallBlockAllocator(c10::GetCPUAllocator());
  if (allocator->begin == nullptr) {
    delete allocator;
    return 0;
  }
  // Never deleted: tensors hold its deleter for as long as they live.
  instance = allocator;
  pthread_atfork(&lock_before_fork, &unlock_after_fork, &unlock_after_fork);
  c10::SetCPUAllocator(instance, /*priority=*/1);
  return c10::GetCPUAllocator() == instance;
}

// 1 when ``pointer`` lies in the cached blocks' address space.
extern "C" int small_block_allocator_owns(const void* pointer) {
  return instance != nullptr && instance->owns(pointer);
}
