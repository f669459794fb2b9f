#include "service/includes.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "service/proto_convert.h"

namespace rowgate::service {
namespace {

absl::Status Resolve(
    const storage::Catalog& catalog, const storage::Entity& entity,
    const google::protobuf::RepeatedPtrField<v1::Include>& includes,
    const std::string& prefix, int depth, int max_depth, int& count,
    std::vector<loader::IncludePlan>& out) {
  absl::flat_hash_set<std::string> seen;
  for (const v1::Include& include : includes) {
    const std::string name = storage::Abbreviate(include.relation());
    const std::string path =
        prefix.empty() ? name : absl::StrCat(prefix, ".", name);
    if (++count > kMaxIncludes) {
      return absl::InvalidArgumentError(
          absl::StrCat("include ", path, ": a request names at most ",
                       kMaxIncludes, " includes"));
    }
    if (depth > max_depth) {
      return absl::InvalidArgumentError(absl::StrCat(
          "include ", path, " is ", depth, " levels deep; at most ", max_depth,
          " are allowed (--max_include_depth)"));
    }
    const storage::Relation* relation = entity.FindRelation(include.relation());
    if (relation == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "include ", path, ": unknown relation \"", name, "\" of entity ",
          entity.name, " (DescribeEntity lists its relations)"));
    }
    if (!seen.insert(relation->name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("include ", path, " is given twice"));
    }
    const storage::Entity* target = catalog.Find(relation->target);
    const storage::Entity* link =
        relation->link.empty() ? nullptr : catalog.Find(relation->link);
    if (target == nullptr || (!relation->link.empty() && link == nullptr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("include ", path, ": relation \"", name,
                       "\" leads to an entity rowgate does not serve"));
    }
    loader::IncludePlan plan;
    plan.name = relation->name;
    plan.path = path;
    plan.target = target;
    plan.source_column = entity.ColumnIndex(relation->column);
    plan.target_key_column = target->ColumnIndex(relation->target_column);
    if (link != nullptr) {
      plan.link = link;
      plan.link_key_column = link->ColumnIndex(relation->link_column);
      plan.link_target_column = link->ColumnIndex(relation->link_target_column);
    }
    if (plan.source_column < 0 || plan.target_key_column < 0 ||
        (link != nullptr &&
         (plan.link_key_column < 0 || plan.link_target_column < 0))) {
      return absl::InvalidArgumentError(
          absl::StrCat("include ", path, ": relation \"", name,
                       "\" names a missing column"));
    }
    absl::StatusOr<std::vector<int>> columns =
        ResolveColumns(*target, include.columns());
    if (!columns.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("include ", path, ": ", columns.status().message()));
    }
    plan.columns = std::move(*columns);
    if (absl::Status s = Resolve(catalog, *target, include.includes(), path,
                                 depth + 1, max_depth, count, plan.children);
        !s.ok()) {
      return s;
    }
    out.push_back(std::move(plan));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const std::vector<loader::IncludePlan>>>
ResolveIncludes(const storage::Catalog& catalog, const storage::Entity& entity,
                const google::protobuf::RepeatedPtrField<v1::Include>& includes,
                int max_depth) {
  if (includes.empty()) {
    return std::shared_ptr<const std::vector<loader::IncludePlan>>();
  }
  auto plans = std::make_shared<std::vector<loader::IncludePlan>>();
  int count = 0;
  if (absl::Status s =
          Resolve(catalog, entity, includes, "", 1, max_depth, count, *plans);
      !s.ok()) {
    return s;
  }
  return std::shared_ptr<const std::vector<loader::IncludePlan>>(
      std::move(plans));
}

void AttachIncluded(const std::vector<loader::IncludePlan>& plans,
                    const std::vector<loader::IncludedRows>& found,
                    const storage::Entity& entity, const storage::Row& row,
                    v1::Row* out) {
  for (size_t i = 0; i < plans.size() && i < found.size(); ++i) {
    const loader::IncludePlan& plan = plans[i];
    v1::RelatedRows& related = (*out->mutable_related())[plan.name];
    std::optional<std::string> key = loader::ParentKey(plan, entity, row);
    if (!key.has_value()) continue;
    auto it = found[i].by_key.find(*key);
    if (it == found[i].by_key.end()) continue;
    for (const storage::Row* target_row : it->second) {
      v1::Row* target_out = related.add_rows();
      RowToProto(*plan.target, *target_row, plan.columns, target_out);
      AttachIncluded(plan.children, found[i].children, *plan.target,
                     *target_row, target_out);
    }
  }
}

std::vector<const storage::Row*> AllRows(const loader::LoadResult& result) {
  std::vector<const storage::Row*> rows;
  for (const std::vector<storage::Row>* per_key : result.rows_per_key) {
    if (per_key == nullptr) continue;
    for (const storage::Row& row : *per_key) rows.push_back(&row);
  }
  return rows;
}

}  // namespace rowgate::service
