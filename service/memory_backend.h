// The benchmarks' no-database backend (--bench_memory_backend): BatchGet
// answered from rows synthesized in memory, so `make bench` can measure what
// gRPC and rowgate's serving code cost without PostgreSQL (the "ceiling").
//
// Stateless and thread-safe.
#ifndef ROWGATE_SERVICE_MEMORY_BACKEND_H_
#define ROWGATE_SERVICE_MEMORY_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loader/batch_loader.h"
#include "storage/catalog.h"

namespace rowgate::service {

// The catalog memory_backend mode serves: the demo schema's `users`.
std::shared_ptr<const storage::Catalog> MemoryBackendCatalog();

// Answers a primary-key lookup of `users` as the loader would: user ids
// 1..rows exist (the demo schema's shape), every other key is missing.
// Does not block.
loader::LoadResult MemoryLookup(const std::vector<std::string>& keys,
                                int64_t rows);

}  // namespace rowgate::service

#endif  // ROWGATE_SERVICE_MEMORY_BACKEND_H_
