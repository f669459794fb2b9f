#include "loader/write_through.h"

#include <memory>
#include <optional>
#include <utility>

namespace rowgate::loader {

WriteThrough::WriteThrough(RowCache* cache, const storage::Entity& entity)
    : cache_(cache != nullptr && cache->Caches(&entity) ? cache : nullptr),
      entity_(entity),
      token_(cache_ != nullptr ? cache_->BeginFill() : FillToken{}) {}

std::optional<std::string> WriteThrough::ClientKey(
    const storage::Value& value) const {
  absl::StatusOr<std::string> key =
      storage::CanonicalKey(entity_.key().name, entity_.key().type, value);
  if (!key.ok()) return std::nullopt;
  return std::move(*key);
}

void WriteThrough::Written(const std::vector<storage::Row>& rows) {
  if (!active()) return;
  for (const storage::Row& row : rows) {
    cache_->PutWritten(token_, entity_,
                       storage::KeyText(row[entity_.primary_key]),
                       std::make_shared<const std::vector<storage::Row>>(
                           std::vector<storage::Row>{row}));
  }
}

void WriteThrough::Read(const std::vector<storage::Row>& rows) {
  if (!active()) return;
  for (const storage::Row& row : rows) {
    cache_->Install(token_, entity_, storage::KeyText(row[entity_.primary_key]),
                    std::make_shared<const std::vector<storage::Row>>(
                        std::vector<storage::Row>{row}));
  }
}

void WriteThrough::Deleted(const std::vector<storage::Value>& keys) {
  if (!active()) return;
  for (const storage::Value& key : keys) {
    std::optional<std::string> text = ClientKey(key);
    // A key that does not canonicalize was not deleted by this statement;
    // forgetting everything is the safe answer to the impossible.
    if (!text) return cache_->ClearEntity(entity_);
    cache_->PutWritten(token_, entity_, *text, nullptr);
  }
}

void WriteThrough::Forget(const std::vector<storage::Value>& keys) {
  if (!active()) return;
  std::vector<std::string> texts;
  texts.reserve(keys.size());
  for (const storage::Value& key : keys) {
    std::optional<std::string> text = ClientKey(key);
    if (!text) return cache_->ClearEntity(entity_);
    texts.push_back(std::move(*text));
  }
  cache_->Invalidate(entity_, texts);
}

void WriteThrough::Forget(const std::vector<storage::ColumnValues>& rows,
                          bool outcome_unknown) {
  if (!active()) return;
  std::vector<std::string> texts;
  bool keyless = false;
  for (const storage::ColumnValues& row : rows) {
    bool found = false;
    for (const auto& [column, value] : row) {
      if (column != entity_.primary_key) continue;
      std::optional<std::string> text = ClientKey(value);
      if (!text) return cache_->ClearEntity(entity_);
      texts.push_back(std::move(*text));
      found = true;
    }
    keyless |= !found;
  }
  if (keyless && outcome_unknown) {
    cache_->ClearEntity(entity_);
    return;
  }
  cache_->Invalidate(entity_, texts);
}

}  // namespace rowgate::loader
