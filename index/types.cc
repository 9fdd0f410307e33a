#include "index/types.h"

namespace lookalike {

const char* MetricName(Metric metric) {
  switch (metric) {
    case Metric::kCosine:
      return "cosine";
    case Metric::kInnerProduct:
      return "ip";
    case Metric::kL2:
      return "l2";
  }
  return "unknown";
}

StatusOr<Metric> ParseMetric(const std::string& name) {
  if (name == "cosine") return Metric::kCosine;
  if (name == "ip") return Metric::kInnerProduct;
  if (name == "l2") return Metric::kL2;
  return InvalidArgumentError("unknown metric '" + name + "': expected cosine, ip or l2");
}

bool IsPostgresUri(const std::string& storage) {
  return storage.rfind("postgresql://", 0) == 0 || storage.rfind("postgres://", 0) == 0;
}

Status ValidateStorage(const std::string& storage) {
  if (storage == kSqliteStorage || IsPostgresUri(storage)) return Status::Ok();
  // A URI may carry a password: only its scheme is repeated.
  const size_t scheme = storage.find("://");
  const std::string shown = scheme == std::string::npos ? storage : storage.substr(0, scheme + 3);
  return InvalidArgumentError("unknown storage '" + shown +
                              "': expected sqlite or a postgresql://user@host:port/db URI");
}

}  // namespace lookalike
