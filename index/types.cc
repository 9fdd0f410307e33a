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

}  // namespace lookalike
