#include "loader/include_walk.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

namespace rowgate::loader {
namespace {

// The canonical key text of `value` for a lookup by `column`; nullopt for
// a null or a value that cannot be such a key.
std::optional<std::string> KeyFor(const storage::Column& column,
                                  const storage::Value& value) {
  absl::StatusOr<std::string> key =
      storage::CanonicalKey(column.name, column.type, value);
  if (!key.ok()) return std::nullopt;
  return std::move(*key);
}

// Orders values of one column: integers and texts by value, others as equal.
bool ValueLess(const storage::Value& a, const storage::Value& b) {
  if (a.index() != b.index()) return a.index() < b.index();
  if (const int64_t* x = std::get_if<int64_t>(&a)) {
    return *x < std::get<int64_t>(b);
  }
  if (const std::string* x = std::get_if<std::string>(&a)) {
    return *x < std::get<std::string>(b);
  }
  return false;
}

void SortByKey(const storage::Entity& entity,
               std::vector<const storage::Row*>& rows) {
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const storage::Row* a, const storage::Row* b) {
                     for (int c : entity.key_columns) {
                       if (ValueLess((*a)[c], (*b)[c])) return true;
                       if (ValueLess((*b)[c], (*a)[c])) return false;
                     }
                     return false;
                   });
}

// The distinct keys of `rows` for `lookup_column`, from their `column`.
std::vector<std::string> DistinctKeys(
    const std::vector<const storage::Row*>& rows, int column,
    const storage::Column& lookup_column) {
  std::vector<std::string> keys;
  absl::flat_hash_set<std::string> seen;
  for (const storage::Row* row : rows) {
    std::optional<std::string> key = KeyFor(lookup_column, (*row)[column]);
    if (key.has_value() && seen.insert(*key).second) {
      keys.push_back(std::move(*key));
    }
  }
  return keys;
}

void Shape(const IncludePlan& plan, IncludedRows& node) {
  node.children.resize(plan.children.size());
  for (size_t i = 0; i < plan.children.size(); ++i) {
    Shape(plan.children[i], node.children[i]);
  }
}

}  // namespace

std::optional<std::string> ParentKey(const IncludePlan& plan,
                                     const storage::Entity& /*parent_entity*/,
                                     const storage::Row& parent) {
  const storage::Column& lookup =
      plan.link != nullptr ? plan.link->columns[plan.link_key_column]
                           : plan.target->columns[plan.target_key_column];
  return KeyFor(lookup, parent[plan.source_column]);
}

IncludeWalk::IncludeWalk(Loader& loader,
                         std::shared_ptr<const std::vector<IncludePlan>> plans,
                         absl::Time deadline, Done done)
    : loader_(loader),
      plans_(std::move(plans)),
      deadline_(deadline),
      done_(std::move(done)) {}

std::shared_ptr<IncludeWalk> IncludeWalk::Start(
    Loader& loader, std::shared_ptr<const std::vector<IncludePlan>> plans,
    const storage::Entity& entity, std::vector<const storage::Row*> rows,
    absl::Time deadline, Done done) {
  auto walk = std::make_shared<IncludeWalk>(loader, std::move(plans), deadline,
                                            std::move(done));
  const std::vector<IncludePlan>& all = *walk->plans_;
  walk->result_.includes.resize(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    Shape(all[i], walk->result_.includes[i]);
  }
  {
    // Held while starting, so the walk cannot complete half-started.
    storage::MutexLock lock(&walk->mu_);
    ++walk->outstanding_;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    walk->Walk(all[i], walk->result_.includes[i], entity, rows);
  }
  walk->Release();
  return walk;
}

void IncludeWalk::Walk(const IncludePlan& plan, IncludedRows& node,
                       const storage::Entity& parent,
                       const std::vector<const storage::Row*>& rows) {
  (void)parent;
  const storage::Entity& target = *plan.target;
  auto descend = [this, &plan, &node,
                  &target](std::vector<const storage::Row*> found) {
    for (auto& [key, related] : node.by_key) SortByKey(target, related);
    for (size_t i = 0; i < plan.children.size(); ++i) {
      Walk(plan.children[i], node.children[i], target, found);
    }
  };
  if (plan.link == nullptr) {
    std::vector<std::string> keys = DistinctKeys(
        rows, plan.source_column, target.columns[plan.target_key_column]);
    if (keys.empty()) return;
    LoadRequest request{&target, plan.target_key_column, keys, deadline_};
    Issue(std::move(request),
          [&node, keys, descend](const LoadResult& result) mutable {
            std::vector<const storage::Row*> found;
            for (size_t i = 0; i < keys.size(); ++i) {
              const std::vector<storage::Row>* rows = result.rows_per_key[i];
              if (rows == nullptr) continue;
              std::vector<const storage::Row*>& out = node.by_key[keys[i]];
              for (const storage::Row& row : *rows) {
                out.push_back(&row);
                found.push_back(&row);
              }
            }
            descend(std::move(found));
          });
    return;
  }
  // Many-to-many: the link rows first, then the targets they name.
  const storage::Entity& link = *plan.link;
  std::vector<std::string> keys = DistinctKeys(
      rows, plan.source_column, link.columns[plan.link_key_column]);
  if (keys.empty()) return;
  LoadRequest request{&link, plan.link_key_column, keys, deadline_};
  Issue(std::move(request), [this, &plan, &node, &target, keys,
                             descend](const LoadResult& links) mutable {
    std::vector<const storage::Row*> link_rows;
    // Per parent key, its link rows.
    std::vector<std::vector<const storage::Row*>> per_key(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (links.rows_per_key[i] == nullptr) continue;
      for (const storage::Row& row : *links.rows_per_key[i]) {
        per_key[i].push_back(&row);
        link_rows.push_back(&row);
      }
    }
    const storage::Column& target_key = target.columns[plan.target_key_column];
    std::vector<std::string> target_keys =
        DistinctKeys(link_rows, plan.link_target_column, target_key);
    if (target_keys.empty()) return;
    LoadRequest request{&target, plan.target_key_column, target_keys,
                        deadline_};
    Issue(std::move(request),
          [&plan, &node, &target_key, keys, per_key = std::move(per_key),
           target_keys, descend](const LoadResult& targets) mutable {
            absl::flat_hash_map<std::string, const std::vector<storage::Row>*>
                by_target;
            std::vector<const storage::Row*> found;
            for (size_t i = 0; i < target_keys.size(); ++i) {
              if (targets.rows_per_key[i] == nullptr) continue;
              by_target[target_keys[i]] = targets.rows_per_key[i];
              for (const storage::Row& row : *targets.rows_per_key[i]) {
                found.push_back(&row);
              }
            }
            for (size_t i = 0; i < keys.size(); ++i) {
              for (const storage::Row* link_row : per_key[i]) {
                std::optional<std::string> k =
                    KeyFor(target_key, (*link_row)[plan.link_target_column]);
                if (!k.has_value()) continue;
                auto it = by_target.find(*k);
                if (it == by_target.end()) continue;
                for (const storage::Row& row : *it->second) {
                  node.by_key[keys[i]].push_back(&row);
                }
              }
            }
            descend(std::move(found));
          });
  });
  (void)link;
}

void IncludeWalk::Issue(LoadRequest request, OnRows on_rows) {
  {
    storage::MutexLock lock(&mu_);
    if (finished_) return;
    ++outstanding_;
  }
  std::shared_ptr<IncludeWalk> self = shared_from_this();
  std::shared_ptr<LoadTicket> ticket = loader_.Load(
      std::move(request), [self, on_rows = std::move(on_rows)](
                              absl::StatusOr<LoadResult> result) mutable {
        if (!result.ok()) return self->Finish(result.status());
        {
          storage::MutexLock lock(&self->mu_);
          if (self->finished_) return;
          self->result_.batches.insert(self->result_.batches.end(),
                                       result->batches.begin(),
                                       result->batches.end());
          self->result_.cached.insert(self->result_.cached.end(),
                                      result->cached.begin(),
                                      result->cached.end());
        }
        std::move(on_rows)(*result);
        self->Release();
      });
  bool cancel = false;
  {
    storage::MutexLock lock(&mu_);
    if (finished_) {
      cancel = true;
    } else {
      tickets_.push_back(ticket);
    }
  }
  if (cancel)
    loader_.Cancel(ticket, absl::CancelledError("include walk ended"));
}

void IncludeWalk::Release() {
  Done done;
  IncludeResult result;
  {
    storage::MutexLock lock(&mu_);
    if (--outstanding_ > 0 || finished_) return;
    finished_ = true;
    done = std::move(done_);
    result = std::move(result_);
    tickets_.clear();
  }
  std::move(done)(std::move(result));
}

void IncludeWalk::Cancel(absl::Status status) { Finish(std::move(status)); }

void IncludeWalk::Finish(absl::Status status) {
  Done done;
  std::vector<std::shared_ptr<LoadTicket>> tickets;
  {
    storage::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    done = std::move(done_);
    tickets = std::move(tickets_);
  }
  for (const auto& ticket : tickets) loader_.Cancel(ticket, status);
  std::move(done)(std::move(status));
}

}  // namespace rowgate::loader
